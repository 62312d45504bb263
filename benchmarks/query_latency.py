"""Query latency: `POST /api/search` (hybrid, with and without rerank) and `POST /api/ask` at 10,000, 100,000
and 1,000,000 passages in one run (SciFact through the ingestion code, topped up with generated filler
inserted with bulk SQL and COPY), one client and 8 concurrent clients: p50/p95/p99, requests/s, errors, and
the median of each stage of the service's own `timings` (so a slow figure says where its time went).

Each size has its own database (`--data-root DIR` keeps them in DIR/<size>; `--reuse` measures a kept one
without rebuilding it, reporting the set-up and index build times recorded when it was built). Each size
runs in a child process: the corpus is prepared, then gunicorn (2 workers x 4 threads by default, DEBUG
off) and the stand-in (hash embeddings, lexical rerank, no added latency) start on free ports. Queries
are SciFact claims (train and test); every measured pass uses queries no earlier pass sent, so the rerank
cache never flatters a figure.
The table is printed, and with `--plot OUT.png` drawn (latency against corpus size, log scales).

    python -m benchmarks.query_latency --data-root /work/bench-data/latency --reuse --plot latency.png
    python -m benchmarks.query_latency --data-root DIR --sizes 1000000 --prepare-only     # build only
    python -m benchmarks.query_latency --sample 20 --sizes 500,1000 --requests 16 --ask-requests 4

Over 400 lines: building three corpus sizes, measuring passes and rendering the table and plot are one
run whose steps share state; it is a script, not library code.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    REPO_ROOT,
    BenchDatabase,
    CpuMeter,
    Stack,
    base_parser,
    bench_principal,
    latency_summary,
    machine_info,
    percentile,
    postmaster_pid,
    print_machine,
    write_json,
)

CONCURRENT = 8
# Searches each client of the widest pass sends before the passes: 200 at 8 clients, so a default run sends
# no query twice. At 1,000,000 passages the first few dozen read the HNSW graph and the postings from disk (a
# fresh server's buffers are empty): with 5 in all, the first pass measured that (p95 119.8 ms against 72 for
# the next one-client pass; BENCHMARKS.md, session 5).
WARMUP = 25
CORPUS_META = "corpus.json"
BUILDING_MARK = "building"
# (name, path, extra body, clients); each pass gets fresh queries.
PASSES = (
    ("search no rerank, 1 client", "/api/search", {"rerank": False}, 1),
    (f"search no rerank, {CONCURRENT} clients", "/api/search", {"rerank": False}, CONCURRENT),
    ("search rerank, 1 client", "/api/search", {}, 1),
    (f"search rerank, {CONCURRENT} clients", "/api/search", {}, CONCURRENT),
    ("ask, 1 client", "/api/ask", {}, 1),
)


def all_queries(dataset: str) -> list[str]:
    """Every SciFact claim (train and test queries), in file order."""
    with open(Path(dataset) / "queries.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()]


class _StdlibClient:
    """One keep-alive HTTP/1.1 connection from the standard library: a POST of JSON costs the load generator
    a fraction of httpx's CPU. On 2 cores the client shares the machine with the server it measures, so
    every millisecond it spends is one the server does not get (BENCHMARKS.md, issue 14, "Session 8")."""

    def __init__(self, base_url: str, key: str, timeout: float):
        parts = urlsplit(base_url)
        self._connect = lambda: http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self._conn = self._connect()
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def _send(self, path: str, payload: bytes) -> tuple[int, bytes]:
        self._conn.request("POST", path, body=payload, headers=self._headers)
        response = self._conn.getresponse()
        return response.status, response.read()

    def post(self, path: str, body: dict) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        try:
            return self._send(path, payload)
        except (OSError, http.client.HTTPException):
            # The server closed a kept connection between two requests: once more on a new one.
            self._conn.close()
            self._conn = self._connect()
            return self._send(path, payload)

    def close(self) -> None:
        self._conn.close()


class _HttpxClient:
    def __init__(self, base_url: str, key: str, timeout: float):
        import httpx

        self._client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )

    def post(self, path: str, body: dict) -> tuple[int, bytes]:
        response = self._client.post(path, json=body)
        return response.status_code, response.content

    def close(self) -> None:
        self._client.close()


CLIENTS = {"stdlib": _StdlibClient, "httpx": _HttpxClient}


def _requests(
    base_url: str,
    key: str,
    path: str,
    bodies: list[dict],
    clients: int,
    seconds_max: float = 0.0,
    client_kind: str = "stdlib",
) -> tuple[list[float], float, dict[int, int], list[dict[str, Any]]]:
    """Send `bodies` from `clients` threads (each its own connection): latencies of the 200s, wall time,
    status counts, and each 200's `timings` (plus `rerank_tokens`) as the service reported them. With
    `seconds_max`, clients send no new request after that many seconds (slow sizes get fewer requests)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    reported: list[dict[str, Any]] = []
    shares = [bodies[i::clients] for i in range(clients)]

    def client_loop(share: list[dict]) -> list[tuple[float, int, dict]]:
        out = []
        client = CLIENTS[client_kind](base_url, key, 120)
        try:
            for body in share:
                if seconds_max and time.perf_counter() - started > seconds_max:
                    break
                t0 = time.perf_counter()
                try:
                    status, content = client.post(path, body)
                except Exception:  # noqa: BLE001 - a transport error is counted as status 0
                    out.append((time.perf_counter() - t0, 0, {}))
                    continue
                seconds = time.perf_counter() - t0
                data = json.loads(content) if status == 200 else {}
                stages = dict(data.get("timings") or {})
                if "rerank_tokens" in data:
                    stages["rerank_tokens"] = data["rerank_tokens"]
                out.append((seconds, status, stages))
        finally:
            client.close()
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for result in pool.map(client_loop, shares):
            for seconds, status, stages in result:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(seconds)
                    reported.append(stages)
    return latencies, time.perf_counter() - started, statuses, reported


