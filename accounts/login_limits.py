"""Sign-in attempt counting per (username, client address) and per address, in the database.

After `RAG_LOGIN_MAX_FAILURES` failures (default 5) within `RAG_LOGIN_FAILURE_WINDOW_SECONDS` (default 900)
further attempts for that username from that address are refused, even with the right password, until
the window (counted from the first failure) passes. A second, wider limit per address
(`RAG_LOGIN_MAX_FAILURES_PER_IP`, default 50) slows password spraying across many usernames.

Each attempt is counted *before* its password is checked, by one atomic upsert per key, and uncounted
when the password was right or the attempt was refused: twelve parallel wrong passwords cannot all be
checked when the limit is five. The client address honours `RAG_TRUSTED_PROXIES`
(`rag_project.security.request_client_ip`). The authentication backend calls these, so every sign-in form
(the page, the admin) is covered.
"""

from __future__ import annotations

import hashlib
import random
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from accounts.models import LoginAttemptCount
from rag_project.security import request_client_ip

_TABLE = LoginAttemptCount._meta.db_table
# One statement: a new row, a row whose window has passed (starts again at 1), or one more attempt.
# PostgreSQL takes the row lock for ON CONFLICT DO UPDATE, so concurrent attempts get distinct counts.
_INCREMENT_SQL = f"""
INSERT INTO {_TABLE} (key, count, expires_at) VALUES (%(key)s, 1, %(expires)s)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN {_TABLE}.expires_at <= %(now)s THEN 1 ELSE {_TABLE}.count + 1 END,
    expires_at = CASE WHEN {_TABLE}.expires_at <= %(now)s THEN EXCLUDED.expires_at
                      ELSE {_TABLE}.expires_at END
RETURNING count
"""


def _limits() -> tuple[int, int, int]:
    return (
        int(getattr(settings, "RAG_LOGIN_MAX_FAILURES", 5)),
        int(getattr(settings, "RAG_LOGIN_MAX_FAILURES_PER_IP", 50)),
        int(getattr(settings, "RAG_LOGIN_FAILURE_WINDOW_SECONDS", 900)),
    )


def _keys(request, username: str | None) -> tuple[str, str]:
    ip = request_client_ip(request)
    name = (username or "").strip().casefold()
    digest = hashlib.sha256(f"{name}\x00{ip}".encode()).hexdigest()
    ip_digest = hashlib.sha256(ip.encode()).hexdigest()
    return f"user-ip:{digest}", f"ip:{ip_digest}"


def _increment(key: str, window: int) -> int:
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_INCREMENT_SQL, {"key": key, "now": now, "expires": now + timedelta(seconds=window)})
        return cursor.fetchone()[0]


def _decrement(*keys: str) -> None:
    LoginAttemptCount.objects.filter(key__in=keys, count__gt=0).update(count=F("count") - 1)


def login_is_blocked(request, username: str | None) -> bool:
    """Whether the next attempt would be refused (a read: the form's early, friendly refusal)."""
    max_failures, max_per_ip, _window = _limits()
    user_key, ip_key = _keys(request, username)
    counts = dict(
        LoginAttemptCount.objects.filter(
            key__in=[user_key, ip_key], expires_at__gt=timezone.now()
        ).values_list("key", "count")
    )
    return counts.get(user_key, 0) >= max_failures or counts.get(ip_key, 0) >= max_per_ip


def login_attempt_begin(request, username: str | None) -> bool:
    """Count an attempt before its password is checked; False means refuse it without checking.

    A refused attempt is uncounted again, so it neither extends the block nor eats the address's budget.
    """
    max_failures, max_per_ip, window = _limits()
    user_key, ip_key = _keys(request, username)
    if _increment(user_key, window) > max_failures:
        _decrement(user_key)
        return False
    if _increment(ip_key, window) > max_per_ip:
        _decrement(user_key, ip_key)
        return False
    if random.random() < 0.01:  # noqa: S311 - housekeeping, not security
        LoginAttemptCount.objects.filter(expires_at__lte=timezone.now()).delete()
    return True


def login_attempt_succeeded(request, username: str | None) -> None:
    """The password was right: the attempt begun for it was not a failure."""
    _decrement(*_keys(request, username))


def login_failures_reset(request, username: str | None) -> None:
    """A sign-in clears that username's count from that address (not the per-address count)."""
    if request is None:
        return
    user_key, _ip_key = _keys(request, username)
    LoginAttemptCount.objects.filter(key=user_key).delete()
