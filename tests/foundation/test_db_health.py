"""Django's per-request `SELECT 1` is skipped on a connection whose last statement just succeeded, and still
sent on one idle for longer or after an error (rag_project/postgresql/base.py)."""

from __future__ import annotations

import pytest
from django.core.signals import request_started
from django.db import ProgrammingError, close_old_connections, connection, connections

from rag_project.postgresql import base as citable_backend

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def checks(monkeypatch):
    """The health checks Django sends (each one is `is_usable`)."""
    sent: list[int] = []
    wrapper_class = type(connections["default"])
    is_usable = wrapper_class.is_usable

    def counted(self):
        sent.append(1)
        return is_usable(self)

    monkeypatch.setattr(wrapper_class, "is_usable", counted)
    # A kept connection, as in production (the test settings close it at every request).
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", None)
    connection.close()
    connection.ensure_connection()
    assert connection.close_at is None
    return sent


def _request_with_a_query() -> None:
    """What a request does to the connection: Django's start-of-request tidy (which asks for a check),
    then a statement."""
    request_started.send(sender=None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def test_a_connection_that_just_answered_is_not_checked(checks, settings):
    settings.RAG_DB_HEALTH_CHECK_AFTER_SECONDS = 60
    kept = connection.connection
    for _ in range(3):
        _request_with_a_query()
    assert checks == []
    assert connection.connection is kept


def test_a_connection_idle_for_longer_is_checked(checks, settings, monkeypatch):
    settings.RAG_DB_HEALTH_CHECK_AFTER_SECONDS = 2
    _request_with_a_query()
    later = citable_backend.time.monotonic() + 5
    monkeypatch.setattr(citable_backend.time, "monotonic", lambda: later)
    _request_with_a_query()
    assert checks == [1]


def test_after_an_error_the_connection_is_checked(checks, settings):
    settings.RAG_DB_HEALTH_CHECK_AFTER_SECONDS = 60
    _request_with_a_query()
    with pytest.raises(ProgrammingError), connection.cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM no_such_table")
    assert connection.errors_occurred
    close_old_connections()  # Django checks a connection that had errors here, and keeps it if usable
    assert checks == [1]
    assert connection.answered_recently()  # usable again: the check itself answered


def test_the_project_uses_this_backend():
    assert isinstance(connections["default"], citable_backend.DatabaseWrapper)


def test_zero_turns_the_skipping_off(checks, settings):
    settings.RAG_DB_HEALTH_CHECK_AFTER_SECONDS = 0
    _request_with_a_query()
    _request_with_a_query()
    assert len(checks) == 2
