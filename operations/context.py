"""The request id (and Celery task) the current code runs for, in a context variable, so log lines and
tasks enqueued from here carry it without being passed around."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token

_request_id: ContextVar[str | None] = ContextVar("citable_request_id", default=None)
_task: ContextVar[tuple[str, str] | None] = ContextVar("citable_task", default=None)

# What a caller may send as X-Request-ID: a proxy's or client's id, never anything that could break a
# log line or a header (no spaces, no control characters), and bounded.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def request_id_new() -> str:
    return uuid.uuid4().hex


def request_id_accept(value: str | None) -> str:
    """The caller's id when it is well-formed, else a fresh one."""
    if value and _ACCEPTED.match(value):
        return value
    return request_id_new()


def request_id_get() -> str | None:
    return _request_id.get()


def request_id_set(value: str | None) -> Token:
    return _request_id.set(value)


def request_id_reset(token: Token) -> None:
    _request_id.reset(token)


def task_get() -> tuple[str, str] | None:
    """(task name, task id) of the Celery task running in this context, if any."""
    return _task.get()


def task_set(value: tuple[str, str] | None) -> Token:
    return _task.set(value)


def task_reset(token: Token) -> None:
    _task.reset(token)
