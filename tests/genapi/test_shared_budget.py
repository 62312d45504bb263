"""One provider budget shared by every process (genapi/budget.py), in Redis and in PostgreSQL: the stores'
decisions, then several real processes against the stand-in enforcing its limits.

Redis: CITABLE_TEST_REDIS_URL (default db 3 of the local server). Every test uses its own key prefix, so
test sessions never share budget state, whatever the database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from genapi.budget import SLOT_POLL_SECONDS, PostgresBudget, RedisBudget, budget_key, budget_open
from genapi.testing import local_server

REDIS_URL = os.environ.get("CITABLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")
REPO_ROOT = Path(__file__).resolve().parents[2]


def redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def postgres_url(django_db_setup, django_db_blocker) -> str:
    from tests.conftest import database_url_for_subprocess

    with django_db_blocker.unblock():
        return database_url_for_subprocess()


@pytest.fixture(params=["redis", "postgres"])
def store_url(request) -> str:
    if request.param == "redis":
        if not redis_answers():
            pytest.skip(f"REDIS NOT TESTED: no Redis answers at {REDIS_URL}")
        return REDIS_URL
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url):
    opened = budget_open(store_url)
    yield opened
    opened.close()


def key() -> str:
    return budget_key(f"citable-test-{uuid.uuid4().hex}", "http://127.0.0.1:1/v1")


def test_budget_open_picks_the_store_from_the_url():
    assert isinstance(budget_open("redis://127.0.0.1:6379/3"), RedisBudget)
    assert isinstance(budget_open("postgresql://u@/db?host=/tmp"), PostgresBudget)
    with pytest.raises(ValueError, match="redis:// or postgresql://"):
        budget_open("memcached://127.0.0.1")


def test_keys_differ_by_prefix_and_provider():
    assert budget_key("a", "http://x/v1") == budget_key("a", "http://x/v1/")
    assert budget_key("a", "http://x/v1") != budget_key("b", "http://x/v1")
    assert budget_key("a", "http://x/v1") != budget_key("a", "http://y/v1")


def test_store_admits_within_the_buckets_and_says_how_long_to_wait(store):
    k = key()
    # 60 requests/min: a bucket of one request, refilled in a second; 6,000 tokens/min: 100 a second.
    limits = dict(rpm=60, tpm=6000, concurrency=0, lease=60)
    assert store.admit(k, tokens=80, holder="a", **limits) == 0
    wait = store.admit(k, tokens=10, holder="b", **limits)
    assert 0.5 < wait <= 1.0  # the request bucket is empty: about a second
    other = key()
    assert store.admit(other, tokens=80, holder="a", **limits) == 0  # another budget is untouched


def test_a_request_larger_than_the_bucket_waits_for_a_full_one_then_borrows(store):
    k = key()
    limits = dict(rpm=6000, tpm=6000, concurrency=0, lease=60)
    assert store.admit(k, tokens=250, holder="a", **limits) == 0  # full bucket (100): admitted, in debt
    wait = store.admit(k, tokens=10, holder="b", **limits)
    assert 1.5 < wait <= 1.6  # 150 tokens of debt plus the 10 asked for, at 100 a second


def test_concurrency_slots_are_shared_released_and_expire(store):
    k = key()
    limits = dict(rpm=600_000, tpm=10**9, tokens=1, concurrency=2)
    assert store.admit(k, holder="a", lease=60, **limits) == 0
    assert store.admit(k, holder="b", lease=60, **limits) == 0
    assert store.admit(k, holder="c", lease=60, **limits) == SLOT_POLL_SECONDS
    store.release(k, "a")
    assert store.admit(k, holder="c", lease=0, **limits) == 0
    # "c" leased for 0 s: as if its process died mid-request, its slot is free again.
    assert store.admit(k, holder="d", lease=60, **limits) == 0
    assert store.admit(k, holder="e", lease=60, **limits) == SLOT_POLL_SECONDS


def test_a_provider_pause_holds_every_caller(store):
    k = key()
    limits = dict(rpm=600, tpm=10**6, tokens=1, concurrency=0, lease=60)
    assert store.admit(k, holder="a", **limits) == 0
    store.pause(k, 30)
    assert 29 < store.admit(k, holder="b", **limits) <= 30
    store.pause(k, 5)  # a shorter pause never shortens a longer one
    assert store.admit(k, holder="c", **limits) > 29


def test_the_client_uses_the_shared_store_when_configured(store_url):
    from genapi import GenAPIClient, GenAPIConfig
    from genapi.limiter import Limiter, SharedLimiter

    with local_server() as server:
        shared = GenAPIClient(GenAPIConfig(base_url=server.base_url, budget_url=store_url))
        alone = GenAPIClient(GenAPIConfig(base_url=server.base_url))
        try:
            assert isinstance(shared._state()[1], SharedLimiter)
            assert isinstance(alone._state()[1], Limiter)
            assert len(shared.embeddings_create("all-minilm-l6-v2", ["one", "two"]).vectors) == 2
        finally:
            shared.close()
            alone.close()


def test_an_unreachable_store_falls_back_to_a_local_limit():
    from genapi import GenAPIClient, GenAPIConfig

    with local_server() as server:
        client = GenAPIClient(
            GenAPIConfig(base_url=server.base_url, budget_url="redis://127.0.0.1:1/0", connect_timeout=1)
        )
        try:
            assert len(client.embeddings_create("all-minilm-l6-v2", ["still works"]).vectors) == 1
        finally:
            client.close()


PROCESSES, THREADS, CALLS, CHARS = 4, 2, 4, 1000  # 32 calls of 250 tokens


def run_processes(tmp_path: Path, budget_url: str, base_url: str) -> list[dict]:
    """PROCESSES real processes sending at once, every one configured with the provider's full limits."""
    env = {
        **os.environ,
        "GENAPI_BASE_URL": base_url,
        "GENAPI_BUDGET_URL": budget_url,
        "GENAPI_BUDGET_PREFIX": f"citable-test-{uuid.uuid4().hex}",
        "GENAPI_RPM": "600",
        "GENAPI_TPM": "120000",
        "GENAPI_CONCURRENCY": "2",
        "GENAPI_MAX_RETRIES": "8",
        # Slack for a loaded machine: an admitted request may reach the stand-in long after its admission,
        # behind one admitted later, and a released slot may be reused before the stand-in counts it free.
        "GENAPI_BUDGET_MARGIN": "0.1",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.genapi.budget_worker",
                str(tmp_path),
                str(n),
                str(THREADS),
                str(CALLS),
                str(CHARS),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for n in range(PROCESSES)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("ready-*"))) < PROCESSES:
            assert time.monotonic() < deadline, "budget workers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
        (tmp_path / "go").touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.slow
