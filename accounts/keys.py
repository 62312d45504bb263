"""API key format, hashing and constant-time verification.

A key looks like `cit_<prefix>_<secret>`. Only the SHA-256 of the whole key is stored; the prefix
finds the row, and the hash comparison uses `hmac.compare_digest` so timing reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "cit_"


def key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def key_generate() -> tuple[str, str, str]:
    """Return (raw_key, prefix, hash). The raw key is shown once and never stored."""
    prefix = secrets.token_hex(6)
    raw_key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return raw_key, prefix, key_hash(raw_key)


def key_prefix(raw_key: str) -> str | None:
    if not raw_key.startswith(KEY_PREFIX):
        return None
    prefix, sep, _secret = raw_key[len(KEY_PREFIX) :].partition("_")
    return prefix if sep and prefix else None


def key_matches(raw_key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(key_hash(raw_key), stored_hash)
