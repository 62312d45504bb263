"""Where a web process's memory goes, request by request: search, streamed ask and upload requests sent
through Django's WSGI handler in this process (as gunicorn calls it), with tracemalloc's view of what the
Python heap kept between two points, and the process's USS before and after.

`benchmarks/load.py` shows whether a process grows over a long run; this script says what grows. Each kind
of request is warmed up, then a snapshot is taken, `--requests` more are sent, and the lines that
allocated what is still alive are listed (biggest first), with the growth per request.

    python -m benchmarks.request_memory --sample 300 --requests 400
    python -m benchmarks.request_memory --kinds search --threads 4 --requests 800

A fresh embedded database by default (the first `--sample` SciFact documents, ingested in this process);
the stand-in answers the embeddings, rerank and chat calls over a real socket.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BenchDatabase, Stack, base_parser, bench_principal  # noqa: E402
from benchmarks.load import prepare_small, queries  # noqa: E402
from benchmarks.query_latency import _web_environment  # noqa: E402
from benchmarks.request_profile import wsgi_environ  # noqa: E402


def wsgi_call(handler, path: str, body: dict[str, Any], key: str, accept: str = "application/json") -> int:
    """POST `body` to `path` through the WSGI handler; reads the whole (possibly streamed) body, closes the
    response as gunicorn does, and returns the status code."""
    environ = wsgi_environ(path, body, key, accept)
    status: list[str] = []
    response = handler(environ, lambda s, headers, exc_info=None: status.append(s))
    try:
        for _ in response:
            pass
    finally:
        response.close()
    return int(status[0].split()[0])


def uss_mib() -> float:
    import psutil

    return psutil.Process().memory_full_info().uss / 2**20


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400, help="requests of each kind between snapshots")
    parser.add_argument("--warmup", type=int, default=100, help="requests of each kind before the first one")
    parser.add_argument("--kinds", default="search,ask,upload", help="comma-separated: search, ask, upload")
    parser.add_argument("--threads", type=int, default=1, help="requests sent at once (gthread's threads)")
    parser.add_argument("--top", type=int, default=12, help="allocation sites listed per kind")
    parser.add_argument(
        "--steps",
        type=int,
        default=1,
        help="send --requests this many times per kind, printing USS after each (a leak grows every step)",
    )
    parser.add_argument(
        "--no-trace",
        action="store_true",
        help="without tracemalloc (its own tables grow with every new traceback, so USS reads high with it)",
    )
    parser.add_argument("--cache-url", default=None, help="DJANGO_CACHE_URL (default: the database cache)")
    parser.add_argument(
        "--provider-limits",
        action="store_true",
        help="keep the client's provider limits (the shared budget) instead of lifting them",
    )
    parser.set_defaults(sample=300)
    args = parser.parse_args(argv)
    os.environ.update(_web_environment(args))
    from benchmarks.ingest_throughput import UNLIMITED_CLIENT

    if not args.provider_limits:
        os.environ.update(UNLIMITED_CLIENT)
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "0")
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    out: dict[str, Any] = {}
    try:
        from django.core.wsgi import get_wsgi_application

        from ingestion.models import Chunk
        from ingestion.services.collections import collection_create

        if not Chunk.objects.exists():
            prepare_small(args)
        with Stack(web=False) as stack:
            stack.start_standin()
            handler = get_wsgi_application()
            _, key = bench_principal(["search", "ask", "ingest"])
            slug = f"memory-{os.getpid()}"
            collection_create(name="memory uploads", slug=slug)
            qs = queries(args.dataset)
            counter = iter(range(10**9))
            lock = threading.Lock()

            def one(kind: str) -> int:
                with lock:
                    n = next(counter)
                question = qs[n % len(qs)]
                if kind == "search":
                    return wsgi_call(handler, "/api/search", {"query": question}, key)
                if kind == "ask":
                    body = {"question": question, "stream": True}
                    return wsgi_call(handler, "/api/ask", body, key, accept="text/event-stream")
                body = {"collection": slug, "title": f"Note {n}", "text": f"{question} (note {n})"}
                return wsgi_call(handler, "/api/documents", body, key)

            def send(kind: str, count: int) -> dict[int, int]:
                codes: dict[int, int] = {}
                with ThreadPoolExecutor(max_workers=args.threads) as pool:
                    for code in pool.map(lambda _: one(kind), range(count)):
                        codes[code] = codes.get(code, 0) + 1
                return codes

            if not args.no_trace:
                tracemalloc.start(12)
            for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
                send(kind, args.warmup)
                gc.collect()
                before = tracemalloc.take_snapshot() if not args.no_trace else None
                uss_before = uss_mib()
                codes: dict[int, int] = {}
                readings = [round(uss_before, 1)]
                for _ in range(max(1, args.steps)):
                    for code, n in send(kind, args.requests).items():
                        codes[code] = codes.get(code, 0) + n
                    gc.collect()
                    readings.append(round(uss_mib(), 1))
                uss_after = readings[-1]
                sent = args.requests * max(1, args.steps)
                print(
                    f"\n## {kind}: {sent} requests ({args.threads} at once), statuses {codes}; "
                    f"USS {uss_before:.1f} -> {uss_after:.1f} MiB "
                    f"({1024 * (uss_after - uss_before) / sent:.2f} KiB a request); by step {readings}"
                )
                out[kind] = {
                    "statuses": codes,
                    "uss_mib_by_step": readings,
                    "uss_kib_per_request": round(1024 * (uss_after - uss_before) / sent, 2),
                }
                if before is None:
                    continue
                stats = tracemalloc.take_snapshot().compare_to(before, "traceback")
                kept = sum(s.size_diff for s in stats)
                print(f"  Python heap kept {kept / 1024:.0f} KiB ({kept / sent:.0f} B a request); where:")
                out[kind]["heap_bytes_per_request"] = round(kept / sent)
                for stat in stats[: args.top]:
                    if stat.size_diff <= 0:
                        continue
                    frames = [
                        f"{Path(f.filename).name}:{f.lineno}"
                        for f in stat.traceback
                        if "/tracemalloc" not in f.filename
                    ]
                    where = " < ".join(frames[:6])
                    print(f"  {stat.size_diff / 1024:8.1f} KiB {stat.count_diff:+7d} blocks  {where}")
            if tracemalloc.is_tracing():
                tracemalloc.stop()
    finally:
        db.teardown(stop_server=True)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
