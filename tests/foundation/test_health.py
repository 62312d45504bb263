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
    # Celery prefers the CELERY_BROKER_URL variable to its configuration (set on the production path).
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    up = client.get("/readyz").json()
    assert up["checks"]["broker"]["ok"] is True, up
    process.terminate()
    process.wait(timeout=10)
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["broker"]["ok"] is False
    assert body["status"] == "not ready"


@pytest.mark.django_db
def test_readyz_names_a_configured_model_the_provider_does_not_serve(client, genapi_local, settings):
    settings.GENAPI_RERANK_MODEL = "no-such-reranker-1"
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["provider"]["ok"] is False
    assert "rerank no-such-reranker-1" in body["checks"]["provider"]["error"]
    assert "chat" not in body["checks"]["provider"]["error"]  # the served ones are not named


def test_the_stand_in_serves_every_default_model(tmp_path):
    """The production defaults (settings with no model variables) are all in the stand-in's catalogue,
    so `make run` with the stand-in and a model switch to a default both stay ready."""
    import json
    import os
    import sys

    from genapi.local.catalogue import models_list

    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAPI_")}
    probe = (
        "import json, django; django.setup()\n"
        "from rag_project.health import configured_models\n"
        "print(json.dumps(configured_models()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={
            **env,
            "DJANGO_SETTINGS_MODULE": "rag_project.settings",
            "DJANGO_DEBUG": "1",
            "RAG_DATA_DIR": str(tmp_path),  # no run.env from a `make run` here
            "DATABASE_URL": "postgresql://unused@127.0.0.1:1/unused",  # settings only, no server
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    defaults = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(defaults) == {"embedding", "rerank", "chat", "transcription"}
    served = {model["id"] for model in models_list()[1]["data"]}
    assert set(defaults.values()) <= served, set(defaults.values()) - served
