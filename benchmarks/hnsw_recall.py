"""HNSW recall@10: the vector search's approximate top 10 (the active space's partial HNSW index, the
service's hnsw.ef_search) against the exact top 10 (the same SQL with index scans disabled, i.e. a
sequential scan computing every distance), over SciFact test queries, at N passages (SciFact + filler).

    python -m benchmarks.hnsw_recall                       # 100,000 passages, 200 queries
    python -m benchmarks.hnsw_recall --passages 10000 --queries 50 --sample 20
    python -m benchmarks.hnsw_recall --vectors realmix --passages 1000000 --data-dir DIR --dataset BEIR_DIR

`--vectors hash` (default): SciFact through the ingestion service with the stand-in's engine
(`--embeddings`), topped up with hash-embedded filler; the exact top 10 is the same SQL with index scans off.
`--vectors realmix`: every passage is a synthetic vector derived from real MiniLM sentence vectors
(benchmarks/realmix.py says how), the queries are real MiniLM vectors of SciFact test claims, and the exact
top 10 is computed in numpy from the stored (half-precision) vectors, checked against the SQL's exact scan
on the first `--sql-checks` queries. Every query's plan is checked for the HNSW index, not just the first.
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
    vector,
    space,
    collection_ids,
    *,
    exact: bool,
    ef_search: int | None = None,
    limit: int = K,
    scan: int | None = None,
) -> tuple[list[int], str]:
    """Chunk ids of the search's own SQL asked for `limit` rows, with hnsw.ef_search = max(ef_search, limit)
    as the service sets it; with `exact`, index scans are off (SET LOCAL). With `scan`, the SQL asks the
    index for that many rows (the iterative scan goes on past ef_search), sorts them exactly and the first
    `limit` are returned: a wider search than ef_search alone allows."""
    from django.db import connection, transaction

    from search.hnsw import EF_SEARCH_CEILING
    from search.selectors import vector_candidates_sql
    from search.types import SearchFilters

    sql, params = vector_candidates_sql(vector, space, collection_ids, SearchFilters(), max(limit, scan or 0))
    with transaction.atomic(), connection.cursor() as cursor:
        ef = min(max(int(ef_search), limit), EF_SEARCH_CEILING)
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef)])
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        if exact:
            cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(sql, params)
        return [int(row[0]) for row in cursor.fetchall()][:limit], plan


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", choices=("hash", "realmix"), default="hash")
    parser.add_argument(
        "--limit",
        type=int,
        action="append",
        default=None,
        help="realmix: rows the SQL asks for (the service asks RAG_RERANK_CANDIDATES)",
    )
    parser.add_argument(
        "--scan",
        type=int,
        action="append",
        default=None,
        help="realmix: rows the index scan returns before the exact sort (iterative scan past ef_search)",
    )
    parser.add_argument(
        "--real-sentences", type=int, default=2000, help="realmix: corpus sentences embedded (0: all)"
    )
    parser.add_argument("--build-workers", type=int, default=2, help="realmix: parallel HNSW build workers")
    parser.add_argument("--m", type=int, default=None, help="realmix: the graph's m (default RAG_HNSW_M)")
    parser.add_argument(
        "--ef-construction", type=int, default=None, help="realmix: default RAG_HNSW_EF_CONSTRUCTION"
    )
    parser.add_argument(
        "--sql-checks", type=int, default=5, help="realmix: queries whose exact top 10 the SQL checks"
    )
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
    if args.vectors == "realmix":
        return realmix_main(args)
    info = machine_info()
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    try:
        from django.conf import settings

        from benchmarks.corpus import filler_top_up, passages_count, scifact_load
        from genapi import get_client
        from ingestion.models import Collection
        from search.hnsw import ef_search_for
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
        ef_values = args.ef_search or sorted({ef_search_for(space, K), 40}, reverse=True)
        results: dict[str, Any] = {}
        plans_with_index = plans_checked = 0
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
                # Every query's plan: the space's index is named ..._hnsw (other index scans are the joins).
                plans_with_index += "_hnsw" in plan
                plans_checked += 1
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
        index_used = plans_checked > 0 and plans_with_index == plans_checked
    finally:
        db.teardown()

    print(
        f"hnsw_recall: {total:,} passages, {len(vectors)} queries, {space.dimensions}-d halfvec, cosine; "
        f"HNSW index used by the search SQL: {index_used} ({plans_with_index}/{plans_checked} plans)"
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
        "plans_with_index": plans_with_index,
        "plans_checked": plans_checked,
        "results": results,
    }
    write_json(args.json, result)
    return result


def realmix_main(args) -> dict[str, Any]:
    """HNSW recall over synthetic vectors derived from real MiniLM vectors (benchmarks/realmix.py)."""
    import numpy as np

    info = machine_info()
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    try:
        from django.conf import settings
        from django.db import connection

        from benchmarks.realmix import (
            REALMIX_SLUG,
            realmix_insert,
            realmix_vectors,
            sentence_vectors,
        )
        from genapi.local.engines import load_minilm
        from ingestion.models import Chunk, Collection, EmbeddingSpace
        from ingestion.services.spaces import (
            embedding_space_index_create,
            embedding_space_index_drop,
            space_index_name,
        )
        from search.hnsw import ef_search_for

        print_machine(info)
        space = EmbeddingSpace.objects.filter(is_active=True).first() or EmbeddingSpace.objects.create(
            provider_base_url="in-process", model=settings.GENAPI_EMBEDDING_MODEL, dimensions=384,
            is_active=True, status=EmbeddingSpace.Status.READY,
        )  # fmt: skip
        sentences, owner = sentence_vectors(
            args.dataset, db.data_dir / "realmix-sentences.npy", args.real_sentences
        )
        print(f"# {len(sentences):,} real MiniLM sentence vectors", flush=True)
        chunk_ids = lambda: list(  # noqa: E731
            Chunk.objects.filter(document__collection__slug=REALMIX_SLUG)
            .order_by("id")
            .values_list("id", flat=True)
        )
        have = len(chunk_ids())
        timings: dict[str, float] = {}
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [space_index_name(space.pk)])
            index_present = cursor.fetchone() is not None
        if have < args.passages or (index_present and (args.m or args.ef_construction)):
            # New passages, or other graph parameters asked for: the index is built again.
            embedding_space_index_drop(space)
            index_present = False
            t0 = time.perf_counter()
            step = 100_000
            for first in range(have, args.passages, step):
                count = min(step, args.passages - first)
                realmix_insert(realmix_vectors(sentences, owner, first, count), space.pk, first=first)
            timings["insert_s"] = round(time.perf_counter() - t0, 1)
        if not index_present:
            with connection.cursor() as cursor:
                cursor.execute("SET maintenance_work_mem = '4GB'")
                cursor.execute("SET max_parallel_maintenance_workers = %s", [int(args.build_workers)])
            t0 = time.perf_counter()
            print(f"# building the HNSW index ({args.build_workers} parallel workers)", flush=True)
            if args.m:
                settings.RAG_HNSW_M = args.m
            if args.ef_construction:
                settings.RAG_HNSW_EF_CONSTRUCTION = args.ef_construction
            graph = f"m {settings.RAG_HNSW_M}, ef_construction {settings.RAG_HNSW_EF_CONSTRUCTION}"
            print(f"# {graph}", flush=True)
            embedding_space_index_create(space)
            timings["hnsw_build_s"] = round(time.perf_counter() - t0, 1)
            print(f"# HNSW built in {timings['hnsw_build_s']:.0f} s", flush=True)
            with connection.cursor() as cursor:
                cursor.execute("RESET maintenance_work_mem")
                cursor.execute("ANALYZE ingestion_chunkembedding")
                cursor.execute("ANALYZE ingestion_chunk")
                cursor.execute("ANALYZE ingestion_document")
        ids = np.asarray(chunk_ids(), dtype=np.int64)
        collection_ids = list(Collection.objects.values_list("id", flat=True))
        queries = test_queries(args.dataset, args.queries)
        q = np.asarray(load_minilm().encode(queries, normalize_embeddings=True), dtype=np.float32)
        q16 = q.astype(np.float16).astype(np.float32)  # the SQL casts the query to halfvec too
        q16 /= np.linalg.norm(q16, axis=1, keepdims=True)
        # The exact top K+1 by cosine over the stored half-precision vectors, block by block.
        best_s = np.full((len(q), 0), -2.0, dtype=np.float32)
        best_i = np.zeros((len(q), 0), dtype=np.int64)
        step = 100_000
        for first in range(0, len(ids), step):
            v = realmix_vectors(sentences, owner, first, min(step, len(ids) - first)).astype(np.float16)
            v = v.astype(np.float32)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            sims = q16 @ v.T
            top = np.argpartition(-sims, K + 1, axis=1)[:, : K + 1]
            best_s = np.concatenate([best_s, np.take_along_axis(sims, top, axis=1)], axis=1)
            best_i = np.concatenate([best_i, ids[first + top]], axis=1)
            keep = np.argsort(-best_s, axis=1)[:, : K + 1]
            best_s, best_i = (
                np.take_along_axis(best_s, keep, axis=1),
                np.take_along_axis(best_i, keep, axis=1),
            )
        truth = [set(row[:K].tolist()) for row in best_i]
        sims_1, sims_10, sims_11 = best_s[:, 0], best_s[:, K - 1], best_s[:, K]
        checks = []
        for n in range(min(args.sql_checks, len(q))):
            exact, exact_plan = top_ids(q[n].tolist(), space, collection_ids, exact=True, ef_search=40)
            if "_hnsw" in exact_plan:
                raise RuntimeError(f"exact search still used an index:\n{exact_plan}")
            checks.append(len(truth[n].intersection(exact[:K])) / K)
        print(f"# numpy exact top 10 vs the SQL's exact scan on {len(checks)} queries: {checks}", flush=True)
        results: dict[str, Any] = {}
        plans_with_index = plans_checked = 0
        ef_values = args.ef_search or sorted({40, ef_search_for(space, K), 200, 400})
        runs = [
            (limit, ef, scan) for limit in args.limit or [K] for ef in ef_values for scan in args.scan or [0]
        ]
        for limit, ef, scan in runs:
            per_query, seconds = [], []
            for n in range(len(q)):
                t0 = time.perf_counter()
                approx, plan = top_ids(
                    q[n].tolist(),
                    space,
                    collection_ids,
                    exact=False,
                    ef_search=ef,
                    limit=limit,
                    scan=scan,
                )
                seconds.append(time.perf_counter() - t0)
                plans_with_index += "_hnsw" in plan
                plans_checked += 1
                per_query.append(len(truth[n].intersection(approx[:K])) / K)
            label = f"limit {limit}, ef_search {max(ef, limit)}" + (f", scan {scan}" if scan else "")
            results[label] = r = {
                "limit": limit,
                "ef_search": max(ef, limit),
                "scan": scan,
                "recall_at_10": round(float(np.mean(per_query)), 4),
                "min_query_recall": round(min(per_query), 2),
                "hnsw_ms_p50": round(float(np.median(seconds)) * 1000, 1),
                "hnsw_ms_p95": round(float(np.percentile(seconds, 95)) * 1000, 1),
            }
            print(
                f"  LIMIT {limit:>3}, ef_search {r['ef_search']:>4}"
                + (f", scan {scan:>5}" if scan else "")
                + f": recall@10 {r['recall_at_10']:.4f} "
                f"(worst query {r['min_query_recall']}), "
                f"p50 {r['hnsw_ms_p50']} ms, p95 {r['hnsw_ms_p95']} ms",
                flush=True,
            )
    finally:
        db.teardown(stop_server=True)
    index_used = plans_checked > 0 and plans_with_index == plans_checked
    gap = (sims_10 - sims_11) / np.maximum(1 - sims_10, 1e-6)
    print(
        f"hnsw_recall (realmix): {len(ids):,} passages, {len(q)} real MiniLM queries, 384-d halfvec, cosine; "
        f"HNSW index used by the search SQL: {index_used} ({plans_with_index}/{plans_checked} plans); "
        f"exact neighbours: cosine of the 1st {np.median(sims_1):.3f}, 10th {np.median(sims_10):.3f}, "
        f"11th {np.median(sims_11):.3f} (medians); 10th-11th gap / (1 - 10th) median {np.median(gap):.4f}"
    )
    result = {
        "benchmark": "hnsw_recall",
        "vectors": "realmix",
        "machine": info,
        "passages": int(len(ids)),
        "queries": int(len(q)),
        "index_used": index_used,
        "plans_with_index": plans_with_index,
        "plans_checked": plans_checked,
        "sql_checks": checks,
        "timings": timings,
        "neighbour_cosine_median": {
            "1st": round(float(np.median(sims_1)), 4),
            "10th": round(float(np.median(sims_10)), 4),
            "11th": round(float(np.median(sims_11)), 4),
        },
        "results": results,
    }
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
