"""Usage reporting: every provider call ends with a :class:`UsageRecord` passed to the registered hooks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageRecord:
    model: str | None
    endpoint: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    retries: int


@dataclass(frozen=True)
class AttemptRecord:
    """One HTTP attempt (a call with retries makes several): its outcome is the HTTP status as text,
    or "timeout" / "network" when no answer came. Metrics count 429s and 5xx from these."""

    model: str | None
    endpoint: str
    outcome: str
    latency_ms: float


UsageHook = Callable[[UsageRecord], None]
AttemptHook = Callable[[AttemptRecord], None]
_hooks: list[UsageHook] = []
_attempt_hooks: list[AttemptHook] = []
_lock = threading.Lock()


def add_usage_hook(fn: UsageHook) -> UsageHook:
    with _lock:
        if fn not in _hooks:
            _hooks.append(fn)
    return fn


def remove_usage_hook(fn: UsageHook) -> None:
    with _lock:
        if fn in _hooks:
            _hooks.remove(fn)


def clear_usage_hooks() -> None:
    with _lock:
        _hooks.clear()
        _attempt_hooks.clear()


def add_attempt_hook(fn: AttemptHook) -> AttemptHook:
    with _lock:
        if fn not in _attempt_hooks:
            _attempt_hooks.append(fn)
    return fn


def remove_attempt_hook(fn: AttemptHook) -> None:
    with _lock:
        if fn in _attempt_hooks:
            _attempt_hooks.remove(fn)


def emit_attempt(record: AttemptRecord) -> None:
    with _lock:
        hooks = list(_attempt_hooks)
    for hook in hooks:
        try:
            hook(record)
        except Exception:  # a broken metrics hook must not fail the provider call
            log.exception("genapi attempt hook %r failed", hook)


def emit(record: UsageRecord) -> None:
    with _lock:
        hooks = list(_hooks)
    for hook in hooks:
        try:
            hook(record)
        except Exception:  # a broken cost recorder must not fail the provider call
            log.exception("genapi usage hook %r failed", hook)
