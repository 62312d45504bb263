"""HNSW recall@10: the vector search's approximate top 10 (the active space's partial HNSW index, the
service's hnsw.ef_search) against the exact top 10 (the same SQL with index scans disabled, i.e. a
sequential scan computing every distance), over SciFact test queries, at N passages (SciFact + filler).

    python -m benchmarks.hnsw_recall                       # 100,000 passages, 200 queries
    python -m benchmarks.hnsw_recall --passages 10000 --queries 50 --sample 20
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    BenchDatabase,
    Stack,
    base_parser,
    machine_info,
    print_machine,
    write_json,
)

K = 10


def test_queries(dataset: str, n: int) -> list[str]:
    from search.evaluation import beir_load

    ds = beir_load(Path(dataset), "test")
    return list(ds.queries.values())[:n]


def top_ids(
    vector, space, collection_ids, *, exact: bool, ef_search: int | None = None
) -> tuple[list[int], str]:
    """Top K chunk ids by the search's own SQL; with `exact`, index scans are off (SET LOCAL)."""
    from django.db import connection, transaction

    from search.selectors import vector_candidates_sql
    from search.types import SearchFilters

    sql, params = vector_candidates_sql(vector, space, collection_ids, SearchFilters(), K)
    with transaction.atomic(), connection.cursor() as cursor:
        ef = max(int(ef_search), K)
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(sql, params)
        return [int(row[0]) for row in cursor.fetchall()], plan


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=100_000, help="total passages (SciFact + filler)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--embeddings", choices=("hash", "minilm"), default="hash", help="the stand-in's engine (queries)"
    )
    parser.add_argument(
        "--ef-search",
        type=int,
        action="append",
        default=None,
        help="ef_search values to measure (default: the service's RAG_HNSW_EF_SEARCH and 40)",
    )
    args = parser.parse_args(argv)
    info = machine_info()
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    try:
        from django.conf import settings

        from benchmarks.corpus import filler_top_up, passages_count, scifact_load
        from genapi import get_client
        from ingestion.models import Collection
        from search.selectors import embedding_space_active

        print_machine(info)
        with Stack(standin_env={"GENAPI_LOCAL_EMBEDDINGS": args.embeddings}) as stack:
            stack.start_standin()
            scifact_load(args.dataset, args.sample, log=lambda m: None)
            filler_top_up(args.dataset, args.passages)
            total = passages_count()
            space = embedding_space_active()
            collection_ids = list(Collection.objects.values_list("id", flat=True))
            queries = test_queries(args.dataset, args.queries)
            vectors = get_client().embeddings_create(space.model, input=queries).vectors
        ef_values = args.ef_search or sorted({int(settings.RAG_HNSW_EF_SEARCH), 40}, reverse=True)
        results: dict[str, Any] = {}
        index_used = None
        for ef in ef_values:
            hits = 0
            approx_s = exact_s = 0.0
            per_query = []
            for vector in vectors:
                t0 = time.perf_counter()
                approx, plan = top_ids(vector, space, collection_ids, exact=False, ef_search=ef)
                t1 = time.perf_counter()
                exact, exact_plan = top_ids(vector, space, collection_ids, exact=True, ef_search=ef)
                t2 = time.perf_counter()
                approx_s += t1 - t0
                exact_s += t2 - t1
                if index_used is None:
                    # The space's index is named ..._hnsw; other index scans in the plan are the joins.
                    index_used = "_hnsw" in plan
                    if "_hnsw" in exact_plan:
                        raise RuntimeError(f"exact search still used an index:\n{exact_plan}")
                truth = set(exact[:K])
                got = len(truth.intersection(approx[:K])) / len(truth) if truth else 1.0
                per_query.append(got)
                hits += got
            n = len(vectors)
            results[str(ef)] = {
                "recall_at_10": round(hits / n, 4) if n else 0.0,
                "min_query_recall": round(min(per_query), 2) if per_query else 0.0,
                "hnsw_ms_mean": round(approx_s / n * 1000, 2) if n else 0.0,
                "exact_ms_mean": round(exact_s / n * 1000, 2) if n else 0.0,
            }
    finally:
        db.teardown()

    print(
        f"hnsw_recall: {total:,} passages, {len(vectors)} queries, {space.dimensions}-d halfvec, cosine; "
        f"HNSW index used by the search SQL: {index_used}"
    )
    for ef, r in results.items():
        label = (
            " (service default RAG_HNSW_EF_SEARCH)"
            if int(ef) == int(settings.RAG_HNSW_EF_SEARCH)
            else (" (pgvector default)" if int(ef) == 40 else "")
        )
        print(
            f"  ef_search {ef:>4}{label}: recall@10 {r['recall_at_10']:.4f} "
            f"(worst query {r['min_query_recall']}), "
            f"HNSW {r['hnsw_ms_mean']} ms vs exact {r['exact_ms_mean']} ms per query"
        )
    result = {
        "benchmark": "hnsw_recall",
        "machine": info,
        "passages": total,
        "queries": len(vectors),
        "index_used": index_used,
        "results": results,
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
