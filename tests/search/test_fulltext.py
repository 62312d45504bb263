"""The BM25 full-text leg and its index (search_posting + lexeme statistics), against the real PostgreSQL:
the index follows inserts, updates and deletes of passages; BM25 orders a tiny corpus as computed by hand;
filters apply inside the scan; the query reads a bounded number of postings whatever the corpus size."""

from __future__ import annotations

import json
import math

import pytest
from django.db import connection, transaction

import search.fulltext as fulltext
from ingestion.models import Chunk, Document
from search.fulltext import postings_rebuild
from search.tasks import lexeme_stats_compact_task
from search.types import SearchFilters
from tests.factories import CollectionFactory, DocumentFactory

pytestmark = pytest.mark.django_db


def _rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def _postings_from_scratch() -> set[tuple]:
    """What the index must hold: (lexeme, chunk, tf, dl) recomputed from every passage's tsvector."""
    return set(
        _rows(
            """
            SELECT lexeme, chunk_id, tf, (sum(tf) OVER (PARTITION BY chunk_id))::int FROM (
                SELECT c.id AS chunk_id, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
                FROM ingestion_chunk c, unnest(c.search_vector) u
            ) t
            """
        )
    )


def _stats_from_scratch() -> dict[str, tuple[int, int]]:
    stats = {
        lexeme: (int(docs), int(tokens))
        for lexeme, docs, tokens in _rows(
            "SELECT lexeme, count(*), sum(tf) FROM ("
            "  SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf"
            "  FROM ingestion_chunk c, unnest(c.search_vector) u) t GROUP BY lexeme"
        )
    }
    [(n, total)] = _rows(
        "SELECT count(*), coalesce(sum(dl), 0) FROM (SELECT c.id,"
        " sum(coalesce(array_length(u.positions, 1), 1)) AS dl"
        " FROM ingestion_chunk c, unnest(c.search_vector) u GROUP BY c.id) t"
    )
    if n:
        stats[""] = (int(n), int(total))
    return stats


def _stats_as_read() -> dict[str, tuple[int, int]]:
    """Folded totals plus pending deltas, lexemes with no passage left dropped."""
    rows = _rows(
        """
        SELECT lexeme, sum(docs), sum(tokens) FROM (
            SELECT lexeme, docs, tokens FROM search_lexeme_stat
            UNION ALL SELECT lexeme, docs, tokens FROM search_lexeme_delta
        ) t GROUP BY lexeme HAVING sum(docs) <> 0
        """
    )
    return {lexeme: (int(docs), int(tokens)) for lexeme, docs, tokens in rows}


def _index_matches_the_passages() -> None:
    assert set(_rows("SELECT lexeme, chunk_id, tf, dl FROM search_posting")) == _postings_from_scratch()
    assert _stats_as_read() == _stats_from_scratch()


def test_index_follows_insert_update_delete_and_compaction():
    collection = CollectionFactory()
    first = DocumentFactory(
        collection=collection, passages=["Zebras migrate across the plains.", "Zebras graze; zebras rest."]
    )
    second = DocumentFactory(collection=collection, passages=["Lions hunt zebras at dusk."])
    assert _rows("SELECT count(*) FROM search_posting")[0][0] > 0
    _index_matches_the_passages()
    zebra_docs = fulltext.lexeme_stats("zebra").docs
    assert zebra_docs == {"zebra": 3}

    # Update: new words in, old words out; an update that leaves the text alone changes nothing.
    chunk = first.chunks.get(ordinal=0)
    Chunk.objects.filter(pk=chunk.pk).update(text="Giraffes browse acacia trees.")
    Chunk.objects.filter(pk=chunk.pk).update(token_count=99)
    _index_matches_the_passages()
    assert fulltext.lexeme_stats("zebra giraffe").docs == {"zebra": 2, "giraff": 1}

    assert lexeme_stats_compact_task() > 0  # what the beat schedule runs
    assert _rows("SELECT count(*) FROM search_lexeme_delta") == [(0,)]
    _index_matches_the_passages()

    # Delete (Django's cascade from the document deletes its chunks).
    second.delete()
    _index_matches_the_passages()
    assert fulltext.lexeme_stats("lion zebra").docs == {"zebra": 1}
    assert not _rows("SELECT 1 FROM search_posting WHERE lexeme = 'lion'")
    Document.objects.all().delete()
    assert _rows("SELECT count(*) FROM search_posting") == [(0,)]
    assert fulltext.lexeme_stats("zebra").passages == 0


def test_rebuild_gives_the_same_index_as_the_triggers():
    collection = CollectionFactory()
    DocumentFactory(collection=collection, passages=["Alpha beta beta.", "Gamma alpha.", "Delta."])
    before = set(_rows("SELECT lexeme, chunk_id, tf, dl, impact FROM search_posting"))
    stats = _stats_as_read()
    postings_rebuild()
    assert set(_rows("SELECT lexeme, chunk_id, tf, dl, impact FROM search_posting")) == before
    assert _stats_as_read() == stats


