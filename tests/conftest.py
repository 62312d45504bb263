"""Shared test fixtures: the embedded PostgreSQL (via settings), the local model stand-in over a
real socket, and a real Celery worker process for tests where queueing matters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# The test environment is prepared in tests/settings.py (loaded before this file).


@pytest.fixture(scope="session")
def genapi_local():
    """The local stand-in on a free 127.0.0.1 port for the whole session; the client points at it."""
    from genapi import reset_client
    from genapi.testing import local_server

    with local_server() as server:
        os.environ["GENAPI_BASE_URL"] = server.base_url
        reset_client()
        yield server
    reset_client()


@pytest.fixture
def genapi(genapi_local):
    """The stand-in with clean knobs and counters for one test."""
    genapi_local.reset_knobs()
    genapi_local.reset_stats()
    yield genapi_local
    genapi_local.reset_knobs()


def database_url_for_subprocess() -> str:
    """A DATABASE_URL naming the database this test session uses (the test database)."""
    from django.db import connection

    conf = connection.settings_dict
    host = conf["HOST"]
    if host.startswith("/"):
        host = quote(host, safe="")
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    password = f":{quote(conf['PASSWORD'], safe='')}" if conf.get("PASSWORD") else ""
    return f"postgresql://{conf['USER']}{password}@{host}{port}/{conf['NAME']}"


class WorkerProcess:
    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_worker(
    tmp_path: Path, *, broker_url: str | None = None, extra_env: dict | None = None, concurrency: int = 2
) -> WorkerProcess:
    """Start `celery worker` as a real process on the test database and this session's queue."""
    from django.conf import settings

    env = dict(os.environ)
    env["DATABASE_URL"] = database_url_for_subprocess()
    env["CELERY_BROKER_URL"] = broker_url or settings.CELERY_BROKER_URL
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra_env or {})
    log_path = tmp_path / f"worker-{uuid.uuid4().hex[:8]}.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "rag_project",
            "worker",
            "--loglevel=INFO",
            "-Q",
            env["CELERY_TASK_DEFAULT_QUEUE"],
            "--pool=threads",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"test-{uuid.uuid4().hex[:6]}@%h",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    worker = WorkerProcess(process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{worker.log()}")
        if " ready." in worker.log():
            return worker
        time.sleep(0.2)
    worker.stop()
    raise RuntimeError(f"celery worker did not become ready:\n{worker.log()}")


@pytest.fixture
def celery_worker_process(tmp_path, transactional_db, genapi_local):
    """A real worker for one test. Tests using it commit their rows (transactional_db)."""
    worker = start_worker(tmp_path)
    yield worker
    worker.stop()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, message: str = "condition"):
    """Poll until `predicate()` is truthy; used to wait on a real worker, not to time anything."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture
def no_provider_retries(monkeypatch):
    """The client's retries with backoff are tested in tests/genapi; elsewhere they only cost time."""
    from genapi import reset_client

    monkeypatch.setenv("GENAPI_MAX_RETRIES", "0")
    reset_client()
    yield
    monkeypatch.undo()
    reset_client()
