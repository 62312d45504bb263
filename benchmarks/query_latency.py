"""Query latency: `POST /api/search` and `POST /api/ask` at 10,000 and 100,000 passages (SciFact through the
ingestion code, then generated filler inserted with bulk SQL), one client and 8 concurrent clients:
p50/p95/p99 and requests/s; and /api/ask's overhead beyond the provider's own time.

Requests use the service defaults (hybrid, reranked, top_k 8) with SciFact test claims as queries. gunicorn
(2 workers x 4 threads) and the stand-in (no added latency) run as subprocesses on free ports.

The provider's own time for an ask is measured by replaying, straight to the stand-in, the calls one ask
makes: the question's embedding, a rerank of its candidate passages, and the chat completion over the
sources it cited. Overhead = ask latency - that provider time (medians over the same questions).

    python -m benchmarks.query_latency                               # 10,000 and 100,000 passages
    python -m benchmarks.query_latency --sample 20 --sizes 500 --requests 16 --ask-requests 8
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    BenchDatabase,
    Stack,
    base_parser,
    bench_principal,
    latency_summary,
    machine_info,
    percentile,
    print_machine,
    write_json,
)

CONCURRENT = 8
WARMUP = 5


def _requests(
    base_url: str, key: str, path: str, bodies: list[dict], clients: int
) -> tuple[list[float], float, dict]:
    """Send `bodies` from `clients` threads (each its own connection); latencies, wall time, status counts."""
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    shares = [bodies[i::clients] for i in range(clients)]

    def client_loop(share: list[dict]) -> list[tuple[float, int]]:
        out = []
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as client:
            for body in share:
                t0 = time.perf_counter()
                response = client.post(path, json=body)
                out.append((time.perf_counter() - t0, response.status_code))
        return out

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for result in pool.map(client_loop, shares):
            for seconds, status in result:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    latencies.append(seconds)
    return latencies, time.perf_counter() - started, statuses


def provider_time_for_ask(standin_v1: str, question: str, ask: dict, candidates: list[str]) -> float:
    """Seconds the stand-in needs for the calls one ask makes (embedding, rerank, chat), measured directly."""
    import httpx
    from django.conf import settings

    sources = "\n\n".join(f"[{i}] {p['text']}" for i, p in enumerate(ask.get("passages") or [], start=1))
    with httpx.Client(base_url=standin_v1, timeout=120) as client:
        t0 = time.perf_counter()
        client.post("/embeddings", json={"model": settings.GENAPI_EMBEDDING_MODEL, "input": [question]})
        if candidates:
            client.post(
                "/rerank",
                json={
                    "model": settings.GENAPI_RERANK_MODEL,
                    "query": question,
                    "documents": candidates,
                    "top_n": len(candidates),
                },
            )
        client.post(
            "/chat/completions",
            json={
                "model": settings.GENAPI_CHAT_MODEL,
                "messages": [
                    {
                        "role": "system",
                        "content": "Answer from the numbered sources only and cite them as [n].",
                    },
                    {"role": "user", "content": f"Sources:\n{sources}\n\nQuestion: {question}"},
                ],
            },
        )
        return time.perf_counter() - t0


def measure(stack: Stack, key: str, slugs: list[str], queries: list[str], args) -> dict[str, Any]:
    import httpx
    from django.conf import settings

    out: dict[str, Any] = {}
    search_bodies = [{"query": q, "collections": slugs} for q in queries]
    ask_bodies = [{"question": q, "collections": slugs} for q in queries]
    _requests(stack.web_url, key, "/api/search", search_bodies[:WARMUP], 1)
    for label, clients in (("1 client", 1), (f"{CONCURRENT} concurrent", CONCURRENT)):
        lat, wall, statuses = _requests(
            stack.web_url, key, "/api/search", search_bodies[: args.requests], clients
        )
        out[f"search, {label}"] = {**latency_summary(lat, wall), "statuses": statuses}
    # Without the reranker: what the retrieval itself costs (the rerank is a provider call).
    plain = [{**body, "rerank": False} for body in search_bodies[: args.requests]]
    lat, wall, statuses = _requests(stack.web_url, key, "/api/search", plain, 1)
    out["search no rerank, 1 client"] = {**latency_summary(lat, wall), "statuses": statuses}
    _requests(stack.web_url, key, "/api/ask", ask_bodies[:WARMUP], 1)
    for label, clients in (("1 client", 1), (f"{CONCURRENT} concurrent", CONCURRENT)):
        lat, wall, statuses = _requests(
            stack.web_url, key, "/api/ask", ask_bodies[: args.ask_requests], clients
        )
        out[f"ask, {label}"] = {**latency_summary(lat, wall), "statuses": statuses}

    # Overhead of ask beyond the provider's own time, one client, sequential (no queueing in the numbers).
    ask_ms, provider_ms = [], []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=stack.web_url, headers=headers, timeout=120) as client:
        for question in queries[: args.ask_requests]:
            candidates_body = {
                "query": question,
                "collections": slugs,
                "rerank": False,
                "top_k": min(100, settings.RAG_RERANK_CANDIDATES),
            }
            candidates = [
                p["text"] for p in client.post("/api/search", json=candidates_body).json()["results"]
            ]
            t0 = time.perf_counter()
            response = client.post("/api/ask", json={"question": question, "collections": slugs})
            elapsed = time.perf_counter() - t0
            if response.status_code != 200:
                continue
            ask_ms.append(elapsed * 1000)
            provider_ms.append(
                provider_time_for_ask(f"{stack.standin_url}/v1", question, response.json(), candidates) * 1000
            )
    overhead = [a - p for a, p in zip(ask_ms, provider_ms, strict=True)]
    out["ask overhead"] = {
        "ask_p50_ms": round(percentile(ask_ms, 50), 1),
        "provider_p50_ms": round(percentile(provider_ms, 50), 1),
        "overhead_p50_ms": round(percentile(overhead, 50), 1),
        "overhead_p95_ms": round(percentile(overhead, 95), 1),
    }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="total passages to measure at, comma-separated"
    )
    parser.add_argument("--requests", type=int, default=200, help="search requests per measurement")
    parser.add_argument("--ask-requests", type=int, default=60, help="ask requests per measurement")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    info = machine_info()
    # No provider limits are enforced here, so the client's own limiter must not add waits: a rerank of 50
    # passages is ~20k estimated tokens, and the default 1M tokens/min bucket would hold each search ~1 s.
    from benchmarks.ingest_throughput import UNLIMITED_CLIENT

    os.environ.update(UNLIMITED_CLIENT)
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    results: dict[str, Any] = {}
    try:
        from benchmarks.corpus import FILLER_SLUG, filler_top_up, passages_count, scifact_load
        from benchmarks.hnsw_recall import test_queries
        from ingestion.models import Collection

        print_machine(info)
        with Stack(web_workers=2) as stack:
            stack.start_standin()
            scifact_id = scifact_load(args.dataset, args.sample, log=lambda m: None)
            stack.start_web()
            _, key = bench_principal(["search", "ask"])
            queries = test_queries(args.dataset, max(args.requests, args.ask_requests) + WARMUP)
            while len(queries) < args.requests + WARMUP:
                queries = queries + queries
            for size in sizes:
                filler_top_up(args.dataset, size)
                slugs = list(Collection.objects.filter(pk=scifact_id).values_list("slug", flat=True))
                if Collection.objects.filter(slug=FILLER_SLUG).exists():
                    slugs.append(FILLER_SLUG)
                total = passages_count()
                print(f"measuring at {total:,} passages ...", flush=True)
                results[str(total)] = measure(stack, key, slugs, queries, args)
    finally:
        db.teardown()

    for total, figures in results.items():
        print(f"\n{int(total):,} passages")
        for name, f in figures.items():
            if name == "ask overhead":
                print(
                    f"  {name:22} ask p50 {f['ask_p50_ms']} ms = provider p50 {f['provider_p50_ms']} ms "
                    f"+ overhead p50 {f['overhead_p50_ms']} ms (p95 {f['overhead_p95_ms']} ms)"
                )
            else:
                print(
                    f"  {name:26} p50 {f['p50_ms']:7.1f} ms  p95 {f['p95_ms']:7.1f} ms  "
                    f"p99 {f['p99_ms']:7.1f} ms  {f['rps']:6.1f} req/s  "
                    f"({f['requests']} ok; statuses {f['statuses']})"
                )
    result = {"benchmark": "query_latency", "machine": info, "results": results}
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