# Hand-computed BM25 (k1 0.9, b 0.4, Lucene IDF ln(1 + (N - df + 0.5) / (df + 0.5))), words as stemmed by
# the english configuration ("apples" -> appl, "cherries" -> cherri):
#   A "apples apples apples bananas"     appl 3, banana 1            dl 4
#   B "apples bananas cherries cherries" appl 1, banana 1, cherri 2  dl 4
#   C "cherries durians"                 cherri 1, durian 1          dl 2
#   D "bananas durians figs grapes kiwis"                            dl 5
# N 4, avgdl 15/4 = 3.75; df appl 2, cherri 2 -> idf ln 2 = 0.6931 for both.
# Query "apples cherries": norm(dl) = 0.9 (0.6 + 0.4 dl / 3.75): 0.9240 (dl 4), 0.7320 (dl 2)
#   A = 0.6931 * 3 * 1.9 / (3 + 0.9240)                                   = 1.0069
#   B = 0.6931 * (1 * 1.9 / (1 + 0.9240) + 2 * 1.9 / (2 + 0.9240))        = 1.5853
#   C = 0.6931 * 1 * 1.9 / (1 + 0.7320)                                   = 0.7604
# Expected order B, A, C; D holds neither word and is absent.
HAND_SCORES = {"A": 1.0069, "B": 1.5853, "C": 0.7604}


def test_bm25_orders_a_tiny_corpus_as_computed_by_hand():
    collection = CollectionFactory()
    texts = {
        "A": "apples apples apples bananas",
        "B": "apples bananas cherries cherries",
        "C": "cherries durians",
        "D": "bananas durians figs grapes kiwis",
    }
    document = DocumentFactory(collection=collection, passages=list(texts.values()))
    by_ordinal = {c.ordinal: c.pk for c in document.chunks.all()}
    name_of = {by_ordinal[i]: name for i, name in enumerate(texts)}
    hits = fulltext.fulltext_candidates("apples cherries", [collection.pk], SearchFilters(), 10)
    assert [name_of[chunk_id] for chunk_id, _ in hits] == ["B", "A", "C"]
    for chunk_id, score in hits:
        assert score == pytest.approx(HAND_SCORES[name_of[chunk_id]], abs=1e-3)
    # IDF: "durians" (df 2) outweighs "bananas" (df 3) at equal tf and equal length... C is shorter, so
    # compare within equal lengths: A and B both have banana once, dl 4; D has banana and durian.
    hits = fulltext.fulltext_candidates("bananas", [collection.pk], SearchFilters(), 10)
    idf_banana = math.log(1 + (4 - 3 + 0.5) / (3 + 0.5))
    scores = dict(hits)
    assert scores[by_ordinal[0]] == pytest.approx(
        idf_banana * 1.9 / (1 + 0.9 * (0.6 + 0.4 * 4 / 3.75)), abs=1e-4
    )
    # Length normalisation: D (dl 5) scores below A and B (dl 4) for the same single "bananas".
    assert [name_of[c] for c, _ in hits] == ["A", "B", "D"]


def test_the_one_statement_scores_as_the_statistics_say_pending_deltas_included():
    """The statement reads the lexeme statistics itself: its scores are BM25 over `lexeme_stats`' figures
    (folded totals plus the deltas not folded yet), recomputed here in Python from the postings."""
    collection = CollectionFactory()
    document = DocumentFactory(
        collection=collection,
        passages=["zebra lion zebra", "lion giraffe savanna", "zebra giraffe giraffe acacia", "acacia"],
    )
    assert lexeme_stats_compact_task() > 0
    # Pending deltas on top of the folded totals: one passage rewritten, one document added.
    Chunk.objects.filter(pk=document.chunks.get(ordinal=3).pk).update(text="zebra acacia acacia trees")
    DocumentFactory(collection=collection, passages=["lion lion zebra at dusk"])
    assert _rows("SELECT count(*) FROM search_lexeme_delta")[0][0] > 0
    query = "zebra lions giraffes"
    stats = fulltext.lexeme_stats(query)
    postings: dict[int, dict[str, tuple[int, int]]] = {}
    for lexeme, chunk_id, tf, dl in _postings_from_scratch():
        postings.setdefault(chunk_id, {})[lexeme] = (tf, dl)
    k1, b = fulltext.BM25_K1, fulltext.BM25_B
    expected = {
        chunk_id: sum(
            stats.idf(lexeme) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / stats.avg_length))
            for lexeme, (tf, dl) in held.items()
            if lexeme in stats.docs
        )
        for chunk_id, held in postings.items()
        if set(held) & set(stats.docs)
    }
    hits = fulltext.fulltext_candidates(query, [collection.pk], SearchFilters(), 10)
    assert {c for c, _ in hits} == set(expected)
    for chunk_id, score in hits:
        assert score == pytest.approx(expected[chunk_id], rel=1e-9)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    # Only stopwords, or words no passage holds: nothing, and no error.
    assert fulltext.fulltext_candidates("the of and", [collection.pk], SearchFilters(), 10) == []
    assert fulltext.fulltext_candidates("xylophone", [collection.pk], SearchFilters(), 10) == []


