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
from django.db import close_old_connections, connection, reset_queries

from genapi import GenAPIError
from ingestion.models import FULLTEXT_CONFIG, EmbeddingSpace
from ingestion.services.embedding import texts_embed as space_texts_embed
from rag_project.compiled_sql import instances_from_row, prepared_cursor, queryset_compiled, rows_fetch
from search.fulltext import fulltext_candidates, query_with_settings
from search.fusion import RRF_WEIGHT_FULLTEXT, RRF_WEIGHT_VECTOR, rrf_fuse
from search.hnsw import vector_settings_sql
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
    """The space searches use (its SQL compiled once per process: rag_project/compiled_sql.py)."""
    sql, params = queryset_compiled(
        "embedding_space_active", lambda: EmbeddingSpace.objects.filter(is_active=True).order_by("pk")[:1]
    )
    rows = rows_fetch(sql, params)
    return instances_from_row(rows[0], EmbeddingSpace)[0] if rows else None


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
            LIMIT {int(limit)}
        )
        SELECT chunk_id, distance FROM hits ORDER BY distance, chunk_id
    """  # noqa: S608 - only integers are interpolated
    # LIMIT is a literal: the statement is prepared (rag_project/compiled_sql.py), and a generic plan with
    # an unknown LIMIT could prefer sorting every vector to the index.
    return sql, [literal, *params, literal]


def vector_candidates(
    vector: list[float], space: EmbeddingSpace, collection_ids: list[int], filters: SearchFilters, limit: int
) -> list[tuple[int, float]]:
    sql, params = vector_candidates_sql(vector, space, collection_ids, filters, limit)
    # hnsw.ef_search (search/hnsw.py) and iterative_scan are local to the query's transaction: BEGIN,
    # settings, query and COMMIT go in one round trip.
    settings_sql, settings_params = vector_settings_sql(space, limit)
    rows = query_with_settings(settings_sql, settings_params, sql, params)
    return [(int(chunk_id), float(distance)) for chunk_id, distance in rows]


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


_HEADLINE_OPTIONS = f"StartSel={_SEL_START}, StopSel={_SEL_STOP}, MaxFragments=3, MaxWords=30, MinWords=10"
# The query's words as an OR query (any word marks), in the passages' own text search configuration.
_HEADLINE_QUERY = f"""
    SELECT (SELECT COALESCE(string_agg(quote_literal(lexeme), ' | '), '')
            FROM unnest(to_tsvector('{FULLTEXT_CONFIG}', %s)))::tsquery AS query
"""  # noqa: S608 - fixed fragments only
_HEADLINE = f"ts_headline('{FULLTEXT_CONFIG}', c.text, q.query, %s)"


def passages_load(
    chunk_ids: list[int], collection_ids: list[int], *, highlight_query: str | None = None
) -> dict[int, Passage]:
    """Passages by chunk id, readable ones only. With `highlight_query`, each passage's `highlights` come
    from the same statement (see `highlights_add`)."""
    if not chunk_ids or not collection_ids:
        return {}
    highlight = bool(highlight_query and highlight_query.strip())
    headline = f"CASE WHEN c.search_vector @@ q.query THEN {_HEADLINE} END" if highlight else "NULL::text"
    sql = f"""
        WITH q AS ({_HEADLINE_QUERY if highlight else "SELECT NULL::tsquery AS query"})
        SELECT {_PASSAGE_COLUMNS}, {headline}
        FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id CROSS JOIN q
        WHERE c.id = ANY(%s) AND d.collection_id = ANY(%s)
    """  # noqa: S608
    params: list[Any] = [highlight_query, _HEADLINE_OPTIONS] if highlight else []
    with prepared_cursor() as cursor:
        cursor.execute(sql, [*params, list(chunk_ids), list(collection_ids)])
        rows = cursor.fetchall()
    loaded = {}
    for row in rows:
        passage = _passage_from_row(row[:-1])
        passage.highlights = _headline_fragments(row[-1])
        loaded[passage.chunk_id] = passage
    return loaded


def _headline_fragments(headline: str | None) -> list[str]:
    """ts_headline's output as HTML fragments: only those with a match, the rest escaped, matches marked."""
    if not headline or _SEL_START not in headline:
        return []
    fragments = [f.strip() for f in headline.split(" ... ") if _SEL_START in f]
    return [html.escape(f).replace(_SEL_START, "<mark>").replace(_SEL_STOP, "</mark>") for f in fragments]


