"""Where one `/api/search` request's time goes, end to end inside the web process: every SQL statement (main
connection and the vector leg's) with its time, the service's own `timings`, the request's wall time through
Django's WSGI handler (middleware, authentication, throttle, view, query log, JSON) and so the time outside
`total`; optionally a pyinstrument profile of the requests.

It measures a kept benchmark database (built by `benchmarks.query_latency --prepare-only`), in this
process, with the web server's settings (DEBUG off), and the stand-in for the query embedding:

    python -m benchmarks.request_profile --data-root DIR --size 10000 --requests 50 [--pyinstrument out.txt]

No HTTP server: the difference between this wall time and `query_latency`'s client-side figure is gunicorn,
the socket and the client.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import BenchDatabase, Stack, base_parser, bench_principal  # noqa: E402
from benchmarks.query_latency import _web_environment, all_queries  # noqa: E402


class StatementLog:
    """An execute wrapper for every connection Django opens: (thread, sql, ms) per statement."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()
        self.on = False

    def __call__(self, execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if self.on:
                ms = (time.perf_counter() - t0) * 1000
                with self.lock:
                    self.rows.append((threading.current_thread().name, " ".join(str(sql).split()), ms))

    def take(self) -> list[tuple[str, str, float]]:
        with self.lock:
            rows, self.rows = self.rows, []
        return rows


def wsgi_environ(
    path: str, body: dict[str, Any], key: str, accept: str = "application/json"
) -> dict[str, Any]:
    """The WSGI environ gunicorn would hand Django for a JSON POST of `body` to `path` with API key `key`."""
    raw = json.dumps(body).encode()
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "HTTP_ACCEPT": accept,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def wsgi_post(handler, path: str, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any], float]:
    """POST through Django's WSGI handler as gunicorn calls it (request_started/finished signals included):
    status, JSON body, and the milliseconds `close()` took after the body was produced."""
    environ = wsgi_environ(path, body, key)
    status: list[str] = []
    response = handler(environ, lambda s, headers, exc_info=None: status.append(s))
    try:
        content = b"".join(response)
        answered = time.perf_counter()  # gunicorn has sent the body by now; close() comes after
    finally:
        response.close()  # request_finished: close_old_connections, usage flush, as gunicorn does
    closed_ms = (time.perf_counter() - answered) * 1000
    code = int(status[0].split()[0])
    data = json.loads(content) if code == 200 else {"body": content[:300].decode(errors="replace")}
    return code, data, closed_ms


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, help="the query_latency --data-root")
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rerank", action="store_true", help="reranked searches (default: no rerank)")
    parser.add_argument(
        "--pyinstrument", default=None, help="write a pyinstrument text profile here (and every frame: .all)"
    )
    parser.add_argument("--cache-url", default=None, help="DJANGO_CACHE_URL (default: the database cache)")
    parser.add_argument("--show", type=int, default=1, help="print the statement list of this many requests")
    args = parser.parse_args(argv)

    import os

    os.environ.update(_web_environment(args))
    from benchmarks.ingest_throughput import UNLIMITED_CLIENT

    os.environ.update(UNLIMITED_CLIENT)
    data_dir = Path(args.data_root) / str(args.size)
    meta = json.loads((data_dir / "corpus.json").read_text())
    db = BenchDatabase(args.database_url, str(data_dir))
    db.setup()
    out: dict[str, Any] = {}
    try:
        from django.core.cache import cache
        from django.core.wsgi import get_wsgi_application
        from django.db.backends.signals import connection_created

        from benchmarks.corpus import FILLER_SLUG
        from ingestion.models import Collection

        with Stack(web=False) as stack:
            stack.start_standin()
            statements = StatementLog()

            def wrap(sender, connection, **kwargs):
                if statements not in connection.execute_wrappers:
                    connection.execute_wrappers.append(statements)

            connection_created.connect(wrap, weak=False)
            from django.db import connections

            connections.close_all()  # every connection from here on carries the wrapper
            handler = get_wsgi_application()
            _, key = bench_principal(["search", "ask"])
            slugs = list(
                Collection.objects.filter(pk=meta["scifact_collection"]).values_list("slug", flat=True)
            )
            if Collection.objects.filter(slug=FILLER_SLUG).exists():
                slugs.append(FILLER_SLUG)
            cache.clear()
            connections.close_all()
            queries = all_queries(args.dataset)
            bodies = [{"query": q, "collections": slugs, "rerank": args.rerank} for q in queries]
            for body in bodies[: args.warmup]:
                wsgi_post(handler, "/api/search", body, key)
            statements.on = True
            statements.take()
            profiler = None
            if args.pyinstrument:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005)
                profiler.start()
            walls, totals, outside, counts, per_stage = [], [], [], [], defaultdict(list)
            closes: list[float] = []
            leg_counts: list[int] = []
            by_statement: dict[str, list[float]] = defaultdict(list)
            main_ms, leg_ms = [], []
            for n, body in enumerate(bodies[args.warmup : args.warmup + args.requests]):
                t0 = time.perf_counter()
                code, data, closed_ms = wsgi_post(handler, "/api/search", body, key)
                wall = (time.perf_counter() - t0) * 1000 - closed_ms
                rows = statements.take()
                if code != 200:
                    raise SystemExit(f"status {code}: {data}")
                timings = data["timings"]
                walls.append(wall)
                closes.append(closed_ms)
                totals.append(timings["total"])
                outside.append(wall - timings["total"])
                for stage, ms in timings.items():
                    per_stage[stage].append(ms)
                main = [r for r in rows if r[0] == "MainThread"]
                counts.append(len(main))
                leg_counts.append(len(rows) - len(main))
                main_ms.append(sum(r[2] for r in main))
                leg_ms.append(sum(r[2] for r in rows if r[0] != "MainThread"))
                for thread, sql, ms in rows:
                    by_statement[("main  " if thread == "MainThread" else "leg   ") + sql[:110]].append(ms)
                if n < args.show:
                    print(f"# request {n}: wall {wall:.1f} ms, total {timings['total']} ms; statements:")
                    for thread, sql, ms in rows:
                        where = "main" if thread == "MainThread" else "leg "
                        print(f"  {where} {ms:7.2f} ms  {sql[:150]}")
            if profiler is not None:
                profiler.stop()
                Path(args.pyinstrument).write_text(
                    profiler.output_text(unicode=False, color=False, show_all=False)
                )
                Path(args.pyinstrument + ".all").write_text(
                    profiler.output_text(unicode=False, color=False, show_all=True)
                )
                print(f"# wrote {args.pyinstrument}")
    finally:
        db.teardown(stop_server=True)

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 2) if values else 0.0

    out = {
        "requests": len(walls),
        "wall_ms_p50": med(walls),
        "wall_ms_p95": round(sorted(walls)[int(0.95 * (len(walls) - 1))], 2) if walls else 0.0,
        "after_body_close_ms_p50": med(closes),
        "total_ms_p50": med(totals),
        "outside_total_ms_p50": med(outside),
        "statements_main_per_request": sorted(set(counts)),
        "statements_leg_per_request": sorted(set(leg_counts)),
        "sql_ms_main_p50": med(main_ms),
        "sql_ms_leg_p50": med(leg_ms),
        "stages_p50": {stage: med(values) for stage, values in sorted(per_stage.items())},
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=2))
    print("# statements (median ms, count over all requests):")
    for sql, values in sorted(by_statement.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {statistics.median(values):7.2f} ms x{len(values):4d}  {sql}")
    return out


if __name__ == "__main__":
    main()
