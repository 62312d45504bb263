"""Request-rate limits: DRF's ScopedRateThrottle, keyed on the API key (or the signed-in user, or the
client address), counted in a sliding window of constant size."""

from __future__ import annotations

import math

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from accounts.permissions import request_api_key
from rag_project.security import request_client_ip


class ApiKeyRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle with the three changes Citable needs, and nothing else:

    - one budget per API key (two keys of one user count separately), per user for sessions, per
      address otherwise (DRF's keys on the user, so a user's keys would share one budget);
    - a view whose `throttle_scope` has no rate falls back to the "api_key" rate, so every endpoint is
      limited (DRF lets an unscoped view through unthrottled); no rate configured at all: no limit;
    - rates are read per request (DRF copies them at import, so settings changes would not apply);
    - the count is a sliding-window counter, not DRF's log of every request's time. DRF reads and writes
      the whole log on every request: a key allowed 10,000 searches a minute and using them carried a
      list of ~4,000 timestamps (38 KB) through the cache twice per request, ~1.5 ms of CPU (BENCHMARKS.md,
      issue 14). Here the cache holds (window, previous window's count, this window's count), and the
      requests of the last `duration` are estimated as this window's count plus the previous window's,
      weighted by how much of it still lies within `duration` (the usual approximation; exact when
      requests are spread evenly, and never more than one window's count away from the log's).
    """

    default_scope = "api_key"

    @property
    def THROTTLE_RATES(self) -> dict:  # noqa: N802 - DRF's attribute name
        return api_settings.DEFAULT_THROTTLE_RATES or {}

    def allow_request(self, request, view) -> bool:
        scope = getattr(view, self.scope_attr, None)
        self.scope = scope if self.THROTTLE_RATES.get(scope) else self.default_scope
        self.rate = self.THROTTLE_RATES.get(self.scope)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = math.floor(self.now / self.duration)
        counts = self.cache.get(self.key, None)
        if not (isinstance(counts, tuple) and len(counts) == 3):  # none yet, or DRF's log of before
            counts = (window, 0, 0)
        stored, previous, current = counts
        if stored != window:
            previous, current = (current if stored == window - 1 else 0), 0
        self.counts = (window, previous, current)
        if self._estimate(self.now) >= self.num_requests:
            return self.throttle_failure()
        self.cache.set(self.key, (window, previous, current + 1), 2 * self.duration)
        return True

    def _estimate(self, now: float) -> float:
        """Requests within `duration` before `now`, estimated from the two windows' counts."""
        window, previous, current = self.counts
        into_window = now / self.duration - window  # 0 at the window's start, 1 at its end
        return previous * max(0.0, 1.0 - into_window) + current

    def wait(self) -> float | None:
        """Seconds until this key's next request would be allowed (the Retry-After of a 429)."""
        window, previous, current = self.counts
        start = window * self.duration
        if current >= self.num_requests:
            # Not before the next window; there, the whole of this window's count weighs at first.
            return start + self.duration * (2 - self.num_requests / current) - self.now
        # Within this window, once the previous window's weighted count has fallen far enough.
        return max(0.0, start + self.duration * (1 - (self.num_requests - current) / previous) - self.now)

    def get_ident(self, request):
        # DRF's own get_ident believes any X-Forwarded-For unless NUM_PROXIES is set: a client could pick
        # a fresh address per request. Only trusted proxies' headers count (RAG_TRUSTED_PROXIES).
        return request_client_ip(request)

    def get_cache_key(self, request, view) -> str:
        api_key = request_api_key(request)
        if api_key is not None:
            ident = f"key:{api_key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
