"""The vector leg's hnsw.ef_search: scaled with the space's index size by default, fixed when configured."""

from __future__ import annotations

import pytest
from django.db import connection

from ingestion.services.spaces import space_index_name
from search.hnsw import EF_SEARCH_CEILING, EF_SEARCH_PER_100K, ef_search_for
from search.selectors import query_embed, vector_candidates
from search.types import SearchFilters
from tests.factories import CollectionFactory, DocumentFactory

pytestmark = pytest.mark.django_db


def _index_rows_pretend(space, rows: int) -> None:
    """What VACUUM/ANALYZE would record for an index of `rows` vectors (rolled back with the test)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pg_class SET reltuples = %s WHERE oid = to_regclass(%s)",
            [rows, space_index_name(space.pk)],
        )
        assert cursor.rowcount == 1


@pytest.mark.parametrize(
    ("rows", "limit", "expected"),
    [
        (0, 50, EF_SEARCH_PER_100K),  # a new, empty index: the floor
        (100_000, 50, 150),
        (150_000, 50, 225),
        (300_000, 50, 450),
        (1_000_000, 50, 800),  # capped at RAG_HNSW_EF_SEARCH_MAX
        (10_000, 500, 500),  # never below the rows asked for
        (10_000, 5000, EF_SEARCH_CEILING),  # nor above what pgvector accepts
    ],
)
def test_ef_search_scales_with_the_index(space, settings, rows, limit, expected):
    settings.RAG_HNSW_EF_SEARCH = 0
    settings.RAG_HNSW_EF_SEARCH_MAX = 800
    _index_rows_pretend(space, rows)
    assert ef_search_for(space, limit) == expected


def test_a_configured_ef_search_is_used_as_is(space, settings):
    settings.RAG_HNSW_EF_SEARCH = 120
    _index_rows_pretend(space, 1_000_000)
    assert ef_search_for(space, 50) == 120
    assert ef_search_for(space, 300) == 300


def test_the_search_sets_the_scaled_ef_search(space, settings):
    """The vector query runs with the value `ef_search_for` reports (set in the same statement as
    iterative_scan; inside the test's transaction the setting outlives the query, so it can be read)."""
    settings.RAG_HNSW_EF_SEARCH = 0
    settings.RAG_HNSW_EF_SEARCH_MAX = 800
    collection = CollectionFactory()
    DocumentFactory(
        collection=collection, passages=["Signing keys are rotated every ninety days."], space=space
    )
    _index_rows_pretend(space, 250_000)
    vector = query_embed("signing keys", space)
    hits = vector_candidates(vector, space, [collection.pk], SearchFilters(), 50)
    assert len(hits) == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan')")
        assert cursor.fetchone() == ("375", "relaxed_order")  # 250,000 x 150 / 100,000
