"""Models, embeddings and rerank: inputs split to the contract's limits, answers read in every shape the
providers send."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

from genapi.config import SCALEWAY_API
from genapi.errors import (
    BadResponseError,
)
from genapi.limiter import estimate_tokens
from genapi.transport import Transport, drop_none
from genapi.types import EmbeddingsResult, RerankHit, Usage


def _decode_base64_vector(data: str) -> list[float]:
    raw = base64.b64decode(data)
    try:
        import numpy as np

        return np.frombuffer(raw, dtype="<f4").astype(float).tolist()
    except ImportError:  # pragma: no cover - numpy is normally present
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))


class VectorEndpoints(Transport):
    def models_list(self) -> list[dict[str, Any]]:
        path = "models"
        cfg = self.config
        if cfg.project_id and cfg.base_url.rstrip("/") == f"{SCALEWAY_API}/{cfg.project_id}/v1":
            path = f"{SCALEWAY_API}/v1/models"  # the contract serves models unscoped only
        body, retries, ms = self._call_json("GET", path, endpoint="models", model=None)
        self._emit(None, "models", None, ms, retries)
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise BadResponseError("models list without data")
        return data

    def _embed_batches(self, inputs: list[str]) -> Iterator[tuple[int, list[str], int]]:
        size = max(1, min(self.config.embed_batch_size, 2048))
        budget = max(1, self.config.embed_token_budget)
        start, batch, tokens = 0, [], 0
        for i, text in enumerate(inputs):
            t = estimate_tokens(text)
            if batch and (len(batch) >= size or tokens + t > budget):
                yield start, batch, tokens
                start, batch, tokens = i, [], 0
            batch.append(text)
            tokens += t
        if batch:
            yield start, batch, tokens

    def embeddings_create(
        self,
        model: str,
        input: list[str] | str,
        *,
        dimensions: int | None = None,
        encoding_format: str = "float",
    ) -> EmbeddingsResult:
        inputs = [input] if isinstance(input, str) else list(input)
        vectors: list[list[float]] = []
        usage = Usage()
        model_name = model
        calls = 0
        for _, batch, est in self._embed_batches(inputs):
            body = drop_none(
                {"model": model, "input": batch, "encoding_format": encoding_format, "dimensions": dimensions}
            )
            data, retries, ms = self._call_json(
                "POST", "embeddings", endpoint="embeddings", model=model, est_tokens=est, json_body=body
            )
            calls += 1
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list) or len(items) != len(batch):
                got = len(items) if isinstance(items, list) else "no"
                raise BadResponseError(f"embeddings: sent {len(batch)} inputs, got {got} vectors")
            items = sorted(items, key=lambda d: d.get("index", 0))
            for item in items:
                emb = item.get("embedding")
                if isinstance(emb, str):
                    emb = _decode_base64_vector(emb)
                if not isinstance(emb, list):
                    raise BadResponseError("embeddings: item without a vector")
                vectors.append(emb)
            u = data.get("usage") or {}
            usage.prompt_tokens += int(u.get("prompt_tokens") or est)
            usage.total_tokens += int(u.get("total_tokens") or u.get("prompt_tokens") or est)
            model_name = data.get("model") or model
            self._emit(model, "embeddings", u or {"prompt_tokens": est}, ms, retries)
        return EmbeddingsResult(vectors=vectors, model=model_name, usage=usage, calls=calls)

    def rerank(
        self, query: str, documents: list[str], *, model: str, top_n: int | None = None
    ) -> list[RerankHit]:
        documents = list(documents)
        if not documents:
            return []
        size = max(1, min(self.config.rerank_batch_size, 1000))
        hits: list[RerankHit] = []
        for offset in range(0, len(documents), size):
            part = documents[offset : offset + size]
            part_top = min(top_n, len(part)) if top_n is not None else None
            body = drop_none({"model": model, "query": query, "documents": part, "top_n": part_top})
            est = estimate_tokens(query) * len(part) + sum(estimate_tokens(d) for d in part)
            data, retries, ms = self._call_json(
                "POST", "rerank", endpoint="rerank", model=model, est_tokens=est, json_body=body
            )
            results = None
            if isinstance(data, dict):
                results = data.get("results", data.get("data"))
            elif isinstance(data, list):
                results = data
            if not isinstance(results, list):
                raise BadResponseError("rerank: no results in the answer")
            for r in results:
                try:
                    idx = int(r["index"])
                    score = float(r["relevance_score"] if "relevance_score" in r else r["score"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise BadResponseError(f"rerank: unreadable result {r!r}"[:300]) from exc
                if not 0 <= idx < len(part):
                    raise BadResponseError(f"rerank: index {idx} out of range")
                doc = r.get("document")
                if isinstance(doc, dict):
                    doc = doc.get("text")
                hits.append(RerankHit(index=offset + idx, relevance_score=score, document=doc))
            usage = data.get("usage") if isinstance(data, dict) else None
            self._emit(model, "rerank", usage or {"prompt_tokens": est}, ms, retries)
        hits.sort(key=lambda h: (-h.relevance_score, h.index))
        return hits[:top_n] if top_n is not None else hits
