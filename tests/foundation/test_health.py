"""/healthz and /readyz report each check truthfully."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from rag_project.celery import app as celery_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_needs_nothing(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_all_green_on_the_embedded_defaults(client, genapi_local):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["checks"]) == {"database", "broker", "provider"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["database"]["detail"].startswith("pgvector")


@pytest.mark.django_db
def test_readyz_reports_a_provider_that_does_not_answer(client, genapi_local, monkeypatch):
    monkeypatch.setenv("GENAPI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["provider"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


@pytest.fixture
def throwaway_redis():
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed; cannot start and stop a broker for this test")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield process, f"redis://127.0.0.1:{port}/0"
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.mark.django_db
def test_readyz_says_so_when_the_broker_stops(client, genapi_local, throwaway_redis, monkeypatch):
    process, url = throwaway_redis
    monkeypatch.setattr(celery_app.conf, "broker_url", url)
    up = client.get("/readyz").json()
    assert up["checks"]["broker"]["ok"] is True, up
    process.terminate()
    process.wait(timeout=10)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["broker"]["ok"] is False
    assert body["status"] == "not ready"