def test_several_processes_share_one_budget_and_never_see_a_429(store_url, tmp_path):
    # The stand-in enforces 600 requests/min, 120,000 tokens/min (a bucket of 8 calls) and 4 at once
    # (the clients 2: see run_processes).
    with local_server(rpm=600, tpm=120_000, concurrency=4, latency_ms=50) as server:
        results = run_processes(tmp_path, store_url, server.base_url)
        stats = server.stats()
    assert [r["errors"] for r in results] == [[]] * PROCESSES
    assert sum(r["ok"] for r in results) == PROCESSES * THREADS * CALLS
    assert stats["statuses"].get("429", 0) == 0, stats
    assert stats["requests"]["embeddings"] == PROCESSES * THREADS * CALLS  # no retries either


@pytest.mark.slow
def test_without_a_shared_budget_the_same_processes_overrun_the_provider(tmp_path):
    """The same run with one budget per process: each holds the full limit, together they exceed it."""
    with local_server(rpm=600, tpm=120_000, concurrency=4, latency_ms=50) as server:
        results = run_processes(tmp_path, "process", server.base_url)
        stats = server.stats()
    assert sum(r["ok"] for r in results) == PROCESSES * THREADS * CALLS  # the retries absorb them
    assert stats["statuses"].get("429", 0) > 0, stats
