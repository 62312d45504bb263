"""A real Celery worker process consumes the smoke task, over the embedded broker and over Redis."""

from __future__ import annotations

import socket
import uuid

import pytest

from rag_project.models import SmokeRecord
from rag_project.tasks import smoke
from tests.conftest import start_worker, wait_for

REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def send_smoke_and_wait(broker_url: str | None) -> SmokeRecord:
    from rag_project.celery import app

    token = uuid.uuid4().hex
    if broker_url:
        with app.connection_for_write(broker_url) as conn:
            smoke.apply_async(args=[token], connection=conn)
    else:
        smoke.delay(token)
    return wait_for(
        lambda: SmokeRecord.objects.filter(token=token).first(),
        timeout=60,
        message="the worker to run the smoke task",
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_consumes_smoke_task_over_embedded_broker(tmp_path):
    from django.conf import settings

    assert settings.CELERY_BROKER_URL.startswith("sqla+") or settings.DATABASE_URL
    worker = start_worker(tmp_path)
    try:
        record = send_smoke_and_wait(None)
        assert record.worker_hostname.startswith("test-")
    finally:
        worker.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_consumes_smoke_task_over_redis(tmp_path):
    if not redis_answers():
        pytest.skip("Redis does not answer on 127.0.0.1:6379; the Redis broker path is not exercised")
    worker = start_worker(tmp_path, broker_url=REDIS_URL)
    try:
        record = send_smoke_and_wait(REDIS_URL)
        assert record.worker_hostname.startswith("test-")
    finally:
        worker.stop()
