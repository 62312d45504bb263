"""The database cache (rag_project/cache.py): Django's semantics, one upsert per `set`, the table counted
and culled on one set in CULL_EVERY."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

import rag_project.cache
from rag_project.cache import DatabaseCache

pytestmark = pytest.mark.django_db


@pytest.fixture
def cache():
    backend = caches["default"]
    assert isinstance(backend, DatabaseCache)
    # The thread's instance serves later tests too: what a test changes on it is put back.
    kept = (backend._cull_every, backend._max_entries, dict(rag_project.cache._sets_since_count))
    backend.clear()
    yield backend
    backend.clear()
    backend._cull_every, backend._max_entries = kept[0], kept[1]
    rag_project.cache._sets_since_count.clear()
    rag_project.cache._sets_since_count.update(kept[2])


def test_set_get_add_touch_delete_keep_djangos_semantics(cache):
    cache.set("a", {"n": 1}, 60)
    assert cache.get("a") == {"n": 1}
    cache.set("a", [1, 2, 3], 60)  # an existing key is overwritten
    assert cache.get("a") == [1, 2, 3]
    assert cache.add("a", "other") is False and cache.get("a") == [1, 2, 3]
    assert cache.add("b", "new") is True and cache.get("b") == "new"
    assert cache.touch("a", 120) is True and cache.touch("missing") is False
    cache.set("gone", 1, -1)  # already expired
    assert cache.get("gone") is None
    cache.set("forever", 1, None)
    assert cache.get("forever") == 1
    cache.delete("a")
    assert cache.get("a") is None


def test_a_set_is_one_statement_and_the_table_is_counted_now_and_then(cache):
    cache._cull_every = 3
    rag_project.cache._sets_since_count[cache._table] = 1  # not due
    with CaptureQueriesContext(connection) as queries:
        cache.set("k", 1, 60)
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1 and "ON CONFLICT" in statements[0]
    with CaptureQueriesContext(connection) as queries:
        cache.set("k", 2, 60)
        cache.set("k", 3, 60)  # the third set since the last count: due
    assert sum("COUNT(*)" in q["sql"] for q in queries.captured_queries) == 1
    assert cache.get("k") == 3


def test_over_max_entries_a_due_set_culls_as_django_does(cache):
    cache._max_entries = 4
    cache._cull_every = 1
    for i in range(10):
        cache.set(f"key{i}", i, 60)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(cache._table)}")
        (rows,) = cursor.fetchone()
    assert rows <= 5  # culled to a fraction once over 4, then the new row
    assert cache.get("key9") == 9
