"""A real Celery worker process consumes a real task, over the embedded broker and over Redis.

The task is `ingestion.embedding_space_retire` on a space nobody uses: it needs no provider, and only a
worker can move the row to `retired` (the test process never runs tasks eagerly).
"""

from __future__ import annotations

import socket

import pytest
from django.conf import settings

from ingestion.models import EmbeddingSpace
from ingestion.tasks import embedding_space_retire_task
from tests.conftest import start_worker, wait_for

REDIS_URL = "redis://127.0.0.1:6379/15"


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def send_task_and_wait(broker_url: str | None, worker) -> None:
    from rag_project.celery import app

    assert not settings.CELERY_TASK_ALWAYS_EAGER
    space = EmbeddingSpace.objects.create(
        provider_base_url="http://127.0.0.1:9/v1",
        model=f"smoke-{EmbeddingSpace.objects.count()}",
        dimensions=8,
        is_active=False,
        status=EmbeddingSpace.Status.BUILDING,
    )
    if broker_url:
        with app.connection_for_write(broker_url) as conn:
            result = embedding_space_retire_task.apply_async(args=[space.pk], connection=conn)
    else:
        result = embedding_space_retire_task.delay(space.pk)
    wait_for(
        lambda: EmbeddingSpace.objects.filter(pk=space.pk, status=EmbeddingSpace.Status.RETIRED).exists(),
        timeout=60,
        message="the worker to run the task",
    )
    # That worker (not another consumer of the queue) ran this very message.
    wait_for(lambda: f"[{result.id}] succeeded" in worker.log(), timeout=30, message="the worker's log line")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_consumes_a_task_over_embedded_broker(tmp_path):
    assert settings.CELERY_BROKER_URL.startswith("sqla+") or settings.DATABASE_URL
    worker = start_worker(tmp_path)
    try:
        send_task_and_wait(None, worker)
    finally:
        worker.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_consumes_a_task_over_redis(tmp_path):
    if not redis_answers():
        pytest.skip("Redis does not answer on 127.0.0.1:6379; the Redis broker path is not exercised")
    worker = start_worker(tmp_path, broker_url=REDIS_URL)
    try:
        send_task_and_wait(REDIS_URL, worker)
    finally:
        worker.stop()
