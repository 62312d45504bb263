"""Fixtures for the genapi tests: a stand-in over a real socket and clients whose every request body is
checked against the provider contract. Django-free."""

from __future__ import annotations

import threading

import pytest

from genapi import GenAPIClient, GenAPIConfig
from genapi.testing import local_server
from genapi.usage import add_usage_hook, remove_usage_hook
from tests.genapi.contract import validate_request


@pytest.fixture(scope="session")
def standin_server():
    with local_server() as server:
        yield server


@pytest.fixture
def standin(standin_server):
    """The session's stand-in, with default knobs and zeroed counters for this test."""
    standin_server.reset_knobs()
    standin_server.reset_stats()
    yield standin_server
    standin_server.reset_knobs()


class Capture:
    """Every request a client sends, as (method, path, content type, body bytes)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str, bytes]] = []
        self._lock = threading.Lock()

    def hook(self, request) -> None:
        content = request.read()
        with self._lock:
            self.requests.append(
                (request.method, request.url.path, request.headers.get("content-type", ""), content)
            )

    def violations(self) -> list[str]:
        problems = []
        for method, path, ctype, content in self.requests:
            problems.extend(validate_request(method, path, ctype, content))
        return problems


class Sleeps(list):
    """Injectable sleep: records each wait and really waits (so server-side timing stays honest)."""

    def __call__(self, seconds: float) -> None:
        import time

        self.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def capture():
    cap = Capture()
    yield cap
    problems = cap.violations()
    assert not problems, "request bodies that break the provider contract:\n" + "\n".join(problems)


@pytest.fixture
def make_client(standin, capture):
    """Build clients against the stand-in; each request body is validated against the contract at teardown."""
    made: list[GenAPIClient] = []

    def factory(base_url: str | None = None, *, sleep=None, **overrides) -> GenAPIClient:
        values = dict(
            base_url=base_url or standin.base_url, api_key="test-key", max_retries=3, backoff_base=0.01
        )
        values.update(overrides)
        client = GenAPIClient(GenAPIConfig(**values), sleep=sleep, event_hooks={"request": [capture.hook]})
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def usage_records():
    records = []
    add_usage_hook(records.append)
    yield records
    remove_usage_hook(records.append)
