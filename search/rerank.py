"""Second-stage ranking by the provider's reranker, degrading to the fused order when it fails."""

from __future__ import annotations

import logging

from django.conf import settings

from genapi import GenAPIError, get_client
from search.types import Passage

log = logging.getLogger(__name__)


def rerank_document(passage: Passage) -> str:
    """What the reranker reads: the heading path gives a bare passage its context."""
    if passage.heading_path:
        return f"{passage.title} — {passage.heading_path}\n{passage.text}"
    return f"{passage.title}\n{passage.text}"


def passages_rerank(
    query: str, passages: list[Passage], *, top_k: int | None = None, candidates: int | None = None
) -> tuple[list[Passage], bool]:
    """Rerank the first `candidates` (settings.RAG_RERANK_CANDIDATES) passages; return the best `top_k`
    (settings.RAG_TOP_K) at or above settings.RAG_RERANK_THRESHOLD, and whether reranking happened.

    The client has already retried; any GenAPIError here means the reranker is unavailable, so the fused
    order is kept (reranked=False) rather than failing the search.
    """
    top_k = int(top_k or settings.RAG_TOP_K)
    pool = passages[: int(candidates or settings.RAG_RERANK_CANDIDATES)]
    if not pool:
        return [], False
    try:
        hits = get_client().rerank(
            query, [rerank_document(p) for p in pool], model=settings.GENAPI_RERANK_MODEL, top_n=len(pool)
        )
    except GenAPIError as exc:
        log.warning("rerank failed, keeping the fused order: %s", exc)
        return passages[:top_k], False
    threshold = float(settings.RAG_RERANK_THRESHOLD)
    ranked: list[Passage] = []
    for hit in hits:
        if hit.relevance_score < threshold:
            continue
        passage = pool[hit.index]
        passage.rerank_score = passage.score = float(hit.relevance_score)
        ranked.append(passage)
        if len(ranked) >= top_k:
            break
    return ranked, True