def _stage_percentiles(reported: list[dict[str, Any]], pct: float = 50) -> dict[str, float]:
    names = sorted({name for stages in reported for name in stages})
    out = {}
    for name in names:
        values = [float(s[name]) for s in reported if isinstance(s.get(name), int | float)]
        if values:
            out[name] = round(percentile(values, pct), 1)
    return out


def corpus_prepare(args, size: int, data_dir: Path | None) -> dict[str, Any]:
    """SciFact + filler up to `size` passages in this child's database; reused as is with --reuse when a
    kept database already holds them. Returns set-up figures (from the original build when reused)."""
    from benchmarks.corpus import filler_top_up, passages_count, scifact_load

    meta_path = data_dir / CORPUS_META if data_dir else None
    building = data_dir / BUILDING_MARK if data_dir else None
    if args.reuse and meta_path and building and building.exists():
        # Another process is still building this size (--prepare-only started earlier): wait for it.
        print(f"  [{size:,}] waiting for the build in progress ({building}) ...", flush=True)
        builder = int(building.read_text().strip() or 0)
        while not meta_path.exists() or _alive(builder):
            time.sleep(5)
        building.unlink(missing_ok=True)
        if not args.database_url:
            # The builder stopped the embedded server this process attached to; reattaching in-process
            # did not work (pgserver keeps its handle), so say what to do rather than fail obscurely.
            raise SystemExit(f"[{size:,}] the build finished and stopped its server: run again with --reuse")
    have = passages_count()
    if args.reuse and meta_path and meta_path.exists() and have >= size:
        meta = json.loads(meta_path.read_text())
        return {**meta, "reused": True, "passages": have}
    started = time.perf_counter()
    if building:
        building.write_text(str(os.getpid()))
    scifact_id = scifact_load(args.dataset, args.sample, log=lambda m: None)
    scifact_s = time.perf_counter() - started
    filler: dict[str, float] = {}
    filler_top_up(
        args.dataset,
        size,
        timings=filler,
        workers=args.load_workers,
        log=lambda m: print(f"  [{size:,}] {m}", flush=True),
    )
    meta = {
        "passages": passages_count(),
        "scifact_collection": scifact_id,
        "scifact_ingest_s": round(scifact_s, 1),
        "filler_insert_s": filler.get("insert_s", 0.0),
        "postings_s": filler.get("postings_s", 0.0),
        "index_build_s": filler.get("index_build_s", 0.0),
        "hnsw_build_s": filler.get("hnsw_build_s", 0.0),
        "setup_s": round(time.perf_counter() - started, 1),
        "built": machine_info()["date"],
        "load_avg_1m_at_build": round(os.getloadavg()[0], 2),
    }
    if meta_path:
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    if building:
        building.unlink(missing_ok=True)
    return {**meta, "reused": False}


