"""Writes for accounts: creating and revoking API keys."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.keys import key_generate
from accounts.models import ApiKey
from accounts.permissions import SCOPES


def scopes_normalize(scopes: Iterable[str] | None, *, user) -> list[str]:
    """Validate and de-duplicate scope names; `admin` can only be given to a staff user's key."""
    result = list(dict.fromkeys(str(scope).strip() for scope in (scopes or []) if str(scope).strip()))
    unknown = [scope for scope in result if scope not in SCOPES]
    if unknown:
        raise ValidationError(f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(SCOPES)}.")
    if ApiKey.Scope.ADMIN in result and not user.is_staff:
        raise ValidationError("The 'admin' scope needs a staff user.")
    return result


@transaction.atomic
def api_key_create(
    *,
    user,
    name: str,
    scopes: Iterable[str] | None = None,
    collections: Iterable | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key for `user` and return (api_key, raw_key). The raw key exists only in this return value.

    `collections` (Collection objects or primary keys) narrows the key; passing an empty list narrows it
    to nothing, `None` leaves it reading whatever its user may read.
    """
    if not name or not name.strip():
        raise ValidationError("An API key needs a name.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("The expiry must be in the future.")
    raw_key, prefix, hashed = key_generate()
    api_key = ApiKey.objects.create(
        user=user,
        name=name.strip(),
        prefix=prefix,
        key_hash=hashed,
        scopes=scopes_normalize(scopes, user=user),
        collections_narrowed=collections is not None,
        expires_at=expires_at,
    )
    if collections is not None:
        api_key.collections.set(list(collections))
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Revoke now; revoking twice keeps the first revocation time."""
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=api_key.revoked_at)
    return api_key
