"""The statements every search sends are prepared on the server once per connection (rag_project/
compiled_sql.py), the vector leg's with a plan made for its own filters each time, and nothing is prepared
when RAG_DB_PREPARED_STATEMENTS is off."""

from __future__ import annotations

import pytest
from django.db import connection

from rag_project.compiled_sql import prepared_cursor
from search.services import passages_search
from tests.factories import ApiKeyFactory, CollectionFactory, DocumentFactory

pytestmark = pytest.mark.django_db


def _prepared() -> dict[str, tuple[int, int]]:
    """The connection's prepared statements by their first words: (generic plans, custom plans)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {" ".join(sql.split())[:40]: (generic, custom) for sql, generic, custom in cursor.fetchall()}


@pytest.fixture
def clean_connection():
    """No statements prepared by earlier tests on this connection."""
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    connection.connection._prepared.clear()  # psycopg's own record of them
    yield


def test_a_search_prepares_its_statements_and_reuses_them(space, clean_connection):
    collection = CollectionFactory(is_public=True)
    text = "Signing keys are rotated every ninety days."
    DocumentFactory(collection=collection, passages=[text], space=space)
    key = ApiKeyFactory()
    for _ in range(7):
        result = passages_search(
            "rotate signing keys", collection_ids=[collection.pk], rerank=False, user=key.user, api_key=key
        )
        assert [p.text for p in result.passages] == [text]
    prepared = _prepared()
    fulltext = next(v for k, v in prepared.items() if k.startswith("WITH st(lexeme, docs, tokens)"))
    vector = next(v for k, v in prepared.items() if k.startswith("WITH hits AS MATERIALIZED"))
    passages = next(v for k, v in prepared.items() if k.startswith("WITH q AS ( SELECT (SELECT COALESCE"))
    log = next(v for k, v in prepared.items() if k.startswith('INSERT INTO "search_querylog"'))
    # Prepared once, run seven times (a plan per run, generic or custom).
    assert sum(fulltext) == sum(passages) == sum(log) == 7
    # The vector leg never runs a generic plan (plan_cache_mode=force_custom_plan in its settings): a plan
    # for one filter (the HNSW walk) must not be reused for a filter where reading every row is exact.
    assert vector == (0, 7)


def test_the_compiled_lookups_are_prepared_too(clean_connection):
    from accounts.authentication import api_key_authenticate
    from ingestion.selectors import collection_ids_get_readable_or_403

    key = ApiKeyFactory()
    for _ in range(3):
        assert api_key_authenticate(key.raw_key) == key
        collection_ids_get_readable_or_403(None, key.user, key)
    runs = {name: sum(plans) for name, plans in _prepared().items()}
    assert sum(n for name, n in runs.items() if '"accounts_apikey"' in name) == 3
    assert sum(n for name, n in runs.items() if '"ingestion_collection"' in name) == 3


def test_nothing_is_prepared_when_turned_off(clean_connection):
    """RAG_DB_PREPARED_STATEMENTS=0 leaves the connection without a prepare threshold (settings.py)."""
    connection.connection.prepare_threshold = None
    try:
        for _ in range(3):
            with prepared_cursor() as cursor:
                cursor.execute("SELECT %s::int + 1", [41])
                assert cursor.fetchone() == (42,)
        assert _prepared() == {}
    finally:
        connection.connection.prepare_threshold = connection.settings_dict["OPTIONS"]["prepare_threshold"]


def test_the_threshold_follows_the_setting():
    from django.conf import settings

    assert settings.RAG_DB_PREPARED_STATEMENTS is True
    assert settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"] == 2**31 - 1
