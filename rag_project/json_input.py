"""JSON from clients, bounded: what PostgreSQL cannot store or Python cannot walk is a 400, never a 500.

- nesting deeper than `MAX_JSON_DEPTH` (Python's decoder raises RecursionError around a thousand levels,
  and every recursive walk of the value after it would too);
- NUL characters and unpaired surrogates in any string or key (PostgreSQL text and jsonb refuse both);
- numbers that are not finite (`1e999` parses to infinity, which jsonb refuses).

`BoundedJSONParser` applies this to every JSON request body (the REST framework's default parser);
`json_loads_bounded` and `json_value_problem` do the same for JSON that arrives inside another field
(multipart metadata) or that a serializer field accepts as-is.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings

MAX_JSON_DEPTH = 32
NON_FIELD_ERRORS_KEY = api_settings.NON_FIELD_ERRORS_KEY
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def json_value_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """(where, why) `value` (parsed JSON) is not acceptable, or None. Iterative: depth cannot crash it.

    `where` is a path such as `metadata.note` or `messages[0].content` (empty for the top level)."""
    # Paths are linked (parent, step) pairs, turned into text only for the one value that fails.
    stack: list[tuple[Any, int, tuple | None]] = [(value, 1, None)]
    while stack:
        item, depth, path = stack.pop()
        problem = None
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                problem = "Strings may not contain NUL characters or unpaired surrogates."
        elif isinstance(item, float):
            if not math.isfinite(item):
                problem = "Numbers must be finite."
        elif isinstance(item, dict | list):
            if depth > max_depth:
                problem = f"JSON is nested more than {max_depth} levels deep."
            elif isinstance(item, dict):
                for key, child in item.items():
                    if _UNSTORABLE.search(key):
                        return _path_text(path), "Keys may not contain NUL characters or unpaired surrogates."
                    stack.append((child, depth + 1, (path, key)))
            else:
                stack.extend((child, depth + 1, (path, index)) for index, child in enumerate(item))
        if problem:
            return _path_text(path), problem
    return None


def _path_text(path: tuple | None) -> str:
    steps = []
    while path is not None:
        path, step = path
        steps.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(reversed(steps)).lstrip(".")


def json_loads_bounded(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` that raises ValueError (with a message for people) for anything refused above."""
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise ValueError(f"JSON is nested more than {max_depth} levels deep.") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"Not valid JSON: {exc}") from exc
    problem = json_value_problem(value, max_depth)
    if problem:
        where, why = problem
        raise ValueError(f"{where}: {why}" if where else why)
    return value


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the bounds above (its own catches ValueError but not RecursionError).

    A value problem is a ValidationError naming the field, like any other invalid field (code `invalid`).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            value = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ValidationError(
                {NON_FIELD_ERRORS_KEY: [f"JSON is nested more than {MAX_JSON_DEPTH} levels deep."]}
            ) from exc
        problem = json_value_problem(value)
        if problem:
            where, why = problem
            raise ValidationError({where or NON_FIELD_ERRORS_KEY: [why]})
        return value
