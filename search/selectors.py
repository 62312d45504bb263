"""Retrieval: vector (HNSW) and full-text candidates, fused by reciprocal rank, optionally reranked.

Every filter, the readable collections first of all, is part of the candidate SQL itself, never applied
afterwards in Python: a filter applied after `LIMIT` would silently return fewer than k passages.

The full-text leg lives in `search/fulltext.py`, the filter SQL both legs share in `search/sql_filters.py`.
"""

from __future__ import annotations

import html
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction

from genapi import GenAPIError
from ingestion.models import FULLTEXT_CONFIG, EmbeddingSpace
from ingestion.services.embedding import texts_embed as space_texts_embed
from search.fulltext import fulltext_candidates, statements_pipelined
from search.fusion import RRF_WEIGHT_FULLTEXT, RRF_WEIGHT_VECTOR, rrf_fuse
from search.rerank import RerankBudget, RerankOutcome, passages_rerank
from search.sql_filters import filters_sql
from search.types import Passage, RetrievalResult, SearchFilters, Timings

log = logging.getLogger(__name__)

MODES = ("vector", "fulltext", "hybrid")
MAX_PK = 2**63 - 1
# Sentinels ts_headline wraps matches in; they never occur in text, so they survive html.escape untouched.
_SEL_START, _SEL_STOP = "\ue000", "\ue001"


@dataclass
class PassageWithNeighbours:
    """A passage and the passages around it in its document (what a citation link opens)."""

    passage: Passage
    before: list[Passage]
    after: list[Passage]

    def as_dict(self) -> dict[str, Any]:
        return {
            "passage": self.passage.as_dict(),
            "before": [p.as_dict() for p in self.before],
            "after": [p.as_dict() for p in self.after],
        }


# -- helpers ------------------------------------------------------------------------------------------------


def embedding_space_active() -> EmbeddingSpace | None:
    return EmbeddingSpace.objects.filter(is_active=True).first()


def query_embed(query: str, space: EmbeddingSpace) -> list[float]:
    """The query's vector in `space` (same model, same dimensions as the stored chunks)."""
    # The same function and request as ingestion made for the stored vectors.
    return space_texts_embed(space, [query])[0]


def vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


def vector_candidates_sql(
    vector: list[float], space: EmbeddingSpace, collection_ids: list[int], filters: SearchFilters, limit: int
) -> tuple[str, list[Any]]:
    """The vector candidate query. Cast and predicate match the space's partial HNSW index exactly
    (`(embedding::halfvec(N))`, `space_id = S`), which is what lets the planner use it."""
    dims = int(space.dimensions)
    where, params = filters_sql(collection_ids, filters)
    literal = vector_literal(vector)
    # relaxed_order may return rows slightly out of order: materialize, then sort exactly.
    sql = f"""
        WITH hits AS MATERIALIZED (
            SELECT ce.chunk_id, (ce.embedding::halfvec({dims})) <=> %s::halfvec({dims}) AS distance
            FROM ingestion_chunkembedding ce
            JOIN ingestion_chunk c ON c.id = ce.chunk_id
            JOIN ingestion_document d ON d.id = c.document_id
            WHERE ce.space_id = {int(space.pk)} AND {where}
            ORDER BY (ce.embedding::halfvec({dims})) <=> %s::halfvec({dims})
            LIMIT %s
        )
        SELECT chunk_id, distance FROM hits ORDER BY distance, chunk_id
    """  # noqa: S608 - only integers are interpolated
    return sql, [literal, *params, literal, int(limit)]


def vector_candidates(
    vector: list[float], space: EmbeddingSpace, collection_ids: list[int], filters: SearchFilters, limit: int
) -> list[tuple[int, float]]:
    sql, params = vector_candidates_sql(vector, space, collection_ids, filters, limit)
    with transaction.atomic(), connection.cursor() as cursor, statements_pipelined():
        # SET LOCAL: these settings end with this transaction, never leaking to the pooled connection.
        ef_search = max(int(settings.RAG_HNSW_EF_SEARCH), int(limit))
        # One round trip for both; iterative_scan keeps scanning the index until LIMIT rows pass the
        # filters (pgvector >= 0.8).
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
            [str(min(ef_search, 1000))],
        )
        cursor.execute(sql, params)
        return [(int(chunk_id), float(distance)) for chunk_id, distance in cursor.fetchall()]


_PASSAGE_COLUMNS = """
    c.id, c.document_id, d.collection_id, d.title, c.text, c.page, c.char_start, c.char_end, c.ordinal,
    c.heading_path, d.metadata, d.mime_type
"""


