"""Sign-in attempts are limited per username and client address, in every sign-in form."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.test import RequestFactory

from accounts.forms import RateLimitedAuthenticationForm
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


def form_for(username, password, ip="10.0.0.1"):
    request = RequestFactory().post("/login/", REMOTE_ADDR=ip)
    request.session = {}
    return RateLimitedAuthenticationForm(request, data={"username": username, "password": password})


def test_sixth_attempt_refused_even_with_the_right_password():
    UserFactory(username="alice", password=PASSWORD)
    assert form_for("alice", PASSWORD).is_valid()
    for _ in range(5):
        form = form_for("alice", "wrong")
        assert not form.is_valid()
        assert "too_many_attempts" not in str(form.errors.as_data())
    form = form_for("alice", PASSWORD)
    assert not form.is_valid()
    assert form.errors.as_data()["__all__"][0].code == "too_many_attempts"
    # Another address, or another username, is not blocked by alice's failures.
    assert form_for("alice", PASSWORD, ip="10.0.0.2").is_valid()
    UserFactory(username="bob", password=PASSWORD)
    assert form_for("bob", PASSWORD).is_valid()


def test_success_resets_the_count():
    UserFactory(username="alice", password=PASSWORD)
    for _ in range(4):
        assert not form_for("alice", "wrong").is_valid()
    from django.contrib.auth import login

    form = form_for("alice", PASSWORD)
    assert form.is_valid()
    request = form.request
    from django.contrib.sessions.backends.db import SessionStore

    request.session = SessionStore()
    login(request, form.get_user())
    for _ in range(4):
        assert not form_for("alice", "wrong").is_valid()
    assert form_for("alice", PASSWORD).is_valid()


def test_username_case_does_not_escape_the_limit():
    UserFactory(username="alice", password=PASSWORD)
    for name in ("alice", "ALICE", "Alice", "aLiCe", "alicE"):
        assert not form_for(name, "wrong").is_valid()
    assert not form_for("alice", PASSWORD).is_valid()


def test_backend_blocks_every_sign_in_path(settings):
    settings.AUTHENTICATION_BACKENDS = ["accounts.backends.RateLimitedModelBackend"]
    UserFactory(username="alice", password=PASSWORD)
    request = RequestFactory().post("/", REMOTE_ADDR="10.0.0.9")
    for _ in range(5):
        assert authenticate(request, username="alice", password="wrong") is None
    assert authenticate(request, username="alice", password=PASSWORD) is None


def test_admin_login_is_limited(client):
    UserFactory(username="root", password=PASSWORD, is_staff=True, is_superuser=True)
    for _ in range(5):
        response = client.post("/admin/login/", {"username": "root", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_page_login_is_limited(client):
    UserFactory(username="alice", password=PASSWORD)
    for _ in range(5):
        response = client.post("/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, "a blocked sign-in must not redirect"
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
