"""Scope checks. A request acts as its user; an API key can only narrow what that user may do.

Rights of a caller for each scope:
- `search`, `ask`: any active signed-in user (what they can read is decided by the collection selector);
- `ingest`: staff, or an API key that names the `ingest` (or `admin`) scope explicitly;
- `admin`: staff only, and, through a key, a key that names `admin`.
A key with no scopes has its user's rights; a key with scopes has only those (and `admin` implies all).
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from accounts.models import ApiKey

SCOPES = tuple(ApiKey.Scope.values)
STAFF_SCOPES = frozenset({ApiKey.Scope.INGEST, ApiKey.Scope.ADMIN})


def request_api_key(request) -> ApiKey | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiKey) else None


def api_key_has_scope(api_key: ApiKey, scope: str) -> bool:
    """What the key itself grants, before the user's own rights are considered."""
    if scope not in SCOPES:
        raise ValueError(f"Unknown scope {scope!r}; expected one of {', '.join(SCOPES)}.")
    scopes = set(api_key.scopes or [])
    if not scopes:
        return True
    if ApiKey.Scope.ADMIN in scopes and api_key.user.is_staff:
        return True
    return scope in scopes


def user_has_scope(user, scope: str, api_key: ApiKey | None = None) -> bool:
    if scope not in SCOPES:
        raise ValueError(f"Unknown scope {scope!r}; expected one of {', '.join(SCOPES)}.")
    if not (user is not None and user.is_authenticated and user.is_active):
        return False
    if api_key is None:
        return scope not in STAFF_SCOPES or user.is_staff
    if not api_key_has_scope(api_key, scope):
        return False
    explicit = set(api_key.scopes or [])
    if scope == ApiKey.Scope.ADMIN:
        return user.is_staff
    if scope == ApiKey.Scope.INGEST:
        # The rule: the explicit `ingest` scope is enough; an unscoped key needs a staff user.
        return user.is_staff or bool(explicit & STAFF_SCOPES)
    return True


def request_has_scope(request, scope: str) -> bool:
    return user_has_scope(getattr(request, "user", None), scope, request_api_key(request))


def scope_required(scope: str) -> type[BasePermission]:
    """A DRF permission class: the caller is signed in and has `scope` (see the module docstring)."""
    if scope not in SCOPES:
        raise ValueError(f"Unknown scope {scope!r}; expected one of {', '.join(SCOPES)}.")

    class ScopeRequired(BasePermission):
        message = (
            f"This API key lacks the '{scope}' scope."
            if scope not in STAFF_SCOPES
            else f"This action needs the '{scope}' scope or a staff account."
        )

        def has_permission(self, request, view):
            return request_has_scope(request, scope)

    ScopeRequired.__name__ = f"ScopeRequired_{scope}"
    ScopeRequired.__qualname__ = ScopeRequired.__name__
    return ScopeRequired


def request_can_ingest(request) -> bool:
    """Writing documents needs the `ingest` scope or a staff account."""
    return request_has_scope(request, ApiKey.Scope.INGEST)