def vector_plan(query: str) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the service's vector leg for one query: does it use the space's HNSW index?"""
    from django.conf import settings
    from django.db import connection, transaction

    from ingestion.models import Collection
    from search.hnsw import ef_search_for, vector_settings_sql
    from search.selectors import embedding_space_active, query_embed, vector_candidates_sql
    from search.types import SearchFilters

    space = embedding_space_active()
    vector = query_embed(query, space)
    collection_ids = list(Collection.objects.values_list("id", flat=True))
    limit = int(settings.RAG_RERANK_CANDIDATES)
    sql, params = vector_candidates_sql(vector, space, collection_ids, SearchFilters(), limit)
    with transaction.atomic(), connection.cursor() as cursor:
        ef = ef_search_for(space, limit)
        cursor.execute(*vector_settings_sql(space, limit))  # the settings the search itself sends
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return {"hnsw_index_used": "_hnsw" in plan, "ef_search": ef, "plan": plan}


def hnsw_recall(args) -> dict[str, Any]:
    """recall@10 of the service's vector SQL (HNSW, the default ef_search) against the exact top 10 (the same
    SQL with index scans off), over SciFact test claims embedded by the stand-in (benchmarks.hnsw_recall)."""

    from benchmarks.hnsw_recall import K, test_queries, top_ids
    from genapi import get_client
    from ingestion.models import Collection
    from search.hnsw import ef_search_for
    from search.selectors import embedding_space_active

    space = embedding_space_active()
    collection_ids = list(Collection.objects.values_list("id", flat=True))
    queries = test_queries(args.dataset, args.recall_queries)
    vectors = get_client().embeddings_create(space.model, input=queries).vectors
    # The service's ef_search for a top 10 (the search asks for more rows, RAG_RERANK_CANDIDATES).
    ef = ef_search_for(space, K)
    recalls, hnsw_s, exact_s, index_used = [], 0.0, 0.0, None
    for vector in vectors:
        t0 = time.perf_counter()
        approx, plan = top_ids(vector, space, collection_ids, exact=False, ef_search=ef)
        t1 = time.perf_counter()
        exact, _ = top_ids(vector, space, collection_ids, exact=True, ef_search=ef)
        hnsw_s, exact_s = hnsw_s + t1 - t0, exact_s + time.perf_counter() - t1
        index_used = "_hnsw" in plan if index_used is None else index_used
        truth = set(exact[:K])
        recalls.append(len(truth.intersection(approx[:K])) / len(truth) if truth else 1.0)
    n = len(vectors) or 1
    return {
        "vectors": "synthetic: the stand-in's hash embeddings (SciFact ingested, filler generated)",
        "queries": len(vectors),
        "ef_search": ef,
        "recall_at_10": round(sum(recalls) / n, 4),
        "worst_query": round(min(recalls), 2) if recalls else 0.0,
        "hnsw_ms_mean": round(hnsw_s / n * 1000, 1),
        "exact_ms_mean": round(exact_s / n * 1000, 1),
        "index_used": index_used,
    }


def measure(stack: Stack, key: str, slugs: list[str], queries: list[str], args) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # CPU per request by process: on 2 cores the concurrent passes are CPU-bound, and this says whose CPU.
    meter = CpuMeter(
        {
            "web": stack.services["web"].process.pid,
            "standin": stack.services["standin"].process.pid,
            "postgres": postmaster_pid(),
        }
    )
    cursor = 0

    def take(n: int) -> list[str]:
        nonlocal cursor
        chosen = [queries[(cursor + i) % len(queries)] for i in range(n)]
        cursor += n
        return chosen

    passes = [p for p in PASSES if not args.only or args.only in p[0]]
    # The warm-up runs at the widest pass's concurrency, so every gunicorn thread that pass will use has its
    # database connections (the request's and the vector leg's) open, its statements prepared and the shared
    # buffers it reads mapped. Warmed by one client, an 8-client pass opened most of its connections itself,
    # and its p95 was that of new connections, not of a running service (BENCHMARKS.md, issue 14,
    # "Session 9").
    widest = max((clients for *_, clients in passes), default=1)
    warm = [{"query": q, "collections": slugs, "rerank": False} for q in take(args.warmup * widest)]
    _requests(stack.web_url, key, "/api/search", warm, widest, client_kind=args.client)
    for round_ in range(1, args.repeat + 1):
        for name, path, extra, clients in passes:
            name = name if round_ == 1 else f"{name} #{round_}"
            n = args.ask_requests if path == "/api/ask" else args.requests
            if n <= 0:
                continue
            field = "question" if path == "/api/ask" else "query"
            bodies = [{field: q, "collections": slugs, **extra} for q in take(n)]
            load = round(os.getloadavg()[0], 2)
            meter.start()
            lat, wall, statuses, reported = _requests(
                stack.web_url, key, path, bodies, clients, args.pass_seconds, args.client
            )
            cpu = meter.stop()
            errors = sum(count for status, count in statuses.items() if status != 200)
            sent = max(1, sum(statuses.values()))
            out[name] = {
                **latency_summary(lat, wall),
                "errors": errors,
                "cpu_ms_per_request": {k: round(v / sent * 1000, 1) for k, v in cpu.items()},
                "statuses": statuses,
                "load_avg_1m": load,
                "stages_p50_ms": _stage_percentiles(reported, 50),
                "stages_p95_ms": _stage_percentiles(reported, 95),
            }
    return out


def run_one_size(args, size: int) -> dict[str, Any]:
    """The child: prepare one size's database, measure it (unless --prepare-only), stop its server."""
    data_dir = Path(args.data_root) / str(size) if args.data_root else None
    from benchmarks.ingest_throughput import UNLIMITED_CLIENT

    # No provider limits are enforced here, so the client's own limiter must not add waits either.
    os.environ.update(UNLIMITED_CLIENT)
    if args.cache_url:  # this process empties the web server's cache before measuring: the same one
        os.environ["DJANGO_CACHE_URL"] = args.cache_url
    db = BenchDatabase(args.database_url, str(data_dir) if data_dir else None)
    db.setup()
    result: dict[str, Any] = {"size": size}
    try:
        from benchmarks.corpus import FILLER_SLUG
        from ingestion.models import Collection

        with Stack(web_workers=args.web_workers, web_threads=args.web_threads) as stack:
            stack.start_standin()
            result["setup"] = corpus_prepare(args, size, data_dir)
            print(f"  [{size:,}] corpus: {json.dumps(result['setup'])}", flush=True)
            if args.prepare_only:
                return result
            result["vector_plan"] = vector_plan(all_queries(args.dataset)[0])
            os.environ.update(_web_environment(args))
            stack.start_web()
            _, key = bench_principal(["search", "ask"])
            slugs = list(
                Collection.objects.filter(pk=result["setup"]["scifact_collection"]).values_list(
                    "slug", flat=True
                )
            )
            if Collection.objects.filter(slug=FILLER_SLUG).exists():
                slugs.append(FILLER_SLUG)
            # A kept database keeps its cache (rerank results, throttle counters) from an earlier run: empty
            # it, or a rerun's reranked passes would be answered from it.
            from django.core.cache import cache

            cache.clear()
            print(f"  [{size:,}] measuring (load {os.getloadavg()[0]:.2f}) ...", flush=True)
            result["uptime"] = _uptime()
            result["results"] = measure(stack, key, slugs, all_queries(args.dataset), args)
            if args.recall_queries:
                result["hnsw_recall"] = hnsw_recall(args)
                print(f"  [{size:,}] HNSW recall: {json.dumps(result['hnsw_recall'])}", flush=True)
    finally:
        db.teardown(stop_server=True)
    return result