def _passage_from_row(row) -> Passage:
    (
        chunk_id,
        document_id,
        collection_id,
        title,
        text,
        page,
        char_start,
        char_end,
        ordinal,
        heading,
        meta,
        mime,
    ) = row
    if isinstance(meta, str):  # raw cursors may hand jsonb back as text
        meta = json.loads(meta)
    return Passage(
        chunk_id=chunk_id,
        document_id=document_id,
        collection_id=collection_id,
        title=title,
        text=text,
        page=page,
        char_start=char_start,
        char_end=char_end,
        ordinal=ordinal,
        heading_path=heading or "",
        metadata=meta or {},
        mime_type=mime or "",
    )


def passages_load(chunk_ids: list[int], collection_ids: list[int]) -> dict[int, Passage]:
    """Passages by chunk id, readable ones only."""
    if not chunk_ids or not collection_ids:
        return {}
    sql = f"""
        SELECT {_PASSAGE_COLUMNS}
        FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id
        WHERE c.id = ANY(%s) AND d.collection_id = ANY(%s)
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(chunk_ids), list(collection_ids)])
        return {row[0]: _passage_from_row(row) for row in cursor.fetchall()}


def highlights_add(passages: list[Passage], query: str) -> None:
    """Fragments of each passage with the query's words marked `<mark>…</mark>` (the rest HTML-escaped)."""
    if not passages or not query.strip():
        return
    options = f"StartSel={_SEL_START}, StopSel={_SEL_STOP}, MaxFragments=3, MaxWords=30, MinWords=10"
    sql = f"""
        WITH q AS (
            SELECT (SELECT COALESCE(string_agg(quote_literal(lexeme), ' | '), '')
                    FROM unnest(to_tsvector('{FULLTEXT_CONFIG}', %s)))::tsquery AS query
        )
        SELECT c.id, ts_headline('{FULLTEXT_CONFIG}', c.text, q.query, %s)
        FROM ingestion_chunk c CROSS JOIN q
        WHERE c.id = ANY(%s) AND c.search_vector @@ q.query
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [query, options, [p.chunk_id for p in passages]])
        headlines = dict(cursor.fetchall())
    for passage in passages:
        headline = headlines.get(passage.chunk_id)
        if not headline or _SEL_START not in headline:
            continue
        fragments = [f.strip() for f in headline.split(" ... ") if _SEL_START in f]
        passage.highlights = [
            html.escape(f).replace(_SEL_START, "<mark>").replace(_SEL_STOP, "</mark>") for f in fragments
        ]


# -- public -------------------------------------------------------------------------------------------------


def passages_retrieve(
    query: str,
    *,
    collection_ids: list[int],
    filters: SearchFilters | dict[str, Any] | None = None,
    mode: str = "hybrid",
    top_k: int = 8,
    candidates: int = 50,
    rerank: bool = True,
    rerank_budget: RerankBudget | None = None,
    timings: Timings | None = None,
) -> RetrievalResult:
    """The best `top_k` passages for `query` within `collection_ids` (the caller's readable collections,
    from ingestion.selectors.collection_ids_readable) and `filters`.

    `mode`: "vector" (active embedding space, HNSW), "fulltext" (tsvector) or "hybrid" (both, fused by
    reciprocal rank, k=60). With `rerank`, the head of the fused list goes to the reranker within
    `rerank_budget` (default: the settings; search/rerank.py); if it fails the fused order stands and
    `reranked` is False. Passages the reranker scores below settings.RAG_RERANK_THRESHOLD are dropped.
    Each stage's milliseconds go into `timings` (a new Timings when not given) and the result.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    timings = timings or Timings()
    started = time.perf_counter()
    filters = SearchFilters.from_value(filters)
    top_k = max(1, int(top_k))
    candidates = max(int(candidates), top_k)
    query = query.strip()
    collection_ids = [int(i) for i in collection_ids]
    rankings: list[list[int]] = []
    weights: list[float] = []
    vector_hits: list[tuple[int, float]] = []
    text_hits: list[tuple[int, float]] = []
    if query and collection_ids:
        space = embedding_space_active() if mode in ("vector", "hybrid") else None
        if space is None and mode == "vector":
            log.warning("vector search requested but no embedding space is active")
        # The vector leg (query embedding, a provider round trip, then the HNSW query) runs in a thread on
        # its own database connection while this thread runs the full-text leg: the two legs' queries use
        # both cores and the request waits for the slower leg, not their sum. Inside a transaction (tests,
        # a caller's atomic block) the legs must see its uncommitted writes: the thread then only embeds
        # and the vector query runs here afterwards, on the caller's connection.
        own_connection = not connection.in_atomic_block
        pending = (
            _leg_pool.submit(
                _vector_leg, query, space, collection_ids, filters, candidates, timings, own_connection
            )
            if space
            else None
        )
        if mode in ("fulltext", "hybrid"):
            with timings.stage("fulltext"):
                text_hits = fulltext_candidates(query, collection_ids, filters, candidates)
        if pending is not None:
            try:
                vector, vector_hits = pending.result()
            except GenAPIError:
                if mode == "vector":
                    raise
                # Hybrid keeps answering from full text when the embeddings endpoint is down.
                log.warning("query embedding failed; hybrid search continues with full text", exc_info=True)
            else:
                if not own_connection:
                    with timings.stage("vector"):
                        vector_hits = vector_candidates(vector, space, collection_ids, filters, candidates)
        for hits, weight in ((vector_hits, RRF_WEIGHT_VECTOR), (text_hits, RRF_WEIGHT_FULLTEXT)):
            if hits:
                rankings.append([cid for cid, _ in hits])
                weights.append(weight)

    with timings.stage("fuse"):
        fused = rrf_fuse(rankings, weights=weights)[:candidates]
    with timings.stage("load"):
        loaded = passages_load([cid for cid, _ in fused], collection_ids)
    vector_rank = {cid: i for i, (cid, _) in enumerate(vector_hits, start=1)}
    text_rank = {cid: i for i, (cid, _) in enumerate(text_hits, start=1)}
    passages: list[Passage] = []
    for chunk_id, score in fused:
        passage = loaded.get(chunk_id)
        if passage is None:
            continue
        passage.fused_score = passage.score = float(score)
        passage.vector_rank = vector_rank.get(chunk_id)
        passage.fulltext_rank = text_rank.get(chunk_id)
        passages.append(passage)

    outcome = RerankOutcome(passages[:top_k], False)
    if rerank and passages:
        with timings.stage("rerank"):
            outcome = passages_rerank(query, passages, top_k=top_k, budget=rerank_budget)
    passages = outcome.passages
    with timings.stage("highlight"):
        highlights_add(passages, query)
    return RetrievalResult(
        passages=passages,
        reranked=outcome.reranked,
        mode=mode,
        query=query,
        took_ms=int((time.perf_counter() - started) * 1000),
        candidates=len(fused),
        timings=timings.as_dict(),
        rerank_tokens=outcome.tokens,
        rerank_cached=outcome.cached,
    )


