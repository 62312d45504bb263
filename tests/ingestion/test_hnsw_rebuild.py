"""`manage.py hnsw_rebuild`: the active space's graph built again with the current parameters, in place."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from ingestion.models import EmbeddingSpace
from ingestion.services.documents import document_create
from ingestion.services.errors import EmbeddingSpaceError
from ingestion.services.pipeline import document_ingest
from ingestion.services.spaces import embedding_space_index_rebuild
from search.selectors import vector_candidates_sql
from search.types import SearchFilters

TEXT = "# Pumps\n\nPumps move water. They need priming.\n\n# Valves\n\nValves stop water."


def space_indexes(space: EmbeddingSpace) -> dict[str, str]:
    """Every HNSW index on the space's rows: name -> definition."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ingestion_chunkembedding' "
            "AND indexdef ILIKE %s AND indexdef ILIKE %s",
            ["%hnsw%", f"%space_id = {space.pk})%"],
        )
        return dict(cursor.fetchall())


def vector_plan(space: EmbeddingSpace, collection_ids: list[int]) -> str:
    sql, params = vector_candidates_sql([0.1] * space.dimensions, space, collection_ids, SearchFilters(), 5)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table is cheaper to scan whole
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db(transaction=True)  # CREATE INDEX CONCURRENTLY refuses a transaction
def test_the_graph_is_built_again_with_the_current_parameters_under_the_same_name(
    genapi, collection, settings
):
    settings.RAG_HNSW_M, settings.RAG_HNSW_EF_CONSTRUCTION = 16, 64
    document, _ = document_create(collection=collection, title="Pumps", text=TEXT)
    document_ingest(document.pk)
    space = EmbeddingSpace.objects.get(is_active=True)
    name = f"ingestion_chunkembedding_space_{space.pk}_hnsw"
    before = space_indexes(space)
    assert list(before) == [name] and "m='16'" in before[name], before
    # An earlier rebuild interrupted before its swap left its half-built index behind.
    with connection.cursor() as cursor:
        cursor.execute(before[name].replace(name, f"{name}_rebuild"))

    settings.RAG_HNSW_M, settings.RAG_HNSW_EF_CONSTRUCTION = 24, 128
    out = StringIO()
    call_command("hnsw_rebuild", "--memory", "64MB", "--workers", "0", stdout=out)

    after = space_indexes(space)
    assert list(after) == [name], after  # one graph, the old name, no leftover
    assert "m='24'" in after[name] and "ef_construction='128'" in after[name], after
    assert "m 24, ef_construction 128" in out.getvalue() and "Rebuilt in" in out.getvalue()
    assert f"Index Scan using {name}" in vector_plan(space, [collection.pk])
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [name])
        assert cursor.fetchone()[0] == space.embeddings.count()  # what search.hnsw scales ef_search by


@pytest.mark.django_db
def test_a_rebuild_inside_a_transaction_is_refused_with_a_reason(genapi, collection):
    document, _ = document_create(collection=collection, title="Pumps", text=TEXT)
    document_ingest(document.pk)
    space = EmbeddingSpace.objects.get(is_active=True)
    with pytest.raises(EmbeddingSpaceError, match="outside a transaction"):
        embedding_space_index_rebuild(space)


@pytest.mark.django_db
def test_without_an_active_space_the_command_says_there_is_nothing_to_rebuild():
    with pytest.raises(CommandError, match="no active embedding space"):
        call_command("hnsw_rebuild", stdout=StringIO())


def index_oid(name: str) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)::oid", [name])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_graph_built_but_not_swapped_in_is_swapped_in_by_the_next_run_not_built_again(
    genapi, collection, settings
):
    """The swap waits for the table's lock; a table kept busy past the timeout fails the run with a reason,
    and the next run swaps the finished graph in at once."""
    document, _ = document_create(collection=collection, title="Pumps", text=TEXT)
    document_ingest(document.pk)
    space = EmbeddingSpace.objects.get(is_active=True)
    name = f"ingestion_chunkembedding_space_{space.pk}_hnsw"
    settings.RAG_HNSW_M, settings.RAG_HNSW_EF_CONSTRUCTION = 20, 80

    locked, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:
        # A long query elsewhere: its lock keeps DROP INDEX (which needs the table alone) waiting.
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("LOCK TABLE ingestion_chunkembedding IN ACCESS SHARE MODE")
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_table)
    holder.start()
    try:
        assert locked.wait(10)
        with pytest.raises(EmbeddingSpaceError, match="Run the rebuild again"):
            embedding_space_index_rebuild(space, lock_timeout_s=0.3)
    finally:
        release.set()
        holder.join()
    built = index_oid(f"{name}_rebuild")
    assert built is not None and "m='24'" in space_indexes(space)[name]  # the old graph still serves

    embedding_space_index_rebuild(space)
    assert index_oid(name) == built  # the finished graph, renamed, not a new build
    assert list(space_indexes(space)) == [name] and "m='20'" in space_indexes(space)[name]


@pytest.mark.django_db(transaction=True)
def test_a_memory_setting_postgresql_refuses_is_reported_before_anything_is_built(genapi, collection):
    document, _ = document_create(collection=collection, title="Pumps", text=TEXT)
    document_ingest(document.pk)
    space = EmbeddingSpace.objects.get(is_active=True)
    before = space_indexes(space)
    with pytest.raises(CommandError, match="--memory 'lots'"):
        call_command("hnsw_rebuild", "--memory", "lots", stdout=StringIO())
    assert space_indexes(space) == before
