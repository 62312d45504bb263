"""Client-side limiter: token buckets for requests and tokens per minute, a semaphore for concurrency.

Buckets hold one second's worth of budget, so a busy worker sends a smooth stream rather than a burst that
the provider answers with a storm of 429s. A request larger than the bucket (a big embeddings batch) waits
for a full bucket and then borrows: the debt delays the requests after it, which keeps the minute average.

`Limiter` holds the budget in this process; `SharedLimiter` keeps the same buckets in a store every process
of the deployment shares (`genapi.budget`), so N processes together stay within one provider limit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime

from genapi.budget import BudgetStore

log = logging.getLogger("genapi")


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


class TokenBucket:
    def __init__(self, per_minute: float, *, burst_seconds: float = 1.0, clock=time.monotonic, sleep=None):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.tokens = self.capacity
        self._clock = clock
        self._sleep = sleep or time.sleep
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self, cost: float = 1.0) -> float:
        """Take ``cost`` from the bucket, sleeping as needed. Returns the time waited."""
        waited = 0.0
        need = min(cost, self.capacity)
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                if self.tokens >= need:
                    self.tokens -= cost
                    return waited
                wait = (need - self.tokens) / self.rate
            self._sleep(wait)
            waited += wait


class Limiter:
    def __init__(self, rpm: int, tpm: int, concurrency: int, *, sleep: Callable[[float], None] | None = None):
        self._sleep = sleep or time.sleep
        self.requests = TokenBucket(rpm, sleep=self._sleep)
        self.tokens = TokenBucket(tpm, sleep=self._sleep)
        self.concurrency = threading.BoundedSemaphore(concurrency)
        self._pause_until = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """The provider said "wait": hold every thread of this process, not only the one that got the 429."""
        with self._lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def wait_pause(self) -> None:
        while True:
            with self._lock:
                remaining = self._pause_until - time.monotonic()
            if remaining <= 0:
                return
            self._sleep(remaining)

    @contextmanager
    def slot(self, tokens: int) -> Iterator[None]:
        self.wait_pause()
        self.requests.acquire(1)
        if tokens:
            self.tokens.acquire(tokens)
        self.concurrency.acquire()
        try:
            yield
        finally:
            self.concurrency.release()

    def acquire(self, tokens: int) -> None:
        """Non-contextmanager form for streams: call :meth:`release` when the stream ends."""
        self.wait_pause()
        self.requests.acquire(1)
        if tokens:
            self.tokens.acquire(tokens)
        self.concurrency.acquire()

    def release(self, ticket: object = None) -> None:
        self.concurrency.release()


# After a store failure, how long this process limits itself alone before asking the store again.
STORE_RETRY_SECONDS = 30


class SharedLimiter:
    """The `Limiter` interface over a shared store: each `acquire` is one atomic round trip to it (more only
    while the budget says wait). `acquire` returns a ticket (the concurrency slot's name) for `release`.

    If the store cannot be reached, this process falls back to its own `Limiter` (logged once) rather than
    stopping every provider call: the provider's 429s and their `Retry-After` still pace it.
    """

    def __init__(
        self,
        store: BudgetStore,
        key: str,
        *,
        rpm: int,
        tpm: int,
        concurrency: int,
        lease_seconds: float,
        sleep: Callable[[float], None] | None = None,
    ):
        self.store = store
        self.key = key
        self.rpm, self.tpm, self.concurrency_limit = rpm, tpm, concurrency
        self.lease_seconds = lease_seconds
        self._sleep = sleep or time.sleep
        self._fallback = Limiter(rpm, tpm, concurrency, sleep=self._sleep)
        self._failed_until = 0.0

    @property
    def _failed(self) -> bool:
        return time.monotonic() < self._failed_until

    def _store_failed(self, exc: Exception) -> None:
        if not self._failed:
            log.warning(
                "genapi: the shared rate budget is unreachable (%s: %s); this process limits itself "
                "alone for %d s",
                type(exc).__name__,
                exc,
                STORE_RETRY_SECONDS,
            )
        self._failed_until = time.monotonic() + STORE_RETRY_SECONDS

    def acquire(self, tokens: int) -> object:
        holder = uuid.uuid4().hex
        while not self._failed:
            try:
                wait = self.store.admit(
                    self.key,
                    rpm=self.rpm,
                    tpm=self.tpm,
                    tokens=int(tokens or 0),
                    concurrency=self.concurrency_limit,
                    holder=holder,
                    lease=self.lease_seconds,
                )
            except Exception as exc:  # noqa: BLE001 - any store failure: fall back, never fail the call
                self._store_failed(exc)
                break
            if wait <= 0:
                return holder
            self._sleep(wait)
        self._fallback.acquire(tokens)
        return None

    def release(self, ticket: object = None) -> None:
        if ticket is None:
            self._fallback.release()
            return
        try:
            self.store.release(self.key, str(ticket))
        except Exception as exc:  # noqa: BLE001 - the lease expires on its own
            self._store_failed(exc)

    @contextmanager
    def slot(self, tokens: int) -> Iterator[None]:
        ticket = self.acquire(tokens)
        try:
            yield
        finally:
            self.release(ticket)

    def pause(self, seconds: float) -> None:
        """The provider said "wait": every process holds (the store answers `admit` with the pause)."""
        self._fallback.pause(seconds)
        if not self._failed:
            try:
                self.store.pause(self.key, seconds)
            except Exception as exc:  # noqa: BLE001
                self._store_failed(exc)

    def wait_pause(self) -> None:
        self._fallback.wait_pause()


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str | None) -> float | None:
    """``250ms``, ``1s``, ``1m30s``, ``2h``, ``1.5`` (seconds) -> seconds."""
    if value is None:
        return None
    value = value.strip().lower()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(value):
        if m.start() != pos:
            return None
        pos = m.end()
        n = float(m.group(1))
        total += {"ms": n / 1000, "s": n, "m": n * 60, "h": n * 3600}[m.group(2)]
    return total if pos == len(value) and pos else None


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    secs = parse_duration(value)
    if secs is not None:
        return secs
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _ms(value: str | None) -> float | None:
    try:
        return float(value) / 1000 if value else None
    except ValueError:
        return None


def server_wait_hint(headers) -> float | None:
    """How long the provider asks us to wait after a 429/503, or None when it says nothing.

    ``Retry-After`` is always honoured. A ``x-ratelimit-reset-*`` header describes its own bucket, so it is
    honoured when that bucket is the empty one (or when we cannot tell which one is).
    """
    rem_req = (headers.get("x-ratelimit-remaining-requests") or "").strip()
    rem_tok = (headers.get("x-ratelimit-remaining-tokens") or "").strip()
    hints = [parse_retry_after(headers.get("retry-after")), _ms(headers.get("retry-after-ms"))]
    if rem_req in ("", "0"):
        hints.append(parse_duration(headers.get("x-ratelimit-reset-requests")))
    if rem_tok == "" or rem_req != "0":
        hints.append(parse_duration(headers.get("x-ratelimit-reset-tokens")))
    values = [h for h in hints if h is not None]
    return max(values) if values else None
