"""Retrieval against the real PostgreSQL + pgvector and the stand-in's embeddings and reranker."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.utils import timezone

from ingestion.models import Chunk
from search.fusion import RRF_WEIGHT_FULLTEXT, RRF_WEIGHT_VECTOR, rrf_fuse
from search.selectors import (
    embedding_space_active,
    passage_with_neighbours,
    passages_retrieve,
    query_embed,
    vector_candidates,
    vector_candidates_sql,
)
from search.types import SearchFilters
from tests.factories import CollectionFactory, DocumentFactory, active_space

pytestmark = pytest.mark.django_db


def _chunk(document, ordinal: int) -> Chunk:
    return document.chunks.get(ordinal=ordinal)


@pytest.mark.parametrize("mode", ["vector", "fulltext", "hybrid"])
def test_each_mode_finds_the_planted_passage(kb, mode):
    result = passages_retrieve(
        "how do I rotate a signing key", collection_ids=[kb["public"].pk], mode=mode, top_k=3, rerank=False
    )
    planted = _chunk(kb["keys"], 1)
    assert result.mode == mode
    assert planted.pk in [p.chunk_id for p in result.passages]
    assert result.reranked is False
    passage = next(p for p in result.passages if p.chunk_id == planted.pk)
    assert (passage.document_id, passage.title, passage.char_start, passage.char_end) == (
        kb["keys"].pk, "Key management", planted.char_start, planted.char_end,
    )  # fmt: skip
    assert kb["keys"].text[passage.char_start : passage.char_end] == passage.text
    if mode != "vector":
        assert passage.fulltext_rank is not None
    if mode != "fulltext":
        assert passage.vector_rank is not None


def test_fulltext_falls_back_to_any_word_when_no_passage_has_all(kb):
    # No passage contains both "refunds" and "cafeteria": the AND query is empty, the OR query is not.
    result = passages_retrieve(
        "refunds cafeteria zeppelin", collection_ids=[kb["public"].pk], mode="fulltext", top_k=5, rerank=False
    )
    texts = " ".join(p.text for p in result.passages)
    assert "Refunds" in texts and "cafeteria" in texts


def test_highlights_mark_query_words_and_escape_the_rest(space):
    collection = CollectionFactory()
    DocumentFactory(
        collection=collection,
        passages=["If cost < budget & R&D agrees, rotation of keys matters."],
        space=space,
    )
    result = passages_retrieve("rotation", collection_ids=[collection.pk], mode="fulltext", rerank=False)
    [passage] = result.passages
    assert passage.highlights and "<mark>rotation</mark>" in passage.highlights[0]
    assert "&lt; budget &amp;" in passage.highlights[0]


def test_rerank_reorders_and_reports_it(kb, genapi):
    result = passages_retrieve("how do I rotate a signing key", collection_ids=[kb["public"].pk], top_k=2)
    assert result.reranked is True
    assert result.passages[0].chunk_id == _chunk(kb["keys"], 1).pk
    assert result.passages[0].rerank_score is not None
    assert result.passages[0].score == result.passages[0].rerank_score
    assert len(result.passages) == 2
    assert genapi.stats()["requests"].get("rerank") == 1


def test_rerank_failure_degrades_to_the_fused_order(kb, genapi, monkeypatch):
    from genapi import reset_client

    # Fewer retries keep the test short; the failure outlasts them, as a real outage would.
    monkeypatch.setenv("GENAPI_MAX_RETRIES", "1")
    reset_client()
    try:
        genapi.set_knobs(fail_next={"count": 10, "status": 503, "endpoint": "rerank"})
        degraded = passages_retrieve("signing keys grace period", collection_ids=[kb["public"].pk], top_k=4)
        stats = genapi.stats()
        genapi.reset_knobs()
        fused = passages_retrieve(
            "signing keys grace period", collection_ids=[kb["public"].pk], top_k=4, rerank=False
        )
    finally:
        monkeypatch.undo()
        reset_client()
    assert stats["requests"].get("rerank") == 2  # one call and its retry, both failed
    assert degraded.reranked is False
    assert len(degraded.passages) == 4  # top_k, so the checks below are about real rows
    assert [p.chunk_id for p in degraded.passages] == [p.chunk_id for p in fused.passages]
    assert all(p.rerank_score is None for p in degraded.passages)


def test_passages_below_the_rerank_threshold_are_dropped(kb, settings):
    settings.RAG_RERANK_THRESHOLD = 0.05
    result = passages_retrieve("quantum chromodynamics lattice", collection_ids=[kb["public"].pk])
    assert result.reranked is True
    assert result.passages == []
    kept = passages_retrieve("rotate signing key", collection_ids=[kb["public"].pk])
    assert kept.passages and all(p.rerank_score >= 0.05 for p in kept.passages)


def test_rrf_order_on_a_constructed_case():
    vector = ["a", "b", "c", "d"]
    fulltext = ["c", "a", "e"]
    k = 60
    fused = rrf_fuse([vector, fulltext], k=k)
    expected = {
        "a": 1 / (k + 1) + 1 / (k + 2),
        "b": 1 / (k + 2),
        "c": 1 / (k + 3) + 1 / (k + 1),
        "d": 1 / (k + 4),
        "e": 1 / (k + 3),
    }
    assert [item for item, _ in fused] == ["a", "c", "b", "e", "d"]
    for item, score in fused:
        assert score == pytest.approx(expected[item])
    # Ties break by best rank, then by list: deterministic.
    assert [i for i, _ in rrf_fuse([["x", "y"], ["y", "x"]])] == ["x", "y"]


def test_rrf_weights_scale_each_list():
    # Full text weighted 2: "y" (second in the vector list, first in full text) overtakes "x".
    fused = rrf_fuse([["x", "y"], ["y", "x"]], k=10, weights=[1.0, 2.0])
    assert [item for item, _ in fused] == ["y", "x"]
    assert dict(fused)["y"] == pytest.approx(1 / 12 + 2 / 11)
    with pytest.raises(ValueError):
        rrf_fuse([["x"], ["y"]], weights=[1.0])


def test_hybrid_fuses_the_two_lists_by_reciprocal_rank(kb):
    ids = [kb["public"].pk]
    query = "billing team refunds invoices"
    vector = passages_retrieve(query, collection_ids=ids, mode="vector", top_k=50, rerank=False)
    fulltext = passages_retrieve(query, collection_ids=ids, mode="fulltext", top_k=50, rerank=False)
    hybrid = passages_retrieve(query, collection_ids=ids, mode="hybrid", top_k=50, rerank=False)
    expected = rrf_fuse(
        [[p.chunk_id for p in vector.passages], [p.chunk_id for p in fulltext.passages]],
        weights=[RRF_WEIGHT_VECTOR, RRF_WEIGHT_FULLTEXT],
    )
    assert [p.chunk_id for p in hybrid.passages] == [cid for cid, _ in expected]
    assert [p.score for p in hybrid.passages] == pytest.approx([s for _, s in expected])


def test_collections_outside_the_readable_ids_never_appear(kb):
    for mode in ("vector", "fulltext", "hybrid"):
        result = passages_retrieve(
            "signing bonus salary", collection_ids=[kb["public"].pk], mode=mode, top_k=20
        )
        assert kb["salaries"].pk not in {p.document_id for p in result.passages}
        private = passages_retrieve("signing bonus salary", collection_ids=[kb["private"].pk], mode=mode)
        assert {p.document_id for p in private.passages} == {kb["salaries"].pk}
    assert passages_retrieve("signing", collection_ids=[]).passages == []


@pytest.mark.parametrize("mode", ["vector", "fulltext", "hybrid"])
def test_filters_exclude_what_they_should(kb, mode):
    ids = [kb["public"].pk]
    query = "team signing keys invoices refunds lunch"

    def docs(filters):
        result = passages_retrieve(
            query, collection_ids=ids, filters=filters, mode=mode, top_k=20, rerank=False
        )
        return {p.document_id for p in result.passages}

    assert docs({"document_ids": [kb["billing"].pk]}) == {kb["billing"].pk}
    assert docs({"metadata": {"team": "platform"}}) == {kb["keys"].pk}
    assert docs({"metadata": {"team": "platform", "lang": "fr"}}) == set()
    assert docs({"mime_types": ["text/markdown"]}) == {kb["billing"].pk}
    assert docs(SearchFilters(mime_types=["application/pdf", "text/markdown"])) == {
        kb["billing"].pk, kb["lunch"].pk,
    }  # fmt: skip
    now = timezone.now()
    from ingestion.models import Document

    Document.objects.filter(pk=kb["lunch"].pk).update(created_at=now - dt.timedelta(days=30))
    assert docs({"created_before": now - dt.timedelta(days=1)}) == {kb["lunch"].pk}
    assert kb["lunch"].pk not in docs({"created_after": now - dt.timedelta(days=1)})


def test_documents_not_ready_are_not_searched(space):
    collection = CollectionFactory()
    DocumentFactory(
        collection=collection,
        passages=["Zebras migrate across the plains."],
        space=space,
        status="processing",
    )
    assert passages_retrieve("zebras migrate", collection_ids=[collection.pk]).passages == []


def test_a_narrow_filter_over_many_rows_still_returns_k(space, settings):
    """A filter matching few rows among many: the HNSW scan continues (iterative scan) until k pass."""
    collection = CollectionFactory()
    # 600 near-duplicates of the query in one document, 12 weaker matches in the target document.
    crowd = [f"Signing keys rotation policy note number {i} for the platform." for i in range(600)]
    DocumentFactory(collection=collection, passages=crowd, space=space, title="Crowd")
    target = DocumentFactory(
        collection=collection,
        passages=[f"Unrelated paragraph {i} about gardening, mentioning keys once." for i in range(12)],
        space=space,
        title="Target",
        metadata={"pick": "me"},
    )
    settings.RAG_HNSW_EF_SEARCH = 40
    space_ = embedding_space_active()
    vector = query_embed("signing keys rotation policy", space_)
    with connection.cursor() as cursor:
        # Force the index path the planner picks for large tables, so the test exercises the HNSW scan.
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("SET enable_sort = off")
        try:
            hits = vector_candidates(
                vector, space_, [collection.pk], SearchFilters(metadata={"pick": "me"}), 10
            )
            with transaction.atomic():
                cursor.execute("SELECT set_config('hnsw.ef_search', '40', true)")
                cursor.execute("SELECT set_config('hnsw.iterative_scan', 'off', true)")
                sql, params = vector_candidates_sql(
                    vector, space_, [collection.pk], SearchFilters(metadata={"pick": "me"}), 10
                )
                cursor.execute(sql, params)
                without_iterative = cursor.fetchall()
        finally:
            cursor.execute("RESET enable_seqscan")
            cursor.execute("RESET enable_sort")
    assert len(hits) == 10
    assert {cid for cid, _ in hits} <= set(target.chunks.values_list("pk", flat=True))
    # The same scan without iterative mode stops at ef_search candidates, nearly all filtered out.
    assert len(without_iterative) < 10


def test_vector_query_uses_the_spaces_hnsw_index(space):
    collection = CollectionFactory()
    DocumentFactory(
        collection=collection, passages=[f"Passage {i} about key rotation." for i in range(50)], space=space
    )
    space_ = embedding_space_active()
    vector = query_embed("key rotation", space_)
    sql, params = vector_candidates_sql(vector, space_, [collection.pk], SearchFilters(), 8)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'ingestion_chunkembedding' "
            "AND indexdef ILIKE %s AND indexdef ILIKE %s",
            ["%hnsw%", f"%space_id = {space_.pk}%"],
        )
        [(index_name,)] = cursor.fetchall()
        cursor.execute("ANALYZE ingestion_document, ingestion_chunk, ingestion_chunkembedding")
        with transaction.atomic():
            # A tiny table is cheaper to scan and sort; production tables are not. Rule those plans out
            # to show the index matches the query (same cast, same space predicate) and can serve it.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Scan using {index_name}" in plan, plan


def test_passage_with_neighbours(kb, space):
    document = DocumentFactory(
        collection=kb["public"], passages=[f"Paragraph {i}." for i in range(6)], space=space
    )
    middle = _chunk(document, 3)
    context = passage_with_neighbours(middle.pk, [kb["public"].pk], before=2, after=1)
    assert context.passage.chunk_id == middle.pk
    assert [p.ordinal for p in context.before] == [1, 2]
    assert [p.ordinal for p in context.after] == [4]
    first = passage_with_neighbours(_chunk(document, 0).pk, [kb["public"].pk])
    assert first.before == [] and [p.ordinal for p in first.after] == [1, 2]
    # Not readable, wrong document, missing: all None.
    assert passage_with_neighbours(middle.pk, [kb["private"].pk]) is None
    assert passage_with_neighbours(middle.pk, [kb["public"].pk], document_id=kb["keys"].pk) is None
    assert passage_with_neighbours(10**12, [kb["public"].pk]) is None
    assert passage_with_neighbours(2**70, [kb["public"].pk]) is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["vector", "hybrid"])
def test_vector_leg_on_its_own_connection_sees_committed_passages_and_filters(genapi, mode):
    # Outside a transaction the vector leg runs in a pool thread on that thread's own connection (beside
    # the full-text leg): it finds committed passages, keeps the collection filter, and reports its stage.
    space = active_space()
    readable = CollectionFactory(slug="readable")
    hidden = CollectionFactory(slug="hidden")
    wanted = DocumentFactory(
        collection=readable, passages=["Signing keys are rotated every ninety days."], space=space
    )
    DocumentFactory(collection=hidden, passages=["Signing keys are rotated every ninety days."], space=space)
    assert not connection.in_atomic_block
    result = passages_retrieve(
        "signing keys rotated", collection_ids=[readable.pk], mode=mode, top_k=5, rerank=False
    )
    assert [p.document_id for p in result.passages] == [wanted.pk]
    assert result.passages[0].vector_rank == 1
    assert {"embed", "vector"} <= set(result.timings)


@pytest.mark.django_db(transaction=True)
def test_vector_leg_threads_keep_no_query_log_under_debug(genapi, settings):
    # With DEBUG on, Django logs every statement on a connection and empties the log when a request
    # starts, on the request's thread only. The vector leg's pool threads must empty their own, or each
    # keeps its last 9,000 statements (the web workers grew ~1.4 MiB a minute under load).
    import threading

    from django.db import connections

    from search.selectors import _leg_pool

    settings.DEBUG = True
    space = active_space()
    readable = CollectionFactory(slug="readable")
    text = "Signing keys are rotated every ninety days."
    DocumentFactory(collection=readable, passages=[text], space=space)
    for _ in range(24):
        passages_retrieve("signing keys rotated", collection_ids=[readable.pk], mode="vector", rerank=False)
    barrier = threading.Barrier(_leg_pool._max_workers, timeout=30)

    def logged() -> int:
        barrier.wait()  # one probe per pool thread: each waits until all are running at once
        return sum(len(c.queries_log) for c in connections.all(initialized_only=True))

    counts = list(_leg_pool.map(lambda _: logged(), range(_leg_pool._max_workers)))
    # 24 legs over at most 8 threads: without the reset, some thread holds 3 legs' statements or more.
    assert max(counts) <= 8, counts
