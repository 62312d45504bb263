"""The full-text leg: BM25 over the impact-ordered postings table, and that index's maintenance (tables and
triggers: search/migrations/0003_fulltext_postings.py).

The triggers keep the postings exact on every write; the lexeme statistics arrive as an append-only delta
log that readers add up. Folding the log into the totals keeps those reads short; it never changes a score.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from ingestion.models import FULLTEXT_CONFIG
from rag_project.compiled_sql import prepared_cursor
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


_STATS_SQL = f"""
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


def lexeme_stats(query: str) -> LexemeStats:
    """The query's lexemes (the passages' own text search configuration) and their statistics: the
    folded totals plus the deltas not folded yet, so the figures are exact between maintenance runs.
    (The search itself reads them inside its one statement, `fulltext_sql`; this is for callers that
    want the figures.)"""
    with connection.cursor() as cursor:
        cursor.execute(_STATS_SQL, [query])
        rows = cursor.fetchall()
    corpus = next((row for row in rows if row[0] == ""), ("", 0, 0))
    passages, tokens = int(corpus[1]), int(corpus[2])
    return LexemeStats(
        passages=passages,
        avg_length=(tokens / passages) if passages else 1.0,
        docs={lexeme: int(docs) for lexeme, docs, _ in rows if lexeme and docs > 0},
    )


def fulltext_sql(query: str, where: str, params: list[Any], limit: int) -> tuple[str, list[Any]]:
    """The full-text statement for `query`, filters `where`/`params` on `d` (ingestion_document): the
    query's lexemes and their statistics (`lexeme_stats`'s figures: IDF, mean passage length) are read
    by the statement itself, so the leg is one statement. Lexemes no passage holds are dropped."""
    k1, b = float(BM25_K1), float(BM25_B)

    # BM25 of one posting; `p` is a search_posting row, `idf` its lexeme's IDF, `avgdl` the mean length.
    def term_score(idf: str, avgdl: str) -> str:
        return f"{idf} * p.tf * {k1 + 1} / (p.tf + {k1} * ({1 - b} + {b} * p.dl / {avgdl}))"

    # The limits are literals, not parameters: the statement is prepared (rag_project/compiled_sql.py), and a
    # generic plan would know nothing of a parameter's LIMIT.
    depth = max(int(FULLTEXT_TERM_DEPTH), int(limit))
    rescore = max(int(FULLTEXT_RESCORE_DEPTH), int(limit))
    # `q`: one row per query lexeme some passage holds, with its IDF (Lucene's form, as LexemeStats.idf)
    # and the corpus's mean passage length (the '' row holds the corpus totals); `qa`: the same as arrays.
    # Materialized: the scans below see a handful of known rows. Then both steps are LATERAL, so each is
    # an index walk: per lexeme in impact order, stopping at `depth` readable rows (index only:
    # document_id, tf and dl ride in the index), then per pooled passage its postings of the query's
    # lexemes (primary key, `lexeme = ANY`: only those rows are read). The first step's sums miss the
    # lexemes a passage holds below another lexeme's top `depth`; the second step scores the best
    # `rescore` passages exactly.
    sql = f"""
        WITH st(lexeme, docs, tokens) AS MATERIALIZED ({_STATS_SQL}),
        corpus AS MATERIALIZED (
            SELECT coalesce(max(st.docs) FILTER (WHERE st.lexeme = ''), 0)::float8 AS n,
                   coalesce(max(st.tokens) FILTER (WHERE st.lexeme = ''), 0)::float8 AS tokens
            FROM st
        ),
        q AS MATERIALIZED (
            SELECT st.lexeme,
                   ln(1.0 + (corpus.n - st.docs::float8 + 0.5) / (st.docs::float8 + 0.5)) AS idf,
                   CASE WHEN corpus.n > 0 THEN corpus.tokens / corpus.n ELSE 1.0 END AS avgdl
            FROM st CROSS JOIN corpus
            WHERE st.lexeme <> '' AND st.docs > 0
        ),
        qa AS MATERIALIZED (
            SELECT array_agg(q.lexeme) AS lexemes, array_agg(q.idf) AS idfs, max(q.avgdl) AS avgdl FROM q
        ),
        pool AS (
            SELECT hit.chunk_id, sum(hit.score) AS partial
            FROM q CROSS JOIN LATERAL (
                SELECT p.chunk_id, {term_score("q.idf", "q.avgdl")} AS score
                FROM search_posting p
                JOIN ingestion_document d ON d.id = p.document_id
                WHERE p.lexeme = q.lexeme AND {where}
                ORDER BY p.impact DESC, p.chunk_id
                LIMIT {depth}
            ) hit
            GROUP BY hit.chunk_id
            ORDER BY partial DESC, hit.chunk_id
            LIMIT {rescore}
        )
        SELECT pool.chunk_id, s.score
        FROM pool CROSS JOIN qa CROSS JOIN LATERAL (
            SELECT sum({term_score("qa.idfs[array_position(qa.lexemes, p.lexeme)]", "qa.avgdl")}) AS score
            FROM search_posting p
            WHERE p.chunk_id = pool.chunk_id AND p.lexeme = ANY(qa.lexemes)
        ) s
        ORDER BY s.score DESC, pool.chunk_id
        LIMIT {int(limit)}
    """  # noqa: S608 - fixed fragments, floats and integers only
    return sql, [query, *params]