def highlights_add(passages: list[Passage], query: str) -> None:
    """Fragments of each passage with the query's words marked `<mark>…</mark>` (the rest HTML-escaped)."""
    if not passages or not query.strip():
        return
    sql = f"""
        WITH q AS ({_HEADLINE_QUERY})
        SELECT c.id, {_HEADLINE}
        FROM ingestion_chunk c CROSS JOIN q
        WHERE c.id = ANY(%s) AND c.search_vector @@ q.query
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [query, _HEADLINE_OPTIONS, [p.chunk_id for p in passages]])
        headlines = dict(cursor.fetchall())
    for passage in passages:
        fragments = _headline_fragments(headlines.get(passage.chunk_id))
        if fragments:
            passage.highlights = fragments


def passages_page_load(
    fused: list[tuple[int, float]], collection_ids: list[int], count: int, highlight_query: str
) -> list[tuple[Passage, float]]:
    """The first `count` readable passages of `fused`, in its order, with their highlights: usually one
    statement for the page alone (a search that is not reranked returns the page, so the other candidates
    need not be read); a passage gone since the legs ran is replaced from the candidates after it."""
    page: list[tuple[Passage, float]] = []
    start = 0
    while len(page) < count and start < len(fused):
        batch = fused[start : start + count - len(page)]
        start += len(batch)
        loaded = passages_load([cid for cid, _ in batch], collection_ids, highlight_query=highlight_query)
        page.extend((loaded[cid], score) for cid, score in batch if cid in loaded)
    return page


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
    reciprocal rank, search/fusion.py). With `rerank`, the head of the fused list goes to the reranker within
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
        # The vector leg (the active embedding space, the query embedding, a provider round trip, then the
        # HNSW query) runs in a thread on its own database connection while this thread runs the full-text
        # leg: the two legs' queries use both cores and the request waits for the slower leg, not their
        # sum. Inside a transaction (tests, a caller's atomic block) the legs must see its uncommitted
        # writes: the space is read here, the thread only embeds, and the vector query runs here
        # afterwards, on the caller's connection.
        own_connection = not connection.in_atomic_block
        pending = None
        space = None
        if mode in ("vector", "hybrid"):
            if not own_connection:
                space = embedding_space_active()
            if own_connection or space is not None:
                pending = _leg_pool.submit(
                    _vector_leg, query, space, collection_ids, filters, candidates, timings, own_connection
                )
            else:
                _no_space_warn(mode)
        if mode in ("fulltext", "hybrid"):
            with timings.stage("fulltext"):
                text_hits = fulltext_candidates(query, collection_ids, filters, candidates)
        if pending is not None:
            try:
                space, vector, vector_hits = pending.result()
            except GenAPIError:
                if mode == "vector":
                    raise
                # Hybrid keeps answering from full text when the embeddings endpoint is down.
                log.warning("query embedding failed; hybrid search continues with full text", exc_info=True)
            else:
                if space is None:
                    _no_space_warn(mode)
                elif not own_connection:
                    with timings.stage("vector"):
                        vector_hits = vector_candidates(vector, space, collection_ids, filters, candidates)
        for hits, weight in ((vector_hits, RRF_WEIGHT_VECTOR), (text_hits, RRF_WEIGHT_FULLTEXT)):
            if hits:
                rankings.append([cid for cid, _ in hits])
                weights.append(weight)

    with timings.stage("fuse"):
        fused = rrf_fuse(rankings, weights=weights)[:candidates]
    vector_rank = {cid: i for i, (cid, _) in enumerate(vector_hits, start=1)}
    text_rank = {cid: i for i, (cid, _) in enumerate(text_hits, start=1)}

    def ranked(passage: Passage, score: float) -> Passage:
        passage.fused_score = passage.score = float(score)
        passage.vector_rank = vector_rank.get(passage.chunk_id)
        passage.fulltext_rank = text_rank.get(passage.chunk_id)
        return passage

    if not rerank:
        # The response is the fused list's first page: only it is read, its highlights in the same
        # statement (`load` then covers both; there is no separate `highlight` stage).
        with timings.stage("load"):
            page = passages_page_load(fused, collection_ids, top_k, query)
        outcome = RerankOutcome([ranked(p, score) for p, score in page], False)
    else:
        with timings.stage("load"):
            loaded = passages_load([cid for cid, _ in fused], collection_ids)
        passages = [ranked(loaded[cid], score) for cid, score in fused if cid in loaded]
        outcome = RerankOutcome(passages[:top_k], False)
        if passages:
            with timings.stage("rerank"):
                outcome = passages_rerank(query, passages, top_k=top_k, budget=rerank_budget)
        with timings.stage("highlight"):
            highlights_add(outcome.passages, query)
    passages = outcome.passages
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


def _no_space_warn(mode: str) -> None:
    if mode == "vector":
        log.warning("vector search requested but no embedding space is active")


def _vector_leg(
    query: str,
    space: EmbeddingSpace | None,
    collection_ids: list[int],
    filters: SearchFilters,
    limit: int,
    timings: Timings,
    query_database: bool,
) -> tuple[EmbeddingSpace | None, list[float], list[tuple[int, float]]]:
    """The space (the active one, read here when not given), the query's vector and, with
    `query_database`, its HNSW candidates (on this thread's connection). No active space: (None, [], [])."""
    # As Django does between requests: drop this thread's connection if past its age or broken (the
    # embedding call may use it too: the provider budget is shared through the cache), and empty its query
    # log. Django empties it when a request starts, but only on the request's own thread: with DEBUG on,
    # each pool thread's log kept its last 9,000 statements, vector literals included (~40 MB a thread; the
    # web workers' steady growth under benchmarks/load.py, BENCHMARKS.md issue 16).
    close_old_connections()
    reset_queries()
    try:
        if space is None:
            space = embedding_space_active()
            if space is None:
                return None, [], []
        with timings.stage("embed"):
            vector = query_embed(query, space)
        if not query_database:
            return space, vector, []
        with timings.stage("vector"):
            return space, vector, vector_candidates(vector, space, collection_ids, filters, limit)
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
