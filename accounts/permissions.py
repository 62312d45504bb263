"""Scope checks for API keys. Session users (people) have every scope their account allows."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from accounts.models import ApiKey


def request_has_scope(request, scope: str) -> bool:
    api_key = request.auth if isinstance(request.auth, ApiKey) else None
    if api_key is None:
        return True
    return not api_key.scopes or scope in api_key.scopes


def scope_required(scope: str) -> type[BasePermission]:
    """A DRF permission class requiring `scope` on the API key (if the caller used one)."""

    class ScopeRequired(BasePermission):
        message = f"This API key lacks the '{scope}' scope."

        def has_permission(self, request, view):
            return bool(request.user and request.user.is_authenticated) and request_has_scope(request, scope)

    ScopeRequired.__name__ = f"ScopeRequired_{scope}"
    return ScopeRequired


def request_can_ingest(request) -> bool:
    """Writing documents needs the `ingest` scope or a staff account."""
    user = request.user
    if not (user and user.is_authenticated):
        return False
    api_key = request.auth if isinstance(request.auth, ApiKey) else None
    if api_key is not None:
        return (not api_key.scopes and user.is_staff) or "ingest" in api_key.scopes or "admin" in api_key.scopes
    return user.is_staff
