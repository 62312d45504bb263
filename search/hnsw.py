"""The vector leg's `hnsw.ef_search`: how wide the HNSW walk is, scaled with the space's index.

HNSW's recall at a fixed `ef_search` falls as the graph grows, while its cost grows with `ef_search`. One
fixed value either wastes time on a small knowledge base or loses neighbours on a large one. Measured on
vectors derived from real MiniLM vectors (BENCHMARKS.md, issue 14, "Session 6" and "Session 8"), on the
default graph (m 24, ef_construction 128): at 100,000 passages `ef_search` 150 finds 0.994 of the exact top
10 (200: 0.997); at 1,000,000, 1,000 finds 0.962 (pgvector's sparser default graph, m 16 / ef_construction
64: 0.80 at 400, 0.88 at 600, 0.917 at 1,000). So by default (`RAG_HNSW_EF_SEARCH` = 0)
the walk is `EF_SEARCH_PER_100K` per 100,000 indexed vectors, at least that much, at most
`RAG_HNSW_EF_SEARCH_MAX` (default 1,000, the most pgvector accepts), and never below the rows asked for.
A positive `RAG_HNSW_EF_SEARCH` fixes it instead.

The index size is the partial index's `pg_class.reltuples` (kept by CREATE INDEX, VACUUM and ANALYZE,
autovacuum included), read inside the same statement that sets `ef_search`: no extra round trip.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection

from ingestion.models import EmbeddingSpace
from ingestion.services.spaces import space_index_name

# On the default graph (m 24, ef_construction 128) at 100,000 real-derived vectors, 150 finds 0.994 of the
# exact top 10 (worst query 0.9) and 100 finds 0.972 with one query at 0.0 (BENCHMARKS.md, "Session 8");
# pgvector's sparser graph needed 200 for 0.988.
EF_SEARCH_PER_100K = 150
# pgvector refuses a larger hnsw.ef_search.
EF_SEARCH_CEILING = 1000

_EF_SEARCH_SQL = """
    LEAST(%s, GREATEST(%s, %s, CEIL(GREATEST(COALESCE(
        (SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)), 0), 0) * %s / 100000.0)))::int
"""


def ef_search_sql(space: EmbeddingSpace, limit: int) -> tuple[str, list[Any]]:
    """An SQL expression (and its parameters) for the `ef_search` a search of `space` asking for `limit`
    rows uses: `RAG_HNSW_EF_SEARCH` when positive, otherwise scaled with the space's index size."""
    limit = int(limit)
    fixed = int(settings.RAG_HNSW_EF_SEARCH)
    if fixed > 0:
        return "%s::int", [min(max(fixed, limit), EF_SEARCH_CEILING)]
    ceiling = min(max(int(settings.RAG_HNSW_EF_SEARCH_MAX), EF_SEARCH_PER_100K), EF_SEARCH_CEILING)
    ceiling = max(ceiling, min(limit, EF_SEARCH_CEILING))
    return _EF_SEARCH_SQL, [
        ceiling,
        EF_SEARCH_PER_100K,
        limit,
        space_index_name(space.pk),
        EF_SEARCH_PER_100K,
    ]


def vector_settings_sql(space: EmbeddingSpace, limit: int) -> tuple[str, list[Any]]:
    """The vector query's transaction-local settings, as one statement: `hnsw.ef_search` (above),
    `hnsw.iterative_scan` = relaxed_order, which keeps scanning the index until `limit` rows pass the
    filters (pgvector >= 0.8), and a plan made for this query's own filters. The statement is prepared
    (rag_project/compiled_sql.py), and PostgreSQL would soon reuse one generic plan for every filter: the
    HNSW walk even for a collection of a few passages, where reading them all is the exact answer."""
    expression, params = ef_search_sql(space, limit)
    sql = (
        f"SELECT set_config('hnsw.ef_search', ({expression})::text, true), "
        "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
        "set_config('plan_cache_mode', 'force_custom_plan', true)"
    )
    return sql, params


def ef_search_for(space: EmbeddingSpace, limit: int) -> int:
    """The `ef_search` a search of `space` asking for `limit` rows uses now (one query; for benchmarks and
    diagnostics, the search itself computes it in its settings statement)."""
    expression, params = ef_search_sql(space, limit)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {expression}", params)  # noqa: S608 - a fixed expression
        return int(cursor.fetchone()[0])
