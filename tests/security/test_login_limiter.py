"""The sign-in limiter: atomic under parallel attempts (real threads, real database), and keyed on the
real client address behind trusted proxies only."""

from __future__ import annotations

import threading
import time
from unittest import mock

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.db import connection
from django.test import RequestFactory

from rag_project.security import request_client_ip
from tests.factories import PASSWORD, UserFactory


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_passwords_are_not_all_checked(settings):
    settings.RAG_LOGIN_MAX_FAILURES = 5
    UserFactory(username="alice", password=PASSWORD)
    checked: list[str] = []
    real_check = User.check_password

    def slow_check(user, raw):
        checked.append(raw)
        time.sleep(0.3)  # every attempt is in flight at once, as with a real hasher under attack
        return real_check(user, raw)

    start = threading.Barrier(12)
    results: list[object] = []

    def attempt(n: int) -> None:
        try:
            start.wait()
            request = RequestFactory().post("/login/", REMOTE_ADDR="198.51.100.7")
            results.append(authenticate(request, username="alice", password=f"wrong{n}"))
        finally:
            connection.close()

    with mock.patch.object(User, "check_password", slow_check):
        threads = [threading.Thread(target=attempt, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert results == [None] * 12
    assert len(checked) == 5, f"{len(checked)} of 12 parallel attempts had their password checked"
    # And the right password is now refused from that address, without being checked.
    checked.clear()
    request = RequestFactory().post("/login/", REMOTE_ADDR="198.51.100.7")
    assert authenticate(request, username="alice", password=PASSWORD) is None
    request = RequestFactory().post("/login/", REMOTE_ADDR="198.51.100.8")
    assert authenticate(request, username="alice", password=PASSWORD) is not None


def _request(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().post("/login/", REMOTE_ADDR=remote, **extra)


def test_forwarded_for_is_ignored_without_trusted_proxies(settings):
    settings.RAG_TRUSTED_PROXIES = []
    assert request_client_ip(_request("203.0.113.9", "1.2.3.4")) == "203.0.113.9"


def test_forwarded_for_is_believed_only_from_trusted_proxies(settings):
    settings.RAG_TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.1"]
    # From a trusted proxy: the nearest untrusted hop, past any chain of trusted ones.
    assert request_client_ip(_request("10.1.2.3", "203.0.113.5")) == "203.0.113.5"
    assert request_client_ip(_request("10.1.2.3", "203.0.113.5, 192.0.2.1")) == "203.0.113.5"
    # Hops the client wrote itself (left of the real one) are not believed.
    assert request_client_ip(_request("10.1.2.3", "6.6.6.6, 203.0.113.5")) == "203.0.113.5"
    assert request_client_ip(_request("10.1.2.3", "203.0.113.5:4711")) == "203.0.113.5"
    assert request_client_ip(_request("10.1.2.3", "[2001:db8::1]:443")) == "2001:db8::1"
    # Garbage stops the walk at the last proxy; no header means the proxy itself.
    assert request_client_ip(_request("10.1.2.3", "not-an-ip")) == "10.1.2.3"
    assert request_client_ip(_request("10.1.2.3")) == "10.1.2.3"
    # From anyone else the header is ignored.
    assert request_client_ip(_request("203.0.113.9", "10.1.2.3")) == "203.0.113.9"


@pytest.mark.django_db
def test_clients_behind_a_trusted_proxy_have_their_own_counters(settings):
    settings.RAG_TRUSTED_PROXIES = ["10.0.0.1"]
    UserFactory(username="alice", password=PASSWORD)
    for _ in range(5):
        assert authenticate(_request("10.0.0.1", "203.0.113.5"), username="alice", password="x") is None
    assert authenticate(_request("10.0.0.1", "203.0.113.5"), username="alice", password=PASSWORD) is None
    # Another client behind the same proxy is not blocked by the first one's failures ...
    assert authenticate(_request("10.0.0.1", "203.0.113.6"), username="alice", password=PASSWORD)
    # ... and the first cannot escape by writing its own X-Forwarded-For.
    spoofed = _request("10.0.0.1", "198.51.100.1, 203.0.113.5")
    assert authenticate(spoofed, username="alice", password=PASSWORD) is None


@pytest.mark.django_db
def test_spoofed_forwarded_for_does_not_escape_the_limit_without_a_proxy(settings):
    settings.RAG_TRUSTED_PROXIES = []
    UserFactory(username="alice", password=PASSWORD)
    for n in range(5):
        request = _request("203.0.113.9", f"198.51.100.{n}")
        assert authenticate(request, username="alice", password="x") is None
    assert authenticate(_request("203.0.113.9", "198.51.100.77"), username="alice", password=PASSWORD) is None


@pytest.mark.django_db
def test_api_throttle_ignores_untrusted_forwarded_for(settings):
    from accounts.throttling import ApiKeyRateThrottle

    settings.RAG_TRUSTED_PROXIES = []
    throttle = ApiKeyRateThrottle()
    assert throttle.get_ident(_request("203.0.113.9", "1.2.3.4")) == "203.0.113.9"
    settings.RAG_TRUSTED_PROXIES = ["203.0.113.9"]
    assert throttle.get_ident(_request("203.0.113.9", "1.2.3.4")) == "1.2.3.4"
