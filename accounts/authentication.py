"""DRF authentication by `Authorization: Bearer <key>`; `request.auth` is the ApiKey."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.keys import key_hash, key_matches, key_prefix
from accounts.models import ApiKey
from rag_project.compiled_sql import (
    STAND_IN_PREFIX,
    instances_from_row,
    params_bound,
    queryset_compiled,
    rows_fetch,
)

# Compared against when no row matches, so an unknown prefix costs the same as a wrong secret.
_DUMMY_HASH = key_hash("cit_000000000000_dummy")


def api_key_with_user(prefix: str) -> ApiKey | None:
    """The key with this prefix (unique) and its user, in one statement compiled once per process."""
    sql, params = queryset_compiled(
        "api_key_with_user", lambda: ApiKey.objects.select_related("user").filter(prefix=STAND_IN_PREFIX)[:1]
    )
    rows = rows_fetch(sql, params_bound(params, {STAND_IN_PREFIX: prefix}))
    if not rows:
        return None
    api_key, user = instances_from_row(rows[0], ApiKey, get_user_model())
    api_key.user = user
    return api_key


def api_key_authenticate(raw_key: str) -> ApiKey | None:
    prefix = key_prefix(raw_key)
    api_key = api_key_with_user(prefix) if prefix else None
    if not key_matches(raw_key, api_key.key_hash if api_key else _DUMMY_HASH) or api_key is None:
        return None
    now = timezone.now()
    if api_key.revoked_at is not None or (api_key.expires_at and api_key.expires_at <= now):
        return None
    if not api_key.user.is_active:
        return None
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, raw_key = header.partition(" ")
        if keyword.lower() != self.keyword.lower():
            return None
        raw_key = raw_key.strip()
        if not raw_key:
            raise exceptions.AuthenticationFailed("Empty API key.")
        api_key = api_key_authenticate(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        return (api_key.user, api_key)

    def authenticate_header(self, request):
        return self.keyword
