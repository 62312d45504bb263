"""The full-text leg: BM25 over the impact-ordered postings table, and that index's maintenance (tables and
triggers: search/migrations/0003_fulltext_postings.py).

The triggers keep the postings exact on every write; the lexeme statistics arrive as an append-only delta
log that readers add up. Folding the log into the totals keeps those reads short; it never changes a score.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from ingestion.models import FULLTEXT_CONFIG
from search.sql_filters import filters_sql
from search.types import SearchFilters


def lexeme_stats_compact() -> int:
    """Fold the pending statistics deltas into the totals; returns how many lexemes were updated."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_lexeme_stats_compact()")
        (folded,) = cursor.fetchone()
    return int(folded or 0)


def postings_rebuild() -> None:
    """Rebuild the postings and statistics from every passage in one pass: after a bulk load made with the
    index triggers disabled (faster than maintaining the indexes row by row), or to repair by hand."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_postings_rebuild()")


# BM25 (Lucene's form). k1 and b tuned on SciFact's train split only (BENCHMARKS.md, full-text section).
BM25_K1 = 0.9
BM25_B = 0.4
# How many postings of each query lexeme are read, best impact first ("WAND-lite"): the candidate pool is
# the union of these lists, so the cost is bounded by (query lexemes x depth), whatever the corpus size.
FULLTEXT_TERM_DEPTH = 100
# How many of the pooled passages, by their partial sums, are scored exactly over every query lexeme.
FULLTEXT_RESCORE_DEPTH = 100


@dataclass
class LexemeStats:
    """Corpus figures BM25 needs for one query: passages, their mean length, each lexeme's passage count."""

    passages: int
    avg_length: float
    docs: dict[str, int]

    def idf(self, lexeme: str) -> float:
        df = self.docs.get(lexeme, 0)
        return math.log(1.0 + (self.passages - df + 0.5) / (df + 0.5))


def lexeme_stats(query: str) -> LexemeStats:
    """The query's lexemes (the passages' own text search configuration) and their statistics: the
    folded totals plus the deltas not folded yet, so the figures are exact between maintenance runs."""
    sql = f"""
        WITH l(lexeme) AS (
            SELECT DISTINCT lexeme FROM unnest(to_tsvector('{FULLTEXT_CONFIG}', %s)) UNION SELECT ''
        )
        SELECT l.lexeme, coalesce(s.docs, 0) + coalesce(dd.docs, 0),
               coalesce(s.tokens, 0) + coalesce(dd.tokens, 0)
        FROM l
        LEFT JOIN search_lexeme_stat s ON s.lexeme = l.lexeme
        LEFT JOIN LATERAL (
            SELECT sum(d.docs) AS docs, sum(d.tokens) AS tokens
            FROM search_lexeme_delta d WHERE d.lexeme = l.lexeme
        ) dd ON true
    """  # noqa: S608 - fixed fragments only
    with connection.cursor() as cursor:
        cursor.execute(sql, [query])
        rows = cursor.fetchall()
    corpus = next((row for row in rows if row[0] == ""), ("", 0, 0))
    passages, tokens = int(corpus[1]), int(corpus[2])
    return LexemeStats(
        passages=passages,
        avg_length=(tokens / passages) if passages else 1.0,
        docs={lexeme: int(docs) for lexeme, docs, _ in rows if lexeme and docs > 0},
    )


def fulltext_sql(
    lexemes: list[str], stats: LexemeStats, where: str, params: list[Any], limit: int
) -> tuple[str, list[Any]]:
    """The full-text statement for `lexemes` (each held by at least one passage), filters `where`/`params`
    on `d` (ingestion_document)."""
    k1, b = float(BM25_K1), float(BM25_B)
    idf = [stats.idf(lexeme) for lexeme in lexemes]
    # BM25 of one posting; `p` is a search_posting row.
    term_score = (
        f"(%s::float8[])[array_position(%s::text[], p.lexeme)]"
        f" * p.tf * {k1 + 1} / (p.tf + {k1} * ({1 - b} + {b} * p.dl / %s::float8))"
    )
    term_params = [idf, lexemes, stats.avg_length]
    # Both steps are LATERAL, so each is an index walk: per lexeme in impact order, stopping at `depth`
    # readable rows (index only: document_id, tf and dl ride in the index), then per pooled passage its
    # postings of every query lexeme (primary key). The first step's sums miss the lexemes a passage holds
    # below another lexeme's top `depth`; the second step scores the best `rescore` passages exactly.
    sql = f"""
        WITH pool AS (
            SELECT hit.chunk_id, sum(hit.score) AS partial
            FROM unnest(%s::text[]) AS q(lexeme) CROSS JOIN LATERAL (
                SELECT p.chunk_id, {term_score} AS score
                FROM search_posting p
                JOIN ingestion_document d ON d.id = p.document_id
                WHERE p.lexeme = q.lexeme AND {where}
                ORDER BY p.impact DESC, p.chunk_id
                LIMIT %s
            ) hit
            GROUP BY hit.chunk_id
            ORDER BY partial DESC, hit.chunk_id
            LIMIT %s
        )
        SELECT pool.chunk_id, s.score
        FROM pool CROSS JOIN LATERAL (
            SELECT sum({term_score}) AS score
            FROM search_posting p
            WHERE p.chunk_id = pool.chunk_id AND p.lexeme = ANY(%s::text[])
        ) s
        ORDER BY s.score DESC, pool.chunk_id
        LIMIT %s
    """  # noqa: S608 - fixed fragments and floats only
    depth = max(int(FULLTEXT_TERM_DEPTH), int(limit))
    rescore = max(int(FULLTEXT_RESCORE_DEPTH), int(limit))
    return sql, [
        lexemes, *term_params, *params, depth, rescore, *term_params, lexemes, int(limit),
    ]  # fmt: skip


def fulltext_candidates(
    query: str, collection_ids: list[int], filters: SearchFilters, limit: int
) -> list[tuple[int, float]]:
    """Passages ranked by BM25 over the query's lexemes, best first, with their scores.

    Two steps in one statement: for each lexeme, the `FULLTEXT_TERM_DEPTH` readable passages with the
    highest impact (index `search_posting_impact`, read in order, filters applied as rows are read, so a
    filter never shortens the list); then each pooled passage is scored exactly from its postings of every
    query lexeme (primary key lookups). Lexemes no passage holds are dropped."""
    stats = lexeme_stats(query)
    lexemes = sorted(stats.docs)
    if not lexemes or limit <= 0:
        return []
    where, params = filters_sql(collection_ids, filters)
    sql, sql_params = fulltext_sql(lexemes, stats, where, params, limit)
    with transaction.atomic(), connection.cursor() as cursor, statements_pipelined():
        fulltext_plan_settings(cursor)
        cursor.execute(sql, sql_params)
        return [(int(chunk_id), float(score)) for chunk_id, score in cursor.fetchall()]


@contextmanager
def statements_pipelined() -> Iterator[None]:
    """psycopg's pipeline mode on this connection: the transaction's BEGIN, its `set_config` and the query go
    to the server in one flight instead of three round trips (each a wake-up of the server process, which
    costs most on a busy machine). Results are read as before; leaving the block syncs."""
    with connection.connection.pipeline():
        yield


def fulltext_plan_settings(cursor) -> None:
    """Keep the full-text statement on nested loops, for this transaction only. The planner cannot know
    which lexeme each lateral scan reads, so it plans for an average posting list and may hash a whole
    list; a nested loop reads the index in impact order and stops after `depth` readable rows."""
    cursor.execute(
        "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"
    )
