"""Load the provider contract (``genapi/genapi-openapi.yaml``) and validate request bodies against it.

The file has quirks, handled here when loading rather than by skipping checks:

* a duplicated ``content`` key in ``ChatCompletionRequestMessage`` (string *or* array, both marked
  ``x-one-of: content``): duplicates marked with the same ``x-one-of`` become a ``oneOf``; any other duplicate
  lets the last key win (and is recorded in ``DUPLICATES``);
* OpenAPI 3.0 ``nullable: true`` in a 3.1 document: turned into a ``"null"`` type;
* properties wrapped in a ``schema:`` key (the batch creation body): unwrapped;
* the embeddings ``input`` typed ``string`` while its description (and the provider) accept an array of
  strings: widened to string or array of strings;
* the transcription body declared as JSON although it is ``multipart/form-data``: form fields are validated
  against it, the file part as an object.
"""

from __future__ import annotations

import copy
import json
import os
from email import policy
from email.parser import BytesParser
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

REPO_ROOT = Path(__file__).resolve().parents[2]
DUPLICATES: list[tuple[str, int]] = []


class _ContractLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        value = loader.construct_object(value_node, deep=True)
        if key in result:
            DUPLICATES.append((str(key), key_node.start_mark.line + 1))
            prev = result[key]
            marker = isinstance(value, dict) and value.get("x-one-of")
            if marker and isinstance(prev, dict) and prev.get("x-merged-one-of") == marker:
                value = {**prev, "oneOf": [*prev["oneOf"], value]}
            elif marker and isinstance(prev, dict) and prev.get("x-one-of") == marker:
                value = {"x-merged-one-of": marker, "oneOf": [prev, value]}
        result[key] = value
    return result


_ContractLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def spec_path() -> Path:
    env = os.environ.get("GENAPI_OPENAPI_SPEC")
    if env:
        return Path(env)
    return REPO_ROOT / "genapi" / "genapi-openapi.yaml"


def _normalise(node: Any) -> Any:
    if isinstance(node, list):
        return [_normalise(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _normalise(v) for k, v in node.items()}
    if node.pop("nullable", False) is True:
        t = node.get("type")
        if isinstance(t, str):
            node["type"] = [t, "null"]
        elif "$ref" in node or "oneOf" in node or t is None:
            node = {"anyOf": [{k: v for k, v in node.items() if k != "default"}, {"type": "null"}]}
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    props = node.get("properties")
    if isinstance(props, dict):
        for name, prop in list(props.items()):
            if isinstance(prop, dict) and "schema" in prop and "type" not in prop and "$ref" not in prop:
                inner = dict(prop["schema"])
                inner.setdefault("description", prop.get("description"))
                props[name] = inner
    return node


@lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    path = spec_path()
    if not path.exists():
        raise FileNotFoundError(f"provider contract not found at {path} (set GENAPI_OPENAPI_SPEC)")
    raw = yaml.load(path.read_text(), Loader=_ContractLoader)  # noqa: S506 - a SafeLoader subclass
    spec = _normalise(raw)
    emb = spec["paths"]["/{project_id}/v1/embeddings"]["post"]["requestBody"]["content"]["application/json"]
    inp = emb["schema"]["properties"]["input"]
    if inp.get("type") == "string" and "Array of strings" in inp.get("description", ""):
        emb["schema"]["properties"]["input"] = {
            "description": inp["description"],
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 2048}],
        }
    return spec


def operation_for(method: str, path: str) -> tuple[str, str] | None:
    """Map a request path (``/v1/embeddings``, ``/proj/v1/batches/abc/cancel``) to the contract's path key."""
    _, _, rest = path.partition("/v1/")
    rest = rest.strip("/")
    if rest.startswith("batches/") and rest.endswith("/cancel"):
        key = "/{project_id}/v1/batches/{batch_id}/cancel"
    elif rest.startswith("batches/"):
        key = "/{project_id}/v1/batches/{batch_id}"
    elif rest == "models":
        key = "/v1/models"
    else:
        key = f"/{{project_id}}/v1/{rest}"
    spec = load_spec()
    if key not in spec["paths"] or method.lower() not in spec["paths"][key]:
        return None
    return key, method.lower()


def request_validator(key: str, method: str) -> Draft202012Validator | None:
    spec = load_spec()
    op = spec["paths"][key][method]
    body = op.get("requestBody")
    if not body:
        return None
    schema = copy.deepcopy(next(iter(body["content"].values()))["schema"])
    # The components travel with the schema so "#/components/..." resolves inside it.
    root = {**schema, "components": spec["components"]}
    return Draft202012Validator(root)


def body_of(content_type: str, content: bytes) -> Any:
    """The request body as the contract sees it: JSON, or multipart fields with the file as an object."""
    if content_type.startswith("multipart/form-data"):
        msg = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + content
        )
        form: dict[str, Any] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename() is not None:
                form[name] = {
                    "filename": part.get_filename(),
                    "size": len(part.get_payload(decode=True) or b""),
                }
            else:
                value: Any = (part.get_payload(decode=True) or b"").decode()
                if name == "temperature":
                    value = float(value)
                form[name] = value
        return form
    return json.loads(content) if content else None


def validate_request(method: str, path: str, content_type: str, content: bytes) -> list[str]:
    """Contract violations of one captured request (empty when it conforms)."""
    op = operation_for(method, path)
    if op is None:
        return [f"{method} {path} is not an operation of the contract"]
    validator = request_validator(*op)
    if validator is None:
        return [] if not content else [f"{method} {path} takes no body but one was sent"]
    body = body_of(content_type, content)
    return [
        f"{method} {path}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(body)
    ]
