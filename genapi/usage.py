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


UsageHook = Callable[[UsageRecord], None]
_hooks: list[UsageHook] = []
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


def emit(record: UsageRecord) -> None:
    with _lock:
        hooks = list(_hooks)
    for hook in hooks:
        try:
            hook(record)
        except Exception:  # a broken cost recorder must not fail the provider call
            log.exception("genapi usage hook %r failed", hook)
