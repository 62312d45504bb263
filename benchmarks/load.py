"""Load: concurrent users mixing search, streamed ask and small uploads against a prepared corpus for a fixed
time; error rate and p50/p95/p99 per endpoint, and the resident memory of every process at the start and
the end (growth means a leak).

The database is one `benchmarks/query_latency.py --prepare-only` built (pass its size folder as
`--data-dir`); the script starts the stand-in (hash embeddings), gunicorn, one Celery worker (for the
uploads) and, where `redis-server` is installed, a broker of its own on a free port. Each user has its own
account and API key, and the service's request throttles stay at their defaults (`RAG_THROTTLE_*`), so
their 429s are our own and are counted apart from errors. A user waits `--think` seconds on average
(exponentially distributed) between requests. Bounded in time: no new request after `--seconds`.

    python -m benchmarks.query_latency --data-root DIR --sizes 100000 --prepare-only
    python -m benchmarks.load --data-dir DIR/100000 --users 50 --seconds 300
    python -m benchmarks.load --sample 200 --users 5 --seconds 20      # a quick run on a fresh database
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.chaos import QUESTIONS, RedisBroker  # noqa: E402
from benchmarks.common import (  # noqa: E402
    BenchDatabase,
    Stack,
    base_parser,
    machine_info,
    percentile,
    postmaster_pid,
    print_machine,
    process_tree,
    write_json,
)

# Per user action, by weight: most traffic is search, then asks, a few uploads.
MIX = (("search", 0.6), ("ask", 0.3), ("upload", 0.1))
DEFAULT_THROTTLES = {
    "RAG_THROTTLE_API_KEY": "600/min",
    "RAG_THROTTLE_SEARCH": "120/min",
    "RAG_THROTTLE_ASK": "30/min",
}


def users_create(n: int) -> list[str]:
    """`n` accounts, each with an API key (throttles are per key), readers of every collection."""
    import uuid

    from django.contrib.auth import get_user_model

    from accounts.keys import key_generate
    from accounts.models import ApiKey

    keys = []
    for i in range(n):
        user, _ = get_user_model().objects.get_or_create(
            username=f"load-{i}", defaults={"is_superuser": True, "is_staff": True}
        )
        raw, prefix, hashed = key_generate()
        ApiKey.objects.create(
            user=user,
            name=f"load {uuid.uuid4().hex[:6]}",
            prefix=prefix,
            key_hash=hashed,
            scopes=["search", "ask", "ingest"],
        )
        keys.append(raw)
    return keys


def queries(dataset: str) -> list[str]:
    import json

    path = Path(dataset) / "queries.jsonl"
    if not path.exists():
        return list(QUESTIONS)
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh if line.strip()] or list(QUESTIONS)


def process_memory(roots: dict[str, int]) -> dict[str, tuple[float, float]]:
    """(RSS, USS) in MiB of every process under each root, keyed `service/pid name`; PostgreSQL by its
    postmaster. USS (memory no other process shares) is what a leak grows: a PostgreSQL backend's RSS also
    counts the shared buffers it has touched."""
    import psutil

    out: dict[str, float] = {}
    for service, pid in roots.items():
        for proc in process_tree(pid):
            try:
                full = proc.memory_full_info()
                out[f"{service}/{proc.pid} {proc.name()[:20]}"] = (full.rss / 2**20, full.uss / 2**20)
            except psutil.Error:
                pass
    return out


class MemorySampler:
    """Reads every process's memory every `every` seconds in a thread while the load runs. Two readings
    cannot tell a warm-up from a leak; a timeline can: a leak keeps climbing in the second half of the run,
    a warm-up flattens out."""

    def __init__(self, roots: dict[str, int], every: float):
        import threading

        self.roots, self.every = roots, every
        self.readings: list[tuple[float, dict[str, tuple[float, float]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = 0.0

    def _read(self) -> dict[str, tuple[float, float]]:
        reading = process_memory(self.roots)
        self.readings.append((time.monotonic() - self._t0, reading))
        return reading

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._read()

    def start(self) -> dict[str, tuple[float, float]]:
        self._t0 = time.monotonic()
        first = self._read()
        self._thread.start()
        return first

    def stop(self) -> dict[str, tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self._read()

    def timeline(self) -> dict[str, Any]:
        """USS in MiB of the processes alive at every reading, reading by reading, and each one's growth
        over the second half of the run (end against the reading nearest the midpoint)."""
        names = sorted(set.intersection(*(set(r) for _, r in self.readings)))
        seconds = [round(t) for t, _ in self.readings]
        middle = min(range(len(seconds)), key=lambda i: abs(seconds[i] - seconds[-1] / 2))
        rows = []
        for name in names:
            uss = [round(r[name][1], 1) for _, r in self.readings]
            half = uss[middle]
            rows.append(
                {
                    "process": name,
                    "uss": uss,
                    "second_half_growth_pct": round(100 * (uss[-1] - half) / half, 1) if half else None,
                }
            )
        return {"seconds": seconds, "processes": rows}


class Recorder:
    def __init__(self):
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, endpoint: str, outcome: str, seconds: float) -> None:
        self.status[endpoint][outcome] += 1
        if outcome == "ok":
            self.latency[endpoint].append(seconds * 1000)


async def user(
    client, key: str, rec: Recorder, qs: list[str], slug: str, deadline: float, think: float, seed: int
):
    import httpx

    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {key}"}
    names, weights = zip(*MIX, strict=True)
    n = 0
    while time.monotonic() < deadline:
        action = rng.choices(names, weights)[0]
        question = rng.choice(qs)
        started = time.monotonic()
        try:
            if action == "search":
                r = await client.post("/api/search", json={"query": question}, headers=headers)
                outcome = "ok" if r.status_code == 200 else f"http {r.status_code}"
            elif action == "ask":
                outcome = await ask(client, headers, question)
            else:
                n += 1
                body = {
                    "collection": slug,
                    "title": f"Note {seed}-{n}",
                    "text": f"{question} (note {seed}-{n})",
                }
                r = await client.post("/api/documents", json=body, headers=headers)
                outcome = "ok" if r.status_code in (201, 202, 200) else f"http {r.status_code}"
        except httpx.HTTPError as exc:
            outcome = f"exception {type(exc).__name__}"
        rec.add(action, outcome, time.monotonic() - started)
        await asyncio.sleep(rng.expovariate(1 / think) if think > 0 else 0)


async def ask(client, headers: dict, question: str) -> str:
    events: list[str] = []
    body = {"question": question, "stream": True}
    headers = {**headers, "Accept": "text/event-stream"}
    async with client.stream("POST", "/api/ask", json=body, headers=headers) as r:
        if r.status_code != 200:
            await r.aread()
            return f"http {r.status_code}"
        async for line in r.aiter_lines():
            if line.startswith("event:"):
                events.append(line.split(":", 1)[1].strip())
    if events and events[-1] == "done":
        return "ok"
    return "error event" if "error" in events else "stream ended without done"


async def drive(base_url: str, keys: list[str], rec: Recorder, qs: list[str], slug: str, args) -> float:
    import httpx

    limits = httpx.Limits(max_connections=len(keys) + 5, max_keepalive_connections=len(keys) + 5)
    started = time.monotonic()
    deadline = started + args.seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        await asyncio.gather(
            *(user(client, k, rec, qs, slug, deadline, args.think, i) for i, k in enumerate(keys))
        )
    return time.monotonic() - started


def summary(rec: Recorder, wall: float) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for endpoint in ("search", "ask", "upload"):
        statuses = dict(rec.status.get(endpoint, {}))
        total = sum(statuses.values())
        throttled = statuses.get("http 429", 0)
        errors = total - statuses.get("ok", 0) - throttled
        ms = rec.latency.get(endpoint, [])
        table[endpoint] = {
            "requests": total,
            "ok": statuses.get("ok", 0),
            "errors": errors,
            "throttled_429": throttled,
            "error_rate_pct": round(100 * errors / total, 3) if total else 0.0,
            "p50_ms": round(percentile(ms, 50), 1) if ms else None,
            "p95_ms": round(percentile(ms, 95), 1) if ms else None,
            "p99_ms": round(percentile(ms, 99), 1) if ms else None,
            "rps": round(total / wall, 2),
            "outcomes": statuses,
        }
    total = sum(t["requests"] for t in table.values())
    errors = sum(t["errors"] for t in table.values())
    throttled = sum(t["throttled_429"] for t in table.values())
    table["all"] = {
        "requests": total,
        "errors": errors,
        "throttled_429": throttled,
        "error_rate_pct": round(100 * errors / total, 3) if total else 0.0,
        "throttled_pct": round(100 * throttled / total, 2) if total else 0.0,
    }
    return table


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--think", type=float, default=1.0, help="mean seconds a user waits between requests")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds of traffic before memory is read")
    parser.add_argument(
        "--sample-every", type=float, default=60.0, help="seconds between memory readings during the run"
    )
    parser.add_argument("--redis-db", type=int, default=6)
    args = parser.parse_args(argv)
    for name, value in DEFAULT_THROTTLES.items():
        os.environ.setdefault(name, value)  # our own throttles stay on: their 429s are reported apart
    # Web and worker as in production: DEBUG off. (With it on, as the benchmarks' default was, Django keeps
    # a log of every statement per connection and Celery warns of the same: memory that grows by design.)
    from benchmarks.query_latency import _web_environment

    os.environ.update(_web_environment(argparse_copy(args, cache_url=None)))
    info = machine_info()
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    binary = shutil.which("redis-server")
    broker = RedisBroker(binary, args.redis_db) if binary else None
    if broker:
        broker.start()
        os.environ["CELERY_BROKER_URL"] = broker.url
    stack = Stack(workers=1, worker_concurrency=2, web_workers=2, web_threads=8)
    try:
        if args.sample:
            prepare_small(args)
        from ingestion.models import Chunk
        from ingestion.services.collections import collection_create
        from ingestion.services.spaces import embedding_space_get_or_create_active

        passages = Chunk.objects.count()
        print_machine(info)
        print(
            f"# load: {passages:,} passages, {args.users} users, {args.seconds:.0f} s, think {args.think} s"
        )
        stack.start_standin()
        embedding_space_get_or_create_active()
        stack.start_web()
        stack.start_workers()
        keys = users_create(args.users)
        slug = f"load-{time.time_ns()}"
        collection_create(name="load uploads", slug=slug)
        qs = queries(args.dataset)
        roots = {name: svc.process.pid for name, svc in stack.services.items()}
        pm = postmaster_pid()
        if pm:
            roots["postgres"] = pm
        if broker and broker.process:
            roots["redis"] = broker.process.pid
        warm = Recorder()
        warm_args = argparse_copy(args, seconds=args.warmup)
        asyncio.run(drive(stack.web_url, keys, warm, qs, slug, warm_args))
        sampler = MemorySampler(roots, args.sample_every)
        memory_start = sampler.start()
        load_start = os.getloadavg()
        rec = Recorder()
        wall = asyncio.run(drive(stack.web_url, keys, rec, qs, slug, args))
        memory_end = sampler.stop()
        figures = {
            "machine": info,
            "passages": passages,
            "users": args.users,
            "seconds": round(wall, 1),
            "think_s": args.think,
            "throttles": {k: os.environ[k] for k in DEFAULT_THROTTLES},
            "endpoints": summary(rec, wall),
            "memory_mib": memory_table(memory_start, memory_end),
            "memory_timeline": sampler.timeline(),
            "load_start": load_start,
            "load_end": os.getloadavg(),
        }
        report(figures)
        write_json(args.json, figures)
        return figures
    finally:
        stack.stop()
        if broker:
            broker.cleanup()
        db.teardown(stop_server=True)


def argparse_copy(args, **changes):
    import argparse

    return argparse.Namespace(**{**vars(args), **changes})


def prepare_small(args) -> None:
    """A fresh database (smoke runs): the first `--sample` corpus documents, ingested in this process."""
    from benchmarks.ingest_throughput import corpus_read
    from genapi.testing import local_server
    from ingestion.services.collections import collection_create
    from ingestion.services.documents import documents_bulk_create
    from ingestion.services.pipeline import documents_ingest
    from ingestion.services.spaces import embedding_space_get_or_create_active

    with local_server() as server:
        os.environ["GENAPI_BASE_URL"] = server.base_url
        from genapi import reset_client

        reset_client()
        embedding_space_get_or_create_active()
        collection = collection_create(name="corpus", slug="corpus")
        docs = documents_bulk_create(
            collection=collection,
            documents=[{"title": t, "text": x} for _, t, x in corpus_read(args.dataset, args.sample)],
        )
        documents_ingest([d.pk for d in docs])


def memory_table(start: dict, end: dict) -> list[dict[str, Any]]:
    """Processes alive at both reads, compared; connections that came and went counted apart."""
    rows = []
    for name in sorted(set(start) & set(end)):
        (rss_a, uss_a), (rss_b, uss_b) = start[name], end[name]
        rows.append(
            {
                "process": name,
                "rss_start": round(rss_a, 1),
                "rss_end": round(rss_b, 1),
                "uss_start": round(uss_a, 1),
                "uss_end": round(uss_b, 1),
                "uss_growth_pct": round(100 * (uss_b - uss_a) / uss_a, 1) if uss_a else None,
            }
        )
    gone, new = set(start) - set(end), set(end) - set(start)
    rows.append({"process": f"short-lived (ended {len(gone)}, started {len(new)})", "rss_start": None})
    return rows


def report(f: dict[str, Any]) -> None:
    print(
        f"\n## {f['users']} users for {f['seconds']} s over {f['passages']:,} passages "
        f"(think {f['think_s']} s)"
    )
    print(
        f"  {'endpoint':8} {'requests':>8} {'errors':>6} {'429':>5} {'err %':>7} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'req/s':>6}"
    )
    for name in ("search", "ask", "upload"):
        t = f["endpoints"][name]
        print(
            f"  {name:8} {t['requests']:8d} {t['errors']:6d} {t['throttled_429']:5d} "
            f"{t['error_rate_pct']:7.3f} "
            f"{t['p50_ms'] or 0:8.0f} {t['p95_ms'] or 0:8.0f} {t['p99_ms'] or 0:8.0f} {t['rps']:6.2f}"
        )
    a = f["endpoints"]["all"]
    print(
        f"  all: {a['requests']} requests, error rate {a['error_rate_pct']} % (target < 0.1 %), "
        f"our throttles' 429s {a['throttled_429']} ({a['throttled_pct']} %)"
    )
    for name in ("search", "ask", "upload"):
        other = {k: v for k, v in f["endpoints"][name]["outcomes"].items() if k != "ok"}
        if other:
            print(f"  {name} outcomes other than ok: {other}")
    print("\n## memory (MiB after warm-up -> at the end; growth of USS, target < 10 % per process)")
    print(f"  {'process':36} {'RSS start':>9} {'RSS end':>8} {'USS start':>9} {'USS end':>8} {'growth':>8}")
    for row in f["memory_mib"]:
        if row["rss_start"] is None:
            print(f"  {row['process']}")
            continue
        print(
            f"  {row['process']:36} {row['rss_start']:9.1f} {row['rss_end']:8.1f} {row['uss_start']:9.1f} "
            f"{row['uss_end']:8.1f} {row['uss_growth_pct'] or 0:7.1f}%"
        )
    timeline = f["memory_timeline"]
    if len(timeline["seconds"]) > 2:
        print("\n## USS (MiB) by reading; a leak keeps growing in the second half, a warm-up flattens")
        print(f"  seconds: {timeline['seconds']}")
        for row in timeline["processes"]:
            print(f"  {row['process']:36} 2nd half {row['second_half_growth_pct'] or 0:+5.1f}%  {row['uss']}")
    print(f"\n## machine load (1, 5, 15 min): start {f['load_start']}, end {f['load_end']}")


if __name__ == "__main__":
    main()
