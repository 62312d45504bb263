"""The genapi client's hooks: every provider attempt and call goes to the Prometheus metrics at once and
into a per-process tally by (day, endpoint, model), folded into ProviderUsageDay at the end of each task
and process, and of a request when RAG_PROVIDER_USAGE_FLUSH_SECONDS have passed since the last fold (so
a busy web process writes the row a few times a minute, not once a search). Not written on every call:
calls run inside transactions and on the query embedding's thread pool, where a row write would hold a
lock or open a connection of its own."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime

from celery import signals as celery_signals
from django.conf import settings
from django.core.signals import request_finished
from django.db import connection, transaction

from genapi import AttemptRecord, UsageRecord, add_attempt_hook, add_usage_hook
from operations import metrics

log = logging.getLogger(__name__)

FIELDS = ("calls", "input_tokens", "output_tokens", "rate_limited", "errors", "latency_ms_total")

_lock = threading.Lock()
_tally: dict[tuple[date, str, str], Counter] = {}
_last_flush = float("-inf")  # time.monotonic() of the last fold a request's end started


def _today() -> date:
    return datetime.now(UTC).date()


def _add(endpoint: str, model: str, **amounts: float) -> None:
    with _lock:
        _tally.setdefault((_today(), endpoint, model), Counter()).update(amounts)


def on_usage(record: UsageRecord) -> None:
    model = record.model or ""
    metrics.provider_call_seconds.labels(record.endpoint, model).observe(record.latency_ms / 1000)
    metrics.provider_tokens.labels(record.endpoint, model, "input").inc(record.input_tokens)
    metrics.provider_tokens.labels(record.endpoint, model, "output").inc(record.output_tokens)
    _add(
        record.endpoint,
        model,
        calls=1,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        latency_ms_total=record.latency_ms,
    )


def on_attempt(record: AttemptRecord) -> None:
    model = record.model or ""
    metrics.provider_requests.labels(record.endpoint, model, record.outcome).inc()
    if record.outcome == "429":
        metrics.provider_rate_limited.labels(record.endpoint, model).inc()
        _add(record.endpoint, model, rate_limited=1)
    elif not record.outcome.startswith(("2", "3")):
        _add(record.endpoint, model, errors=1)


_ROW = f"({', '.join(['%s'] * (3 + len(FIELDS)))})"


def _upsert_sql(rows: int) -> str:
    """One statement for every row. Not executemany: psycopg runs that in pipeline mode, and a failure
    there (the database gone when the process exits) is logged by psycopg itself as it aborts the
    pipeline, at exit into handlers already closed: the "--- Logging error ---" after a search. A plain
    statement just raises, and the flush handles it. The rows' keys are distinct (one tally per key)."""
    return f"""
INSERT INTO operations_providerusageday (day, endpoint, model, {", ".join(FIELDS)})
VALUES {", ".join([_ROW] * rows)}
ON CONFLICT (day, endpoint, model) DO UPDATE SET
{", ".join(f"{f} = operations_providerusageday.{f} + EXCLUDED.{f}" for f in FIELDS)}
"""  # noqa: S608 - column names are this module's constants


def provider_usage_flush(*, quiet: bool = False) -> int:
    """Fold this process's tally into ProviderUsageDay; returns the rows touched. On a database error the
    tally is kept for the next flush (usage is money: not dropped on a blip). Called at the boundaries
    of requests and tasks, where no transaction of the caller's is open, so the rows' locks last one
    statement."""
    with _lock:
        pending = dict(_tally)
        _tally.clear()
    if not pending:
        return 0
    rows = [
        (day, endpoint, model, *(int(c[f]) if f != "latency_ms_total" else float(c[f]) for f in FIELDS))
        for (day, endpoint, model), c in sorted(pending.items())
    ]
    try:
        # A savepoint if a transaction is open after all: a failure here must not break the caller's.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_upsert_sql(len(rows)), [value for row in rows for value in row])
    except Exception as exc:  # noqa: BLE001 - accounting must never fail a request or a task
        if quiet:  # at exit: logging may already be shut down
            return 0
        log.warning("provider usage not recorded yet (%s: %s); kept for the next flush", type(exc).__name__,
                    exc)  # fmt: skip
        with _lock:
            for key, amounts in pending.items():
                _tally.setdefault(key, Counter()).update(amounts)
        return 0
    return len(rows)


def _flush_quietly(*args, **kwargs) -> None:
    provider_usage_flush()


def _flush_when_due(*args, **kwargs) -> None:
    """At a request's end: fold the tally if RAG_PROVIDER_USAGE_FLUSH_SECONDS have passed since the last
    time (one thread of the process does it; the others go on)."""
    global _last_flush
    now = time.monotonic()
    with _lock:
        if now - _last_flush < float(settings.RAG_PROVIDER_USAGE_FLUSH_SECONDS) or not _tally:
            return
        _last_flush = now
    provider_usage_flush()


_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    add_usage_hook(on_usage)
    add_attempt_hook(on_attempt)
    request_finished.connect(_flush_when_due, dispatch_uid="operations.provider_usage.request")
    celery_signals.task_postrun.connect(
        _flush_quietly, dispatch_uid="operations.provider_usage.task", weak=False
    )
    # A command that called the provider outside any request or task (manage.py evaluate, ingest).
    atexit.register(provider_usage_flush, quiet=True)
