"""End to end with a real Celery worker process: queueing, retries, a killed worker, re-embedding, the CLI."""

from __future__ import annotations

import os
import signal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from ingestion.models import Document, EmbeddingSpace
from ingestion.services.documents import document_create, documents_bulk_create
from ingestion.services.pipeline import documents_sweep_stale
from ingestion.services.spaces import embedding_space_get_or_create_active, embedding_space_retire
from tests.conftest import start_worker, wait_for
from tests.factories import CollectionFactory
from tests.ingestion.files import HTML_PAGE, make_docx, make_pdf, make_wav

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def all_finished(ids):
    def check():
        statuses = list(Document.objects.filter(pk__in=ids).values_list("status", flat=True))
        return all(s in ("ready", "failed") for s in statuses) and statuses

    return check


def vector_query(space: EmbeddingSpace, vector: list[float], k: int = 3) -> list[int]:
    """The query shape search uses: same cast and predicate as the space's partial HNSW index."""
    literal = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT chunk_id FROM ingestion_chunkembedding WHERE space_id = %s "
            f"ORDER BY embedding::halfvec({space.dimensions}) <=> %s::halfvec({space.dimensions}) LIMIT %s",
            [space.pk, literal, k],
        )
        return [row[0] for row in cursor.fetchall()]


def test_bulk_ingestion_survives_a_provider_answering_503(celery_worker_process, genapi):
    collection = CollectionFactory(slug="bulk")
    embedding_space_get_or_create_active()
    # More failures than the client's own retries: the task has to back off and try again.
    genapi.set_knobs(fail_next={"count": 7, "status": 503, "endpoint": "embeddings"})
    docs = documents_bulk_create(
        collection=collection,
        documents=[
            {"title": f"Doc {i}", "text": f"Passage {i} about boilers and valves."} for i in range(120)
        ],
    )
    ids = [d.pk for d in docs]
    wait_for(all_finished(ids), timeout=120, message="bulk documents finished")
    assert set(Document.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"ready"}
    assert genapi.stats()["statuses"].get("503", 0) >= 7


def test_a_killed_worker_is_noticed_by_its_lapsed_lease(tmp_path, transactional_db, genapi, settings):
    """The worker renews its lease while it runs; SIGKILLed, it stops, and the sweeper re-queues the
    document once the lease lapses (RAG_LEASE_SECONDS), not after a timeout sized for slow documents."""
    collection = CollectionFactory(slug="kill")
    embedding_space_get_or_create_active()
    genapi.set_knobs(latency_ms=6000)
    worker = start_worker(tmp_path, extra_env={"RAG_LEASE_RENEW_SECONDS": "1"})
    try:
        document, _ = document_create(collection=collection, title="Slow", text="Slow passage.")

        def renewed():
            row = Document.objects.get(pk=document.pk)
            return row.status == "processing" and row.lease_renewed_at > row.processing_started_at

        wait_for(renewed, timeout=60, message="the lease renewed by the running worker")
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
    finally:
        worker.stop()
    genapi.set_knobs(latency_ms=0)
    settings.RAG_LEASE_SECONDS = 2
    assert documents_sweep_stale()["requeued"] == 0  # renewed a moment ago: still the dead worker's
    wait_for(lambda: documents_sweep_stale()["requeued"] == 1, timeout=30, message="lease lapsed")
    worker = start_worker(tmp_path)
    try:
        wait_for(
            lambda: Document.objects.get(pk=document.pk).status == "ready",
            timeout=60,
            message="recovered document ready",
        )
    finally:
        worker.stop()
    document.refresh_from_db()
    assert document.attempts == 2 and document.chunks.count() == 1