def fulltext_candidates(
    query: str, collection_ids: list[int], filters: SearchFilters, limit: int
) -> list[tuple[int, float]]:
    """Passages ranked by BM25 over the query's lexemes, best first, with their scores.

    One statement, sent with its transaction's BEGIN, plan settings and COMMIT in one flight: the
    query's lexeme statistics, then for each lexeme the `FULLTEXT_TERM_DEPTH` readable passages with the
    highest impact (index `search_posting_impact`, read in order, filters applied as rows are read, so a
    filter never shortens the list); then each pooled passage is scored exactly from its postings of every
    query lexeme (primary key lookups). Lexemes no passage holds are dropped."""
    if limit <= 0 or not query.strip():
        return []
    where, params = filters_sql(collection_ids, filters)
    sql, sql_params = fulltext_sql(query, where, params, limit)
    rows = query_with_settings(fulltext_plan_settings_sql(), [], sql, sql_params)
    return [(int(chunk_id), float(score)) for chunk_id, score in rows]


def query_with_settings(
    settings_sql: str, settings_params: list[Any], sql: str, params: list[Any]
) -> list[tuple]:
    """`sql`'s rows, run in a transaction of its own after `settings_sql` (`set_config(..., true)`: these
    settings end with the transaction, never leaking to the pooled connection). BEGIN, the settings, the
    query and COMMIT go to the server in one flight (psycopg pipeline mode; the rows are read once the
    flight is back): one round trip where each of them was one. Inside a caller's transaction (tests, an
    atomic block) a savepoint instead, so the query sees the caller's uncommitted writes."""
    # The settings and the query are prepared statements (rag_project/compiled_sql.py).
    if connection.in_atomic_block:
        with transaction.atomic(), prepared_cursor() as cursor, statements_pipelined():
            cursor.execute(settings_sql, settings_params)
            cursor.execute(sql, params)
            return cursor.fetchall()
    with connection.cursor() as control, prepared_cursor() as cursor:
        try:
            with statements_pipelined():
                control.execute("BEGIN")
                cursor.execute(settings_sql, settings_params)
                cursor.execute(sql, params)
                control.execute("COMMIT")
        except Exception:
            # A failed statement leaves the transaction open and aborted (the flight skipped its COMMIT):
            # end it, so the connection goes back clean.
            with contextlib.suppress(Exception):
                control.execute("ROLLBACK")
            raise
        return cursor.fetchall()


@contextmanager
def statements_pipelined() -> Iterator[None]:
    """psycopg's pipeline mode on this connection: the transaction's BEGIN, its `set_config` and the query go
    to the server in one flight instead of three round trips (each a wake-up of the server process, which
    costs most on a busy machine). Results are read as before; leaving the block syncs."""
    with connection.connection.pipeline():
        yield


def fulltext_plan_settings_sql() -> str:
    """Keep the full-text statement on nested loops, for this transaction only. The planner cannot know
    which lexeme each lateral scan reads, so it plans for an average posting list and may hash a whole
    list; a nested loop reads the index in impact order and stops after `depth` readable rows."""
    return "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)"


def fulltext_plan_settings(cursor) -> None:
    """`fulltext_plan_settings_sql` on `cursor` (inside the caller's transaction)."""
    cursor.execute(fulltext_plan_settings_sql())
