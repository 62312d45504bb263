"""Bearer API keys: every way a key can be wrong is the same 401 in the shared error shape."""

from __future__ import annotations

import hmac
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from accounts.authentication import api_key_authenticate
from accounts.models import ApiKey
from accounts.services import api_key_revoke
from tests.factories import ApiKeyFactory, CollectionFactory, UserFactory, bearer

pytestmark = pytest.mark.django_db


def assert_401(response):
    assert response.status_code == 401, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "authentication_failed"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert response["WWW-Authenticate"] == "Bearer"


def test_valid_key_acts_as_its_user(client):
    alice = UserFactory(username="alice")
    api_key = ApiKeyFactory(user=alice, scopes=["search"])
    raw = api_key.raw_key
    response = client.get("/api/me", **bearer(raw))
    assert response.status_code == 200, response.content
    assert response.json()["username"] == "alice"
    assert response.json()["api_key"] == api_key.prefix
    assert response.json()["scopes"] == ["search"]
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_keyword_is_case_insensitive(client):
    raw = ApiKeyFactory().raw_key
    assert client.get("/api/me", HTTP_AUTHORIZATION=f"bearer {raw}").status_code == 200


def test_wrong_secret(client):
    api_key = ApiKeyFactory()
    raw = api_key.raw_key
    wrong = f"cit_{api_key.prefix}_{'x' * 43}"
    assert wrong != raw
    assert_401(client.get("/api/me", **bearer(wrong)))


def test_unknown_prefix(client):
    assert_401(client.get("/api/me", **bearer("cit_0123456789ab_" + "y" * 43)))


@pytest.mark.parametrize("raw", ["not-a-key", "cit_", "cit_nounderscore", "cit__secret", "Bearer"])
def test_malformed_keys(client, raw):
    assert_401(client.get("/api/me", **bearer(raw)))


def test_empty_bearer(client):
    assert_401(client.get("/api/me", HTTP_AUTHORIZATION="Bearer "))


def test_revoked(client):
    api_key = ApiKeyFactory()
    raw = api_key.raw_key
    api_key_revoke(api_key=api_key)
    assert_401(client.get("/api/me", **bearer(raw)))


def test_expired(client):
    api_key = ApiKeyFactory()
    raw = api_key.raw_key
    ApiKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_401(client.get("/api/me", **bearer(raw)))


def test_not_yet_expired(client):
    raw = ApiKeyFactory(expires_at=timezone.now() + timedelta(days=1)).raw_key
    assert client.get("/api/me", **bearer(raw)).status_code == 200


def test_inactive_user(client):
    user = UserFactory()
    raw = ApiKeyFactory(user=user).raw_key
    user.is_active = False
    user.save()
    assert_401(client.get("/api/me", **bearer(raw)))


def test_no_credentials_is_401_not_403(client):
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_bad_key_does_not_fall_back_to_the_session(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get("/api/me").status_code == 200
    assert_401(client.get("/api/me", **bearer("cit_0123456789ab_wrong")))


def test_only_the_hash_is_stored():
    raw = ApiKeyFactory().raw_key
    row = ApiKey.objects.get()
    assert raw not in str(list(ApiKey.objects.values().get().values()))
    assert row.key_hash != raw and len(row.key_hash) == 64


@pytest.mark.parametrize("case", ["unknown_prefix", "wrong_secret", "malformed", "valid"])
def test_constant_time_compare_on_every_path(case):
    """Every lookup, including an unknown prefix, ends in one hmac.compare_digest call."""
    api_key = ApiKeyFactory()
    raw = api_key.raw_key
    candidate = {
        "unknown_prefix": "cit_0123456789ab_" + "z" * 43,
        "wrong_secret": f"cit_{api_key.prefix}_" + "z" * 43,
        "malformed": "garbage",
        "valid": raw,
    }[case]
    with mock.patch("accounts.keys.hmac.compare_digest", wraps=hmac.compare_digest) as compare:
        result = api_key_authenticate(candidate)
    assert compare.call_count == 1
    assert (result == api_key) if case == "valid" else (result is None)


def test_me_lists_readable_collections_for_a_narrowed_key(client):
    user = UserFactory()
    public = CollectionFactory(slug="public", is_public=True)
    CollectionFactory(slug="other", is_public=True)
    raw = ApiKeyFactory(user=user, collections=[public]).raw_key
    assert [c["slug"] for c in client.get("/api/me", **bearer(raw)).json()["collections"]] == ["public"]
