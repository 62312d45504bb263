"""The stand-in's model catalogue and the OpenAI-shaped error every engine answers with."""

from __future__ import annotations

from typing import Any

CREATED = 1_735_689_600  # fixed "created" timestamp for the catalogue

MODELS: dict[str, dict[str, Any]] = {
    "all-minilm-l6-v2": {
        "kind": "embeddings",
        "dims": 384,
        "max_input": 512,
        "owned_by": "sentence-transformers",
    },
    "multilingual-e5-large": {"kind": "embeddings", "dims": 1024, "max_input": 512, "owned_by": "intfloat"},
    "bge-multilingual-gemma2": {"kind": "embeddings", "dims": 3584, "max_input": 8192, "owned_by": "baai"},
    "qwen3-embedding-8b": {
        "kind": "embeddings",
        "dims": 4096,
        "max_input": 32768,
        "rerank": True,
        "owned_by": "qwen",
    },
    "bge-reranker-v2-m3": {"kind": "rerank", "owned_by": "baai"},
    "mistral-small-3.2-24b-instruct-2506": {"kind": "chat", "context": 128_000, "owned_by": "mistral"},
    "llama-3.1-8b-instruct": {"kind": "chat", "context": 128_000, "owned_by": "meta"},
    "gpt-oss-120b": {"kind": "chat", "context": 128_000, "owned_by": "openai"},
    "whisper-large-v3": {"kind": "audio", "owned_by": "openai"},
}


def error(status: int, message: str, *, etype: str = "invalid_request_error", code: Any = None, param=None):
    return status, {"error": {"message": message, "type": etype, "param": param, "code": code}}


def model_check(model: Any, capability: str):
    if not isinstance(model, str) or not model:
        return error(400, "`model` is required", param="model", code="missing_model")
    info = MODELS.get(model)
    if info is None:
        return error(404, f"The model `{model}` does not exist.", param="model", code="model_not_found")
    ok = info["kind"] == capability or (capability == "rerank" and info.get("rerank"))
    if not ok:
        return error(
            400, f"Model `{model}` does not support /{capability}.", param="model", code="model_not_supported"
        )
    return None


def models_list() -> tuple[int, dict]:
    data = [
        {"id": name, "object": "model", "created": CREATED, "owned_by": info["owned_by"]}
        for name, info in MODELS.items()
    ]
    return 200, {"object": "list", "data": data}
