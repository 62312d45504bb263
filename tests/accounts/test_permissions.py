"""Scopes: a key can only narrow its user's rights; ingest needs the ingest scope or staff."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from accounts.permissions import user_has_scope
from tests.factories import ApiKeyFactory, UserFactory, bearer

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.urls")]

SCOPES = ("search", "ask", "ingest", "admin")


def allowed(client, headers) -> set[str]:
    result = set()
    for scope in SCOPES:
        response = client.post(f"/scoped/{scope}", **headers)
        assert response.status_code in (200, 403), response.content
        if response.status_code == 200:
            result.add(scope)
        else:
            assert response.json()["error"]["code"] == "forbidden"
    return result


@pytest.mark.parametrize(
    ("staff", "scopes", "expected"),
    [
        (False, ["search"], {"search"}),
        (False, ["search", "ask"], {"search", "ask"}),
        (False, ["ingest"], {"ingest"}),  # the explicit scope is enough, as the issue says
        (False, None, {"search", "ask"}),  # unscoped: the user's own rights, and plain users can't ingest
        (True, None, set(SCOPES)),
        (True, ["search"], {"search"}),
        (True, ["admin"], set(SCOPES)),  # admin implies every scope
    ],
)
def test_key_scopes(client, staff, scopes, expected):
    raw = ApiKeyFactory(user=UserFactory(is_staff=staff), scopes=scopes).raw_key
    assert allowed(client, bearer(raw)) == expected


def test_search_only_key_cannot_ask_or_ingest(client):
    raw = ApiKeyFactory(user=UserFactory(is_staff=True), scopes=["search"]).raw_key
    assert client.post("/scoped/ask", **bearer(raw)).status_code == 403
    assert client.post("/scoped/ingest", **bearer(raw)).status_code == 403
    assert client.post("/scoped/search", **bearer(raw)).status_code == 200


def test_session_users(client):
    client.force_login(UserFactory())
    assert allowed(client, {}) == {"search", "ask"}
    client.force_login(UserFactory(is_staff=True))
    assert allowed(client, {}) == set(SCOPES)


def test_anonymous_is_401(client):
    assert client.post("/scoped/search").status_code == 401


def test_admin_scope_refused_for_non_staff_users():
    with pytest.raises(ValidationError):
        ApiKeyFactory(scopes=["admin"])
    with pytest.raises(ValidationError):
        ApiKeyFactory(scopes=["search", "delete-everything"])


def test_key_of_a_user_demoted_from_staff_loses_staff_scopes():
    user = UserFactory(is_staff=True)
    api_key = ApiKeyFactory(user=user, scopes=["admin"])
    user.is_staff = False
    user.save()
    api_key.refresh_from_db()
    assert not user_has_scope(user, "admin", api_key)
    assert not user_has_scope(user, "ingest", api_key)


def test_unknown_scope_name_is_a_programming_error():
    with pytest.raises(ValueError):
        user_has_scope(UserFactory(), "serch")


@override_settings(
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "accounts.authentication.ApiKeyAuthentication",
            "rest_framework.authentication.SessionAuthentication",
        ],
        "EXCEPTION_HANDLER": "rag_project.api_errors.api_exception_handler",
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        "DEFAULT_THROTTLE_RATES": {"api_key": "3/min", "ask": "1/min"},
    }
)
def test_throttle_is_per_key_with_scoped_rates(client):
    user = UserFactory()
    raw1 = ApiKeyFactory(user=user, name="one").raw_key
    raw2 = ApiKeyFactory(user=user, name="two").raw_key
    codes = [client.get("/throttled", **bearer(raw1)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    body = client.get("/throttled", **bearer(raw1)).json()
    assert body["error"]["code"] == "throttled"
    # Another key of the same user has its own budget.
    assert client.get("/throttled", **bearer(raw2)).status_code == 200
    # A view naming a scope with its own rate uses it.
    assert [client.get("/throttled-ask", **bearer(raw2)).status_code for _ in range(2)] == [200, 429]


@override_settings(
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
        "DEFAULT_THROTTLE_RATES": {},
    }
)
def test_throttle_without_rates_is_off(client):
    raw = ApiKeyFactory().raw_key
    assert all(client.get("/throttled", **bearer(raw)).status_code == 200 for _ in range(5))
