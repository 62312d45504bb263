"""The stand-in's state: fault knobs, rate limits with the provider's headers, counters, and routing for
batch lines. The HTTP handler (`server`) asks it whether to admit each request."""

from __future__ import annotations

import math
import os
import random
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlparse

from genapi.limiter import estimate_tokens
from genapi.local.answer import content_text
from genapi.local.batches import BatchStore
from genapi.local.catalogue import error
from genapi.local.engines import Engines

ROUTE_RE = re.compile(r"^(?:/([^/]+))?/v1/(.+?)/?$")


@dataclass
class Knobs:
    latency_ms: float = 0.0
    rpm: int = 0  # 0 = unlimited
    tpm: int = 0
    concurrency: int = 0
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    stream_cut_rate: float = 0.0
    # Burst allowance of the enforced limits, in seconds of budget (60 = a full minute's worth at once).
    rate_window_s: float = 1.0
    fail_next: list[dict[str, Any]] = field(default_factory=list)
    seed: int | None = None

    @classmethod
    def from_env(cls, env=None) -> Knobs:
        env = os.environ if env is None else env
        k = cls()
        for f in fields(cls):
            raw = env.get(f"GENAPI_LOCAL_{f.name.upper()}")
            if raw not in (None, "") and f.name != "fail_next":
                setattr(k, f.name, int(float(raw)) if f.type in ("int", "int | None") else float(raw))
        return k


def fmt_duration(seconds: float) -> str:
    """OpenAI-style reset durations: ``250ms``, ``1.5s``, ``1m30s``, ``2h0m0s``."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 100) / 100:g}s"
    s = math.ceil(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m}m{s}s" if h else f"{m}m{s}s"


class _Bucket:
    def __init__(self, per_minute: int, window_s: float):
        self.limit = per_minute
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * window_s)
        self.tokens = self.capacity
        self.last = time.monotonic()

    def take(self, cost: float) -> tuple[bool, float]:
        """``(allowed, seconds until allowed)``; a request bigger than the bucket needs it full."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        need = min(cost, self.capacity)
        if self.tokens >= need:
            self.tokens -= cost
            return True, 0.0
        return False, (need - self.tokens) / self.rate

    def headers(self, kind: str, wait: float) -> dict[str, str]:
        until_full = max(0.0, (self.capacity - self.tokens) / self.rate)
        return {
            f"x-ratelimit-limit-{kind}": str(self.limit),
            f"x-ratelimit-remaining-{kind}": str(max(0, int(self.tokens))),
            f"x-ratelimit-reset-{kind}": fmt_duration(wait if wait > 0 else until_full),
        }


