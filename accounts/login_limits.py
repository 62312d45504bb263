"""Failed sign-in counting per (username, client address), kept in Django's cache.

After `RAG_LOGIN_MAX_FAILURES` failures (default 5) within `RAG_LOGIN_FAILURE_WINDOW_SECONDS` (default 900)
further attempts for that username from that address are refused, even with the right password, until
the window passes. A second, wider limit per address (`RAG_LOGIN_MAX_FAILURES_PER_IP`, default 50) slows
password spraying across many usernames. Failures are recorded from Django's `user_login_failed` signal,
so every sign-in form (the page, the admin) counts, once per attempt.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

CACHE_PREFIX = "citable:login-failures"


def _limits() -> tuple[int, int, int]:
    return (
        int(getattr(settings, "RAG_LOGIN_MAX_FAILURES", 5)),
        int(getattr(settings, "RAG_LOGIN_MAX_FAILURES_PER_IP", 50)),
        int(getattr(settings, "RAG_LOGIN_FAILURE_WINDOW_SECONDS", 900)),
    )


def request_client_ip(request) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it.
    return (getattr(request, "META", {}) or {}).get("REMOTE_ADDR", "") or "unknown"


def _keys(request, username: str | None) -> tuple[str, str]:
    ip = request_client_ip(request)
    name = (username or "").strip().casefold()
    digest = hashlib.sha256(f"{name}\x00{ip}".encode()).hexdigest()
    ip_digest = hashlib.sha256(ip.encode()).hexdigest()
    return f"{CACHE_PREFIX}:user-ip:{digest}", f"{CACHE_PREFIX}:ip:{ip_digest}"


def login_is_blocked(request, username: str | None) -> bool:
    max_failures, max_per_ip, _window = _limits()
    user_key, ip_key = _keys(request, username)
    counts = cache.get_many([user_key, ip_key])
    return counts.get(user_key, 0) >= max_failures or counts.get(ip_key, 0) >= max_per_ip


def login_failure_record(request, username: str | None) -> None:
    """Count one failed attempt. Attempts refused while blocked do not extend the block."""
    if request is None or login_is_blocked(request, username):
        return
    _max_failures, _max_per_ip, window = _limits()
    user_key, ip_key = _keys(request, username)
    counts = cache.get_many([user_key, ip_key])
    # get+set with an explicit timeout rather than incr: some backends' incr resets the expiry.
    cache.set_many({user_key: counts.get(user_key, 0) + 1, ip_key: counts.get(ip_key, 0) + 1}, window)


def login_failures_reset(request, username: str | None) -> None:
    """A successful sign-in clears that username's count from that address (not the per-address count)."""
    if request is None:
        return
    user_key, _ip_key = _keys(request, username)
    cache.delete(user_key)
