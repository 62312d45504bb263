"""Request-rate limits: DRF's ScopedRateThrottle, keyed on the API key (or the signed-in user, or the
client address)."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from accounts.permissions import request_api_key
from rag_project.security import request_client_ip


class ApiKeyRateThrottle(ScopedRateThrottle):
    """ScopedRateThrottle with the three changes Citable needs, and nothing else:

    - one budget per API key (two keys of one user count separately), per user for sessions, per
      address otherwise (DRF's keys on the user, so a user's keys would share one budget);
    - a view whose `throttle_scope` has no rate falls back to the "api_key" rate, so every endpoint is
      limited (DRF lets an unscoped view through unthrottled); no rate configured at all: no limit;
    - rates are read per request (DRF copies them at import, so settings changes would not apply).
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
        # SimpleRateThrottle's check (no rate: allowed); ScopedRateThrottle's own would redo the lookup.
        return SimpleRateThrottle.allow_request(self, request, view)

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