class StandIn:
    """Shared state of one stand-in server: knobs, counters, limits, engines, batches."""

    def __init__(
        self, knobs: Knobs | None = None, *, api_key: str | None = None, embeddings=None, rerank=None
    ):
        self.knobs = knobs or Knobs.from_env()
        self.api_key = api_key if api_key is not None else (os.environ.get("GENAPI_LOCAL_API_KEY") or None)
        self.engines = Engines(embeddings, rerank)
        self.batches = BatchStore(self.dispatch)
        self.lock = threading.Lock()
        self.stats: Counter = Counter()
        self.statuses: Counter = Counter()
        self.rng = random.Random(self.knobs.seed)
        self.in_flight = 0
        self._buckets: dict[str, _Bucket] = {}
        self._rebuild_buckets()

    # -- knobs ------------------------------------------------------------------------------------

    def _rebuild_buckets(self) -> None:
        k = self.knobs
        self._buckets = {}
        if k.rpm:
            self._buckets["requests"] = _Bucket(k.rpm, k.rate_window_s)
        if k.tpm:
            self._buckets["tokens"] = _Bucket(k.tpm, k.rate_window_s)

    def set_knobs(self, changes: dict[str, Any]) -> dict[str, Any]:
        names = {f.name for f in fields(Knobs)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown knobs: {sorted(unknown)}")
        with self.lock:
            for name, value in changes.items():
                if name == "fail_next":
                    self.knobs.fail_next = self._fail_specs(value)
                else:
                    setattr(self.knobs, name, value)
            if "seed" in changes:
                self.rng = random.Random(self.knobs.seed)
            if {"rpm", "tpm", "rate_window_s"} & set(changes):
                self._rebuild_buckets()
            return self.knobs_dict()

    @staticmethod
    def _fail_specs(value: Any) -> list[dict[str, Any]]:
        """``N`` (N x 500), a spec ``{"count", "status", "body", "headers", "endpoint", "in_stream", "raw"}``
        or a list of specs."""
        if value in (None, 0, [], {}):
            return []
        if isinstance(value, int):
            value = {"count": value}
        if isinstance(value, dict):
            value = [value]
        specs = []
        for spec in value:
            spec = dict(spec)
            spec.setdefault("count", 1)
            spec.setdefault("status", 500)
            specs.append(spec)
        return specs

    def knobs_dict(self) -> dict[str, Any]:
        return asdict(self.knobs)

    def _take_fail(self, endpoint: str) -> dict[str, Any] | None:
        with self.lock:
            for spec in self.knobs.fail_next:
                if spec.get("endpoint") in (None, endpoint):
                    spec["count"] -= 1
                    if spec["count"] <= 0:
                        self.knobs.fail_next.remove(spec)
                    return spec
        return None

    def stats_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": dict(self.stats),
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "total": sum(v for k, v in self.stats.items() if not k.startswith("_")),
                "in_flight": self.in_flight,
            }

    def reset_stats(self) -> None:
        with self.lock:
            self.stats.clear()
            self.statuses.clear()

    # -- limits -----------------------------------------------------------------------------------

    def admit(self, tokens: int) -> tuple[bool, dict[str, str], str]:
        """Rate limits and the concurrency cap; returns (admitted, headers, reason)."""
        with self.lock:
            headers: dict[str, str] = {}
            waits = {}
            costs = {"requests": 1, "tokens": tokens}
            snapshot = {name: (b.tokens, b.last) for name, b in self._buckets.items()}
            for name, bucket in self._buckets.items():
                ok, wait = bucket.take(costs[name])
                if not ok:
                    waits[name] = wait
            if waits:  # all-or-nothing: a refused request consumes nothing
                for name, (tokens_left, last) in snapshot.items():
                    self._buckets[name].tokens, self._buckets[name].last = tokens_left, last
            for name, bucket in self._buckets.items():
                headers.update(bucket.headers(name, waits.get(name, 0.0)))
            if waits:
                wait = max(waits.values())
                headers["retry-after"] = str(max(1, math.ceil(wait)))
                headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
                which = " and ".join(f"{n} per minute" for n in waits)
                return (
                    False,
                    headers,
                    f"Rate limit reached: {which}. Please retry after {fmt_duration(wait)}.",
                )
            cap = self.knobs.concurrency
            if cap and self.in_flight >= cap:
                headers["retry-after"] = "1"
                headers["retry-after-ms"] = "100"
                return False, headers, f"Too many concurrent requests (limit {cap})."
            self.in_flight += 1
            return True, headers, ""

    def release(self) -> None:
        with self.lock:
            self.in_flight -= 1

    # -- engines ----------------------------------------------------------------------------------

    def dispatch(self, url: str, body: dict[str, Any]) -> tuple[int, Any]:
        """Run one request against the engines without HTTP (used by batches)."""
        m = ROUTE_RE.match(urlparse(url).path or url)
        route = m.group(2) if m else url.strip("/")
        body = {**body, "stream": False}
        if route == "embeddings":
            return self.engines.embeddings(body)
        if route == "rerank":
            return self.engines.rerank(body)
        if route == "chat/completions":
            return self.engines.chat(body)
        if route == "responses":
            return self.engines.responses(body)
        return error(400, f"endpoint {url!r} is not supported in batches")


def request_tokens(route: str, body: Any) -> int:
    if not isinstance(body, dict):
        return 0
    if route == "embeddings":
        inp = body.get("input")
        items = [inp] if isinstance(inp, str) else inp if isinstance(inp, list) else []
        return sum(estimate_tokens(t) for t in items if isinstance(t, str))
    if route == "rerank":
        docs = [d for d in body.get("documents") or [] if isinstance(d, str)]
        return estimate_tokens(body.get("query") or "") * len(docs) + sum(estimate_tokens(d) for d in docs)
    if route == "chat/completions":
        return sum(
            estimate_tokens(content_text(m.get("content")))
            for m in body.get("messages") or []
            if isinstance(m, dict)
        )
    if route == "responses":
        inp = body.get("input")
        items = [{"content": inp}] if isinstance(inp, str) else inp if isinstance(inp, list) else []
        n = sum(estimate_tokens(content_text(m.get("content"))) for m in items if isinstance(m, dict))
        return n + estimate_tokens(body.get("instructions") or "")
    return 0
