"""A worker child empties its connections' query logs when a task starts, as Django does per request; an
eager task (run inside its caller) leaves the caller's log alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import connection

from operations.celery_signals import task_finished, task_started

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("eager", "kept"), [(False, 0), (True, 3)])
def test_task_start_empties_the_query_log_unless_eager(settings, eager, kept):
    settings.DEBUG = True
    connection.queries_log.clear()
    connection.queries_log.extend({"sql": f"SELECT {n}", "time": "0.000"} for n in range(3))
    task = SimpleNamespace(name="ingestion.documents_ingest", request=SimpleNamespace(is_eager=eager))
    task_started(task_id=f"t-{eager}", task=task, args=[[1]])
    try:
        assert len(connection.queries_log) == kept
    finally:
        task_finished(task_id=f"t-{eager}", task=task, state="SUCCESS")
        connection.queries_log.clear()


def test_task_start_closes_a_connection_past_its_age_and_keeps_a_fresh_one(transactional_db):
    """Connections are kept between a worker's tasks (rag_project/celery.py); one past CONN_MAX_AGE is
    closed when the next task starts, as Django closes it when a request starts."""
    import time

    task = SimpleNamespace(name="ingestion.documents_ingest", request=SimpleNamespace(is_eager=False))
    connection.ensure_connection()
    connection.close_at = time.monotonic() + 600
    kept = connection.connection
    task_started(task_id="t-fresh", task=task, args=[[1]])
    task_finished(task_id="t-fresh", task=task, state="SUCCESS")
    assert connection.connection is kept
    connection.close_at = time.monotonic() - 1  # past its age
    task_started(task_id="t-old", task=task, args=[[1]])
    try:
        assert connection.connection is None
    finally:
        task_finished(task_id="t-old", task=task, state="SUCCESS")