# The vector leg runs beside the full-text leg; a few threads per process are plenty (each waits on HTTP or
# on the database). Each thread keeps its own database connection, checked and recycled like a request's.
_leg_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vector-leg")


def _vector_leg(
    query: str,
    space: EmbeddingSpace,
    collection_ids: list[int],
    filters: SearchFilters,
    limit: int,
    timings: Timings,
    query_database: bool,
) -> tuple[list[float], list[tuple[int, float]]]:
    """The query's vector and, with `query_database`, its HNSW candidates (on this thread's connection)."""
    # As Django does between requests: drop this thread's connection if past its age or broken. (The
    # embedding call may use it too: the provider budget is shared through the cache.)
    close_old_connections()
    try:
        with timings.stage("embed"):
            vector = query_embed(query, space)
        if not query_database:
            return vector, []
        with timings.stage("vector"):
            return vector, vector_candidates(vector, space, collection_ids, filters, limit)
    finally:
        if not settings.RAG_SEARCH_LEG_CONNECTION_KEEP:
            connection.close()


def passage_with_neighbours(
    chunk_id: int,
    collection_ids: list[int],
    before: int = 2,
    after: int = 2,
    *,
    document_id: int | None = None,
) -> PassageWithNeighbours | None:
    """The passage `chunk_id` and up to `before`/`after` passages around it in its document, or None when
    it does not exist, is not readable through `collection_ids`, or is not in `document_id` (when given)."""
    if not (0 < int(chunk_id) <= MAX_PK) or (document_id is not None and not 0 < int(document_id) <= MAX_PK):
        return None
    passage = passages_load([int(chunk_id)], collection_ids).get(int(chunk_id))
    if passage is None or (document_id is not None and passage.document_id != int(document_id)):
        return None
    before, after = max(0, int(before)), max(0, int(after))
    sql = f"""
        SELECT {_PASSAGE_COLUMNS}
        FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id
        WHERE c.document_id = %s AND c.ordinal BETWEEN %s AND %s AND c.id <> %s
        ORDER BY c.ordinal
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [passage.document_id, passage.ordinal - before, passage.ordinal + after, passage.chunk_id]
        )
        around = [_passage_from_row(row) for row in cursor.fetchall()]
    return PassageWithNeighbours(
        passage=passage,
        before=[p for p in around if p.ordinal < passage.ordinal],
        after=[p for p in around if p.ordinal > passage.ordinal],
    )
