"""The QueryLog row every search writes: one statement outside a transaction, every field stored with its
type, and a failure that neither fails the search nor breaks a caller's transaction."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from search import services
from search.models import QueryLog
from search.services import query_log_record
from search.types import SearchFilters
from tests.factories import ApiKeyFactory


def _fields(**overrides):
    return dict(
        kind=QueryLog.Kind.SEARCH, query="rotate keys", mode="hybrid", collection_ids=[3, 1],
        filters=SearchFilters.from_value({"metadata": {"team": "platform"}}), chunk_ids=[7, 5],
        reranked=True, rerank_tokens=1234, timings={"vector": 1.5, "total": 9.25}, latency_ms=9,
    ) | overrides  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_search_is_logged_in_one_statement_that_skips_the_wal_flush():
    key = ApiKeyFactory()
    sent: list[str] = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        entry = query_log_record(**_fields(user=key.user, api_key=key))
    assert len(sent) == 1, sent
    assert "set_config('synchronous_commit', 'off', true)" in sent[0]
    row = QueryLog.objects.get(pk=entry.pk)  # committed: another transaction reads it
    assert (row.kind, row.query, row.mode, row.user, row.api_key) == (
        "search", "rotate keys", "hybrid", key.user, key,
    )  # fmt: skip
    assert (row.collection_ids, row.chunk_ids) == ([3, 1], [7, 5])
    assert row.timings == {"vector": 1.5, "total": 9.25}
    assert row.filters == SearchFilters.from_value({"metadata": {"team": "platform"}}).as_dict()
    assert (row.reranked, row.rerank_tokens, row.latency_ms, row.error) == (True, 1234, 9, "")
    assert row.created_at is not None and entry.created_at == row.created_at
    # The setting was the statement's own: the connection is back to flushing its commits.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db(transaction=True)
def test_a_stream_row_is_completed_in_place():
    entry = query_log_record(kind=QueryLog.Kind.ASK, query="why?", streamed=True)
    again = query_log_record(entry=entry, kind=QueryLog.Kind.ASK, query="why?", streamed=True, model="m")
    assert again.pk == entry.pk
    assert QueryLog.objects.get().model == "m"


@pytest.mark.django_db
def test_a_failed_write_is_swallowed_and_the_callers_transaction_goes_on(monkeypatch, caplog):
    broken = ("INSERT INTO no_such_table VALUES (1)", [])
    monkeypatch.setattr(services, "_query_log_insert_sql", lambda: broken)
    with transaction.atomic():
        assert query_log_record(**_fields()) is None
        # Without the savepoint the failed INSERT would have aborted this transaction.
        assert QueryLog.objects.count() == 0
    assert "could not record the query log" in caplog.text