def test_filters_apply_inside_the_scan_so_k_rows_come_back(monkeypatch):
    """Passages outside the readable collections have the highest impact; with a per-lexeme depth of 3
    a filter applied after the scan would return nothing. Inside the scan, 3 readable passages come back."""
    monkeypatch.setattr(fulltext, "FULLTEXT_TERM_DEPTH", 3)
    hidden, readable = CollectionFactory(), CollectionFactory()
    DocumentFactory(collection=hidden, passages=[f"zebra zebra zebra {i}" for i in range(20)])
    target = DocumentFactory(
        collection=readable,
        passages=[f"zebra and many other words here number {i}" for i in range(5)],
        metadata={"pick": "me"},
    )
    hits = fulltext.fulltext_candidates("zebra", [readable.pk], SearchFilters(), 3)
    assert len(hits) == 3
    assert {c for c, _ in hits} <= set(target.chunks.values_list("pk", flat=True))
    hits = fulltext.fulltext_candidates(
        "zebra", [hidden.pk, readable.pk], SearchFilters(metadata={"pick": "me"}), 3
    )
    assert len(hits) == 3 and {c for c, _ in hits} <= set(target.chunks.values_list("pk", flat=True))
    # Documents not ready are never returned.
    Document.objects.filter(pk=target.pk).update(status=Document.Status.PROCESSING)
    assert fulltext.fulltext_candidates("zebra", [readable.pk], SearchFilters(), 3) == []


def _postings_read(query: str, collection_id: int, limit: int) -> int:
    """Rows the full-text statement read from search_posting, from EXPLAIN ANALYZE."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE search_posting, ingestion_chunk, ingestion_document")

    def walk(node: dict) -> int:
        own = 0
        if node.get("Relation Name") == "search_posting":
            own = int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 1))
        return own + sum(walk(child) for child in node.get("Plans", []))

    where, params = fulltext.filters_sql([collection_id], SearchFilters())
    sql, sql_params = fulltext.fulltext_sql(query, where, params, limit)
    with transaction.atomic(), connection.cursor() as cursor:
        # Tiny tables are cheaper to scan whole; production ones are not. Rule whole-table plans out to show
        # the index serves the statement, then count what it read.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        fulltext.fulltext_plan_settings(cursor)
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, sql_params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return walk(plan[0]["Plan"])


def test_query_reads_a_bounded_number_of_postings_whatever_the_corpus_size(monkeypatch):
    monkeypatch.setattr(fulltext, "FULLTEXT_TERM_DEPTH", 20)
    collection = CollectionFactory()
    words = "zebra lion giraffe"

    def grow(total: int) -> None:
        have = Chunk.objects.filter(document__collection=collection).count()
        DocumentFactory(
            collection=collection,
            passages=[f"{words} passage {i} about the savanna" for i in range(have, total)],
        )

    grow(100)
    small = _postings_read("zebra lion", collection.pk, 10)
    grow(800)
    large = _postings_read("zebra lion", collection.pk, 10)
    # Every passage holds both words: reading all postings would mean 200 and then 1,600 rows.
    assert small == large
    assert large <= 2 * 20 + 2 * 40  # depth per lexeme, then two lexemes for each pooled passage


@pytest.mark.django_db(transaction=True)  # committed rows, so VACUUM can fill the visibility map
def test_the_document_check_is_answered_from_the_covering_index():
    """Each pooled posting's document (readable collection, ready) is checked in the index
    `document_visibility` alone: an index-only scan, no read of the document's row."""
    collection = CollectionFactory()
    for i in range(30):
        DocumentFactory(collection=collection, passages=[f"zebra passage {i}"])
    # Many more readable documents than the query's postings, as in any real collection: with a handful
    # the planner may read them all first (through whichever index) and then look up their postings, which
    # is not the plan a knowledge base gets.
    DocumentFactory.create_batch(300, collection=collection)
    with connection.cursor() as cursor:
        # Index-only scans need the visibility map, which VACUUM (autovacuum, in production) fills.
        cursor.execute("VACUUM ANALYZE ingestion_document, ingestion_chunk, search_posting")

    def scans_of_documents(node: dict) -> list[tuple[str, str]]:
        own = []
        if node.get("Relation Name") == "ingestion_document":
            own = [(node["Node Type"], node.get("Index Name", ""))]
        return own + [scan for child in node.get("Plans", []) for scan in scans_of_documents(child)]

    where, params = fulltext.filters_sql([collection.pk], SearchFilters())
    sql, sql_params = fulltext.fulltext_sql("zebra", where, params, 10)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # tiny tables are cheaper to scan whole
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        fulltext.fulltext_plan_settings(cursor)
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, sql_params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    assert scans_of_documents(plan[0]["Plan"]) == [("Index Only Scan", "document_visibility")]