def test_reembedding_switches_spaces_while_queries_keep_answering(celery_worker_process, genapi):
    from genapi import get_client

    collection = CollectionFactory(slug="re")
    docs = documents_bulk_create(
        collection=collection,
        documents=[{"title": f"D{i}", "text": f"Text {i} on pumps."} for i in range(30)],
    )
    wait_for(all_finished([d.pk for d in docs]), timeout=60, message="documents ready")
    old = EmbeddingSpace.objects.get(is_active=True)
    genapi.set_knobs(latency_ms=150)  # a build that takes a moment, queried throughout
    call_command("reembed", "--model", "multilingual-e5-large")
    new = EmbeddingSpace.objects.get(status="building")
    answered = 0
    while True:
        active = EmbeddingSpace.objects.get(is_active=True)
        query = get_client().embeddings_create(active.model, ["pumps"], dimensions=None).vectors[0]
        hits = vector_query(active, query)
        assert len(hits) == 3, f"no answer from space {active.pk}"
        answered += 1
        if active.pk == new.pk:
            break
    genapi.set_knobs(latency_ms=0)
    old.refresh_from_db()
    assert old.status == "retired" and not old.is_active
    assert new.embeddings.count() == 30 and answered >= 1
    # The old vectors outlive the switch by a grace period (queued task); dropping them is the same service.
    embedding_space_retire(old)
    assert not old.embeddings.exists()


def test_ingest_command_walks_a_folder_and_waits(celery_worker_process, genapi, tmp_path, capsys):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "manual.pdf").write_bytes(make_pdf(["Page one on pumps.", "Page two on valves."]))
    (folder / "handbook.docx").write_bytes(make_docx([(1, "Handbook", ["Welcome."])]))
    (folder / "sub" / "page.html").write_bytes(HTML_PAGE)
    (folder / "sub" / "memo.wav").write_bytes(make_wav("Spring checks."))
    (folder / "notes.md").write_text("# Notes\n\nSome notes.")
    call_command(
        "ingest", str(folder), "--collection", "cli", "--create-collection", "--wait", "--timeout", "120"
    )
    out = capsys.readouterr().out
    assert "ready: 5, failed: 0" in out
    pdf = Document.objects.get(title="manual.pdf")
    assert sorted(pdf.chunks.values_list("page", flat=True)) == [1, 2]
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 broken")
    with pytest.raises(CommandError) as info:
        call_command("ingest", str(folder), "--collection", "cli", "--wait", "--timeout", "120")
    assert info.value.returncode != 0
    out = capsys.readouterr()
    assert "ready: 5, failed: 1" in out.out and "broken.pdf" in out.err


def _sessions_opened() -> int:
    """Sessions PostgreSQL has counted on this database so far (a closed backend's count is flushed as
    it exits, so a worker that reconnects for each task shows here at once)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def test_the_worker_keeps_its_database_connection_between_tasks(
    tmp_path, transactional_db, genapi_local, settings
):
    """Celery's Django fixup closed every connection around every task: each group of documents paid a
    new PostgreSQL backend (its start, its cold caches, the postings trigger compiled again). Now the
    connection is kept between tasks, as a web process keeps it between requests."""
    collection = CollectionFactory(slug="kept")
    embedding_space_get_or_create_active()
    settings.RAG_INGEST_GROUP_SIZE = 1  # one task per document
    worker = start_worker(tmp_path, concurrency=1)
    try:
        warm = documents_bulk_create(collection=collection, documents=[{"title": "w", "text": "Warm up."}])
        wait_for(all_finished([warm[0].pk]), timeout=60, message="the first task")
        before = _sessions_opened()
        docs = documents_bulk_create(
            collection=collection,
            documents=[{"title": f"Doc {i}", "text": f"Passage {i} about pumps."} for i in range(8)],
        )
        ids = [d.pk for d in docs]
        wait_for(all_finished(ids), timeout=120, message="eight one-document tasks")
        opened = _sessions_opened() - before
    finally:
        worker.stop()
    assert set(Document.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"ready"}
    # Eight tasks; before the change each opened (at least) one session of its own.
    assert opened <= 2, opened
