"""Celery: the request id travels in task headers from whoever enqueued the task into the task's log
lines (and into the tasks it enqueues in turn); each task's run time is recorded by name and state."""

from __future__ import annotations

import logging
import time

from celery import signals
from django.db import connections, reset_queries

from operations.context import request_id_get, request_id_reset, request_id_set, task_reset, task_set
from operations.metrics import celery_task_seconds

log = logging.getLogger("citable.tasks")

HEADER = "citable_request_id"

# task id -> (start time, context tokens); a worker child runs one task at a time, a thread pool several.
_running: dict[str, tuple[float, object, object]] = {}


@signals.before_task_publish.connect
def request_id_to_headers(headers: dict | None = None, **kwargs) -> None:
    request_id = request_id_get()
    if headers is not None and request_id and HEADER not in headers:
        headers[HEADER] = request_id


def _connections_tidy() -> None:
    """Django's `close_old_connections`, except on a connection inside a transaction (a task run where a
    transaction is open, e.g. a test's: closing it would end the caller's transaction)."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


@signals.task_prerun.connect
def task_started(task_id: str | None = None, task=None, args=None, **kwargs) -> None:
    # Custom message headers become attributes of the task's request context.
    request_id = getattr(task.request, HEADER, None) if task is not None else None
    # An eager task (run in the caller's process) keeps the caller's id.
    rid_token = request_id_set(request_id or request_id_get())
    task_token = task_set((task.name, task_id) if task is not None else None)
    _running[task_id] = (time.perf_counter(), rid_token, task_token)
    if not getattr(getattr(task, "request", None), "is_eager", False):
        # What Django does when a request starts: with DEBUG on, a worker child's connections would
        # otherwise log their last 9,000 statements each; and a connection past CONN_MAX_AGE or broken
        # (the database restarted) is closed, the next query opens a new one (rag_project/celery.py: the
        # connections are kept between tasks). An eager task runs inside its caller, whose log and
        # connection are the caller's.
        reset_queries()
        _connections_tidy()
    log.info("task %s started (args %s)", getattr(task, "name", "?"), _short(args))


@signals.task_postrun.connect
def task_finished(task_id: str | None = None, task=None, state: str | None = None, **kwargs) -> None:
    started, rid_token, task_token = _running.pop(task_id, (None, None, None))
    name = getattr(task, "name", "?")
    if started is not None:
        seconds = time.perf_counter() - started
        celery_task_seconds.labels(name, state or "UNKNOWN").observe(seconds)
        log.info("task %s finished: %s in %.3f s", name, state, seconds)
    if not getattr(getattr(task, "request", None), "is_eager", False):
        _connections_tidy()  # as Django does when a request ends
    # Always reset, even if logging failed above: the next task in this process starts clean.
    for reset, token in ((task_reset, task_token), (request_id_reset, rid_token)):
        if token is not None:
            try:
                reset(token)
            except ValueError:  # made in another context (a thread pool); nothing to undo here
                pass


def _short(args) -> str:
    text = repr(list(args or []))
    return text if len(text) <= 200 else text[:200] + "...]"
