"""Creating and revoking keys: the service, `manage.py create_api_key`, and the admin."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.authentication import api_key_authenticate
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke
from tests.factories import ApiKeyFactory, CollectionFactory, UserFactory, bearer

pytestmark = pytest.mark.django_db

KEY_RE = re.compile(r"^cit_[0-9a-f]{12}_[A-Za-z0-9_\-]{40,}$")


def test_service_create_and_revoke():
    user = UserFactory()
    api_key, raw = api_key_create(user=user, name="bot", scopes=["search", "search", "ask"])
    assert KEY_RE.match(raw)
    assert api_key.scopes == ["search", "ask"]
    assert not api_key.collections_narrowed
    assert api_key_authenticate(raw) == api_key
    first = api_key_revoke(api_key=api_key).revoked_at
    assert api_key_revoke(api_key=api_key).revoked_at == first
    assert api_key_authenticate(raw) is None


def test_command_prints_the_key_once_on_its_last_line(client):
    user = UserFactory(username="svc")
    CollectionFactory(slug="public", is_public=True)
    CollectionFactory(slug="hr", reader_users=[user])
    out = StringIO()
    call_command(
        "create_api_key",
        "svc",
        "--name",
        "wiki bot",
        "--scopes",
        "search,ask",
        "--collections",
        "hr,public",
        stdout=out,
    )
    lines = out.getvalue().rstrip("\n").splitlines()
    raw = lines[-1]
    assert KEY_RE.match(raw)
    assert sum(raw in line for line in lines) == 1
    api_key = ApiKey.objects.get()
    assert api_key.name == "wiki bot" and api_key.user == user and api_key.scopes == ["search", "ask"]
    assert sorted(api_key.collections.values_list("slug", flat=True)) == ["hr", "public"]
    assert api_key.prefix in out.getvalue()
    response = client.get("/api/me", **bearer(raw))
    assert response.status_code == 200
    assert {c["slug"] for c in response.json()["collections"]} == {"hr", "public"}


def test_command_defaults_and_expiry():
    UserFactory(username="svc")
    out = StringIO()
    call_command("create_api_key", "svc", "--name", "all", "--expires-days", "30", stdout=out)
    api_key = ApiKey.objects.get()
    assert api_key.scopes == [] and not api_key.collections_narrowed and api_key.expires_at is not None
    assert KEY_RE.match(out.getvalue().splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        ["ghost", "--name", "x"],
        ["svc", "--name", "x", "--scopes", "search,teleport"],
        ["svc", "--name", "x", "--collections", "nope"],
        ["svc", "--name", "x", "--scopes", "admin"],  # svc is not staff
        ["svc", "--name", "  "],
    ],
)
def test_command_errors(argv):
    UserFactory(username="svc")
    with pytest.raises(CommandError):
        call_command("create_api_key", *argv, stdout=StringIO())
    assert ApiKey.objects.count() == 0


def test_admin_create_shows_the_key_once_and_lists_and_revokes(client):
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    owner = UserFactory(username="owner")
    hr = CollectionFactory(slug="hr", reader_users=[owner])
    client.force_login(root)
    response = client.post(
        "/admin/accounts/apikey/add/",
        {"user": owner.pk, "name": "from admin", "scopes": ["search"], "collections": [hr.pk]},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    api_key = ApiKey.objects.get()
    assert api_key.user == owner and api_key.scopes == ["search"] and api_key.collections_narrowed
    assert list(api_key.collections.all()) == [hr]
    # The redirect target shows the key in a message, once.
    shown = client.get(response.url).content.decode()
    raw = re.search(r"cit_[0-9a-f]{12}_[A-Za-z0-9_\-]+", shown).group(0)
    assert api_key_authenticate(raw) == api_key

    listing = client.get("/admin/accounts/apikey/").content.decode()
    assert api_key.prefix in listing and "owner" in listing and "hr" in listing
    assert raw not in listing
    change = client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()
    assert raw not in change and api_key.key_hash not in change

    client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke", "_selected_action": [api_key.pk]},
    )
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert api_key_authenticate(raw) is None


def test_admin_staff_cannot_mint_keys_for_others(client):
    from django.contrib.auth.models import Permission

    staff = UserFactory(username="staff", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__endswith="_apikey"))
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    someone_elses = ApiKeyFactory(user=root, name="root key")
    client.force_login(staff)
    response = client.post("/admin/accounts/apikey/add/", {"user": root.pk, "name": "escalate"})
    assert response.status_code == 200  # the form refuses the choice
    assert not ApiKey.objects.filter(name="escalate").exists()
    assert client.get(f"/admin/accounts/apikey/{someone_elses.pk}/change/").status_code in (302, 404)
    assert "root key" not in client.get("/admin/accounts/apikey/").content.decode()
    assert client.post("/admin/accounts/apikey/add/", {"user": staff.pk, "name": "mine"}).status_code == 302