def _web_environment(args) -> dict[str, str]:
    """The web server runs as in production: DEBUG off (no per-query debug cursor), a throwaway secret key,
    plain HTTP on 127.0.0.1 (no HTTPS redirect); the cache is the database's unless --cache-url names one."""
    import secrets

    env = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    if args.cache_url:
        env["DJANGO_CACHE_URL"] = args.cache_url
    return env


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def table_print(runs: list[dict[str, Any]]) -> str:
    """The figures as a markdown table (one row per size and pass)."""
    lines = [
        "| passages | pass | p50 ms | p95 ms | p99 ms | req/s | errors | load | stage medians (ms) "
        "| CPU ms a request |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for run in runs:
        for name, f in (run.get("results") or {}).items():
            stages = ", ".join(f"{k} {v:g}" for k, v in f["stages_p50_ms"].items())
            # Older --json files have no CPU figures.
            cpu = ", ".join(f"{k} {v:g}" for k, v in (f.get("cpu_ms_per_request") or {}).items())
            lines.append(
                f"| {run['setup']['passages']:,} | {name} | {f['p50_ms']:.1f} | {f['p95_ms']:.1f} | "
                f"{f['p99_ms']:.1f} | {f['rps']:.1f} | {f['errors']} | {f['load_avg_1m']} | {stages} | "
                f"{cpu} |"
            )
    lines.append("")
    lines.append(
        "| passages | set-up s | of which SciFact ingest s | filler insert s | index builds + ANALYZE s "
        "| of which HNSW s | reused | HNSW used (ef_search) | HNSW recall@10 (queries) |"
    )
    lines.append("|---:|---:|---:|---:|---:|---:|---|---|---|")
    for run in runs:
        s = run["setup"]
        plan = run.get("vector_plan") or {}
        lines.append(
            f"| {s['passages']:,} | {s['setup_s']} | {s['scifact_ingest_s']} | {s['filler_insert_s']} | "
            f"{s['index_build_s']} | {s.get('hnsw_build_s', '')} | {s['reused']} | "
            f"{plan.get('hnsw_index_used')} ({plan.get('ef_search')}) | "
            f"{(run.get('hnsw_recall') or {}).get('recall_at_10', '')} "
            f"({(run.get('hnsw_recall') or {}).get('queries', '')}) |"
        )
    text = "\n".join(lines)
    print(text)
    return text


def plot_write(runs: list[dict[str, Any]], path: str) -> None:
    """p95 (solid) and p50 (dashed) latency against corpus size, both axes logarithmic."""
    try:
        import matplotlib
    except ImportError:
        print("# no plot: matplotlib is not installed (pip install -e '.[bench]')")
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    names = [name for name, *_ in PASSES]
    for i, name in enumerate(names):
        points = [
            (run["setup"]["passages"], run["results"][name])
            for run in runs
            if name in (run.get("results") or {})
        ]
        if not points:
            continue
        xs = [p for p, _ in points]
        color = f"C{i}"
        ax.plot(xs, [f["p95_ms"] for _, f in points], "o-", color=color, label=f"{name} p95")
        ax.plot(xs, [f["p50_ms"] for _, f in points], "x--", color=color, alpha=0.6, label=f"{name} p50")
    ax.plot(
        [100_000, 1_000_000], [50, 120], "k*", markersize=12, label="targets: hybrid no rerank, 1 client p95"
    )
    ax.plot([100_000], [150], "r*", markersize=12, label="target: 8 clients p95 at 100k")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("passages in the knowledge base")
    ax.set_ylabel("latency (ms)")
    ax.set_title("/api/search and /api/ask latency against corpus size (2 shared cores)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    print(f"# wrote {path}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="total passages to measure at, comma-separated"
    )
    parser.add_argument("--requests", type=int, default=200, help="search requests per pass")
    parser.add_argument("--ask-requests", type=int, default=40, help="ask requests (one client)")
    parser.add_argument("--data-root", default=None, help="keep each size's database in DIR/<size>")
    parser.add_argument(
        "--reuse", action="store_true", help="measure a kept database that already holds the passages"
    )
    parser.add_argument("--prepare-only", action="store_true", help="build the databases, measure nothing")
    parser.add_argument("--plot", default=None, help="write the latency plot (PNG) here")
    parser.add_argument(
        "--recall-queries", type=int, default=30, help="HNSW recall@10 over this many queries (0: skip)"
    )
    parser.add_argument(
        "--pass-seconds", type=float, default=0.0, help="stop each pass after this long (0: never)"
    )
    parser.add_argument(
        "--load-workers", type=int, default=3, help="processes inserting the filler passages at once"
    )
    parser.add_argument(
        "--cache-url", default=None, help="the web server's DJANGO_CACHE_URL (default: the database cache)"
    )
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--web-threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP,
        help="searches each client of the widest pass sends before the passes",
    )
    parser.add_argument(
        "--replot", default=None, help="only print the table and draw --plot from this earlier --json file"
    )
    parser.add_argument("--only", default="", help="only the passes whose name contains this text")
    parser.add_argument("--repeat", type=int, default=1, help="run the passes this many times (noise)")
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="stdlib",
        help="the load generator's HTTP client (httpx: as before session 8, ~4x the client CPU a request)",
    )
    parser.add_argument("--child", action="store_true", help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.replot:
        result = json.loads(Path(args.replot).read_text())
        table_print(result["runs"])
        if args.plot:
            plot_write(result["runs"], args.plot)
        return result
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.child:
        result = run_one_size(args, sizes[0])
        write_json(args.json, result)
        if args.data_root and not args.prepare_only:  # kept beside the data: one failing size loses no other
            write_json(str(Path(args.data_root) / str(sizes[0]) / "measure.json"), result)
        return result

    info = machine_info()
    info["uptime"] = _uptime()
    print_machine(info)
    print(f"# {info['uptime']}")
    runs = []
    for size in sizes:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
            out = tmp.name
        command = [sys.executable, "-m", "benchmarks.query_latency", "--child", "--sizes", str(size)]
        command += ["--json", out, "--dataset", args.dataset, "--requests", str(args.requests)]
        command += ["--ask-requests", str(args.ask_requests), "--load-workers", str(args.load_workers)]
        command += ["--pass-seconds", str(args.pass_seconds), "--recall-queries", str(args.recall_queries)]
        command += ["--web-workers", str(args.web_workers), "--web-threads", str(args.web_threads)]
        command += ["--warmup", str(args.warmup), "--repeat", str(args.repeat), "--client", args.client]
        for flag, value in (
            ("--cache-url", args.cache_url),
            ("--only", args.only),
            ("--sample", args.sample),
            ("--data-root", args.data_root),
            ("--database-url", args.database_url),
        ):
            if value:
                command += [flag, str(value)]
        command += [
            flag for flag in ("--reuse", "--prepare-only") if getattr(args, flag[2:].replace("-", "_"))
        ]
        print(f"# {size:,} passages ...", flush=True)
        subprocess.run(command, cwd=REPO_ROOT, check=True)
        runs.append(json.loads(Path(out).read_text()))
        Path(out).unlink(missing_ok=True)
    info["uptime_end"] = _uptime()
    print(f"# {info['uptime_end']}")
    result = {"benchmark": "query_latency", "machine": info, "runs": runs}
    if not args.prepare_only:
        result["table"] = table_print(runs)
        if args.plot:
            plot_write(runs, args.plot)
    write_json(args.json, result)
    return result


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
