"""Request-rate limits keyed on the API key (or the signed-in user, or the client address)."""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.permissions import request_api_key


class ApiKeyRateThrottle(SimpleRateThrottle):
    """One budget per API key (each key of a user counts separately), per user for sessions, per IP otherwise.

    The rate is `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][view.throttle_scope]` when the view names a
    scope that has a rate (e.g. "ask", which costs model time), else the "api_key" rate. No rate
    configured means no limit. Rates are read at request time so settings overrides take effect.
    """

    default_scope = "api_key"

    def __init__(self):
        # SimpleRateThrottle resolves the rate in __init__ from a class attribute captured at import;
        # resolution is deferred to allow_request, where the view is known.
        pass

    def _resolve_scope(self, view) -> str:
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        view_scope = getattr(view, "throttle_scope", None)
        return view_scope if view_scope and rates.get(view_scope) else self.default_scope

    def allow_request(self, request, view):
        self.scope = self._resolve_scope(view)
        self.rate = (api_settings.DEFAULT_THROTTLE_RATES or {}).get(self.scope)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        api_key = request_api_key(request)
        if api_key is not None:
            ident = f"key:{api_key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
