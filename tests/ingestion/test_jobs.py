"""Ingest jobs: a bulk upload returns a job; its progress, tokens and time left; cancelling a job or one
document (state `cancelled`, nothing searchable left, queued work a no-op); who may see and cancel what."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from rest_framework.test import APIClient

from genapi.limiter import estimate_tokens
from ingestion.chunking import chunk_document
from ingestion.models import Chunk, ChunkEmbedding, Document, IngestJob
from ingestion.parsers import parse_string
from ingestion.progress import ingest_job_progress
from ingestion.services.documents import documents_bulk_create
from ingestion.services.jobs import NothingToCancel, ingest_job_bulk_create, ingest_job_cancel
from ingestion.services.pipeline import documents_ingest
from ingestion.services.spaces import embedding_space_get_or_create_active
from search.selectors import passages_retrieve
from tests.conftest import wait_for
from tests.factories import ApiKeyFactory, CollectionFactory, UserFactory, bearer

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    writer = UserFactory(username="writer")
    reader = UserFactory(username="reader")
    outsider = UserFactory(username="outsider")
    # `kb` is written by `writer` and read by `reader`; `secret` only by `writer`.
    kb = CollectionFactory(slug="kb", reader_users=[reader], writer_users=[writer])
    secret = CollectionFactory(slug="secret", writer_users=[writer])
    return {"writer": writer, "reader": reader, "outsider": outsider, "kb": kb, "secret": secret}


def client_for(user, scopes=None) -> APIClient:
    client = APIClient()
    if scopes is None:
        client.force_authenticate(user)
    else:
        client.credentials(**bearer(ApiKeyFactory(user=user, scopes=scopes).raw_key))
    return client


def bulk(client, slug: str, texts: list[str]):
    return client.post(
        "/api/documents/bulk",
        {"collection": slug, "documents": [{"title": f"Doc {i}", "text": t} for i, t in enumerate(texts)]},
        format="json",
    )


def searchable(collection, query: str) -> dict[str, list[int]]:
    """Chunk ids each search leg finds (no rerank): what a caller could get back."""
    found = {}
    for mode in ("vector", "fulltext"):
        result = passages_retrieve(query, collection_ids=[collection.pk], mode=mode, top_k=20, rerank=False)
        found[mode] = [p.chunk_id for p in result.passages]
    return found


def test_bulk_returns_a_job_whose_progress_counts_documents_by_state(people):
    client = client_for(people["writer"], scopes=["ingest"])
    response = bulk(client, "kb", ["Boilers need service.", "Valves leak.", "Boilers need service.", ""])
    assert response.status_code == 202, response.json()
    body = response.json()
    # Existing clients keep their field; the job comes beside it.
    assert [d["status"] for d in body["documents"]] == ["queued", "queued", "queued", "failed"]
    job_id = body["job"]["id"]
    assert body["job"]["url"] == f"http://testserver/api/ingest-jobs/{job_id}" == response["Location"]
    progress = client.get(f"/api/ingest-jobs/{job_id}").json()
    assert progress["state"] == "running" and progress["collection"] == "kb"
    assert progress["created_by"] == "writer" and progress["source"] == "api"
    assert progress["submitted"] == 4 and progress["total"] == 3  # the in-call duplicate is one document
    assert progress["counts"] == {"queued": 2, "processing": 0, "ready": 0, "failed": 1, "cancelled": 0}
    assert (progress["done"], progress["pending"], progress["tokens_used"]) == (1, 2, 0)
    # One finished document of three: a rate, so an estimate for the other two.
    # (The estimate is rounded to 0.1 s, so on a fast machine it may be 0.0 while the job still runs.)
    rate = progress["documents_per_second"]
    assert rate > 0 and progress["eta_seconds"] == pytest.approx(2 / rate, abs=0.06)


def test_progress_records_the_tokens_each_document_cost(people, genapi):
    embedding_space_get_or_create_active()
    short, long = "Pumps hum.", " ".join(f"Turbine blade inspection step {i}." for i in range(60))
    job, documents = ingest_job_bulk_create(
        collection=people["kb"], documents=[{"title": "S", "text": short}, {"title": "L", "text": long}]
    )
    assert documents_ingest([d.pk for d in documents]) == {d.pk: "ready" for d in documents}
    expected = {}
    for document in Document.objects.filter(job=job):
        specs = chunk_document(
            parse_string(document.text), settings.RAG_CHUNK_TOKENS, settings.RAG_CHUNK_OVERLAP
        )
        # One embeddings call served both: each document carries its own share of the provider's count.
        expected[document.pk] = sum(estimate_tokens(spec.embedding_input(document.title)) for spec in specs)
        assert document.embedding_tokens == expected[document.pk] > 0
    progress = ingest_job_progress(job)
    assert progress.state == "finished" and progress.counts["ready"] == 2
    assert progress.tokens_used == sum(expected.values()) and progress.eta_seconds == 0
    assert progress.finished_at is not None


def test_cancelling_a_job_cancels_what_is_unfinished_and_leaves_nothing_searchable(people, genapi):
    embedding_space_get_or_create_active()
    collection = people["kb"]
    job, documents = ingest_job_bulk_create(
        collection=collection,
        documents=[
            {"title": f"Manual {i}", "text": f"Compressor {i} needs oiling monthly."} for i in range(3)
        ],
    )
    finished, *rest = documents
    documents_ingest([finished.pk])
    # One queued document had been ingested before (a re-ingest in flight): its old passages must go too.
    documents_ingest([rest[0].pk])
    Document.objects.filter(pk=rest[0].pk).update(status="queued")
    assert searchable(collection, "compressor oiling")["fulltext"]
    client = client_for(people["writer"], scopes=["ingest"])
    response = client.post(f"/api/ingest-jobs/{job.pk}/cancel")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "cancelled" and body["cancelled_by"] == "writer"
    assert body["counts"] == {"queued": 0, "processing": 0, "ready": 1, "failed": 0, "cancelled": 2}
    assert body["eta_seconds"] == 0
    statuses = dict(Document.objects.filter(job=job).values_list("pk", "status"))
    assert statuses == {finished.pk: "ready", rest[0].pk: "cancelled", rest[1].pk: "cancelled"}
    assert not Chunk.objects.filter(document__in=rest).exists()
    assert not ChunkEmbedding.objects.filter(chunk__document__in=rest).exists()
    found = searchable(collection, "compressor oiling")
    ready_chunks = set(Chunk.objects.filter(document=finished).values_list("pk", flat=True))
    assert set(found["vector"]) == set(found["fulltext"]) == ready_chunks
    # A queued task for a cancelled document finds nothing to do and costs no provider call.
    genapi.reset_stats()
    assert documents_ingest([d.pk for d in rest]) == {}
    assert genapi.stats()["requests"].get("embeddings", 0) == 0
    # Cancelling again changes nothing; a job with nothing left to stop is a 409.
    assert client.post(f"/api/ingest-jobs/{job.pk}/cancel").status_code == 200
    done_job, done_docs = ingest_job_bulk_create(collection=collection, documents=[{"text": "Fans spin."}])
    documents_ingest([d.pk for d in done_docs])
    conflict = client.post(f"/api/ingest-jobs/{done_job.pk}/cancel")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"


def test_a_cancelled_document_sent_again_is_queued_again_in_the_new_job(people):
    job, (document,) = ingest_job_bulk_create(collection=people["kb"], documents=[{"text": "Dampers close."}])
    ingest_job_cancel(job)
    again, (same,) = ingest_job_bulk_create(collection=people["kb"], documents=[{"text": "Dampers close."}])
    assert same.pk == document.pk and same.status == "queued"
    document.refresh_from_db()
    assert (document.status, document.job_id, document.error) == ("queued", again.pk, "")
    # Sent again outside a job (a plain bulk create), a ready document is left alone.
    assert (
        documents_bulk_create(collection=people["kb"], documents=[{"text": "Dampers close."}])[0].pk
        == same.pk
    )


def test_cancel_one_document(people, genapi):
    embedding_space_get_or_create_active()
    writer = client_for(people["writer"], scopes=["ingest"])
    ids = [d["id"] for d in bulk(writer, "kb", ["Heaters warm.", "Chillers cool."]).json()["documents"]]
    detail = writer.get(f"/api/documents/{ids[0]}").json()
    assert detail["job"] == Document.objects.get(pk=ids[0]).job_id and detail["embedding_tokens"] == 0
    response = writer.post(f"/api/documents/{ids[0]}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert "Cancelled by writer" in response.json()["error"]
    assert writer.post(f"/api/documents/{ids[0]}/cancel").status_code == 200  # again: no change
    documents_ingest([ids[1]])
    assert writer.post(f"/api/documents/{ids[1]}/cancel").status_code == 409  # ready: nothing to stop
    assert Document.objects.get(pk=ids[1]).status == "ready"
    # The new state is one the list filter takes.
    listed = writer.get("/api/documents", {"status": "cancelled"}).json()
    assert [d["id"] for d in listed["results"]] == [ids[0]]
    job_id = Document.objects.get(pk=ids[0]).job_id
    of_job = writer.get("/api/documents", {"job": job_id, "status": "ready"}).json()
    assert [d["id"] for d in of_job["results"]] == [ids[1]]
    # A job of a collection the caller cannot read lists nothing.
    assert (
        client_for(people["outsider"], scopes=["ingest"])
        .get("/api/documents", {"job": job_id})
        .json()["count"]
        == 0
    )


def test_who_may_see_and_cancel_jobs(people):
    job, (document,) = ingest_job_bulk_create(
        collection=people["kb"], documents=[{"text": "Ducts need cleaning."}], created_by=people["writer"]
    )
    secret_job, _ = ingest_job_bulk_create(collection=people["secret"], documents=[{"text": "Payroll."}])
    writer, reader, outsider = (client_for(people[name]) for name in ("writer", "reader", "outsider"))
    assert [j["id"] for j in writer.get("/api/ingest-jobs").json()["results"]] == [secret_job.pk, job.pk]
    assert [j["id"] for j in reader.get("/api/ingest-jobs").json()["results"]] == [job.pk]
    assert reader.get("/api/ingest-jobs", {"collection": "kb"}).json()["count"] == 1
    # Naming a collection one may not read is the same 403 as naming none that exists.
    assert reader.get("/api/ingest-jobs", {"collection": "secret"}).status_code == 403
    assert reader.get("/api/ingest-jobs", {"collection": "nope"}).status_code == 403
    # A job of an unreadable collection is the 404 of a missing one, for reading and cancelling.
    missing = reader.get("/api/ingest-jobs/999999")
    for url in (f"/api/ingest-jobs/{secret_job.pk}", f"/api/ingest-jobs/{secret_job.pk}/cancel"):
        call = reader.get if not url.endswith("cancel") else reader.post
        response = call(url)
        assert response.status_code == 404 and response.json() == missing.json()
    assert outsider.get("/api/ingest-jobs").json()["count"] == 0
    # Reading is not writing: the reader (even with the ingest scope) cannot cancel.
    reader_ingest = client_for(people["reader"], scopes=["ingest"])
    assert reader_ingest.get(f"/api/ingest-jobs/{job.pk}").status_code == 200
    assert reader_ingest.post(f"/api/ingest-jobs/{job.pk}/cancel").status_code == 403
    assert reader_ingest.post(f"/api/documents/{document.pk}/cancel").status_code == 403
    # The writer's key without the ingest scope cannot cancel; an ask-only key cannot even follow.
    assert (
        client_for(people["writer"], scopes=["search"]).post(f"/api/ingest-jobs/{job.pk}/cancel").status_code
        == 403
    )
    assert client_for(people["writer"], scopes=["ask"]).get(f"/api/ingest-jobs/{job.pk}").status_code == 403
    # A key narrowed to another collection neither sees nor cancels the job.
    narrowed = APIClient()
    narrowed.credentials(
        **bearer(
            ApiKeyFactory(user=people["writer"], scopes=["ingest"], collections=[people["secret"]]).raw_key
        )
    )
    assert narrowed.get(f"/api/ingest-jobs/{job.pk}").status_code == 404
    assert narrowed.post(f"/api/ingest-jobs/{job.pk}/cancel").status_code == 404
    assert Document.objects.get(pk=document.pk).status == "queued"
    # Writing needs the ingest scope (or staff), as for every write.
    assert writer.post(f"/api/ingest-jobs/{job.pk}/cancel").status_code == 403
    writer_ingest = client_for(people["writer"], scopes=["ingest"])
    assert writer_ingest.post(f"/api/ingest-jobs/{job.pk}/cancel").status_code == 200
    assert Document.objects.get(pk=document.pk).status == "cancelled"


def test_schema_documents_the_job_endpoints():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in (
        "/api/ingest-jobs",
        "/api/ingest-jobs/{job_id}",
        "/api/ingest-jobs/{job_id}/cancel",
        "/api/documents/{document_id}/cancel",
    ):
        assert path in schema["paths"]
    bulk_response = schema["paths"]["/api/documents/bulk"]["post"]["responses"]["202"]
    ref = bulk_response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][ref]["properties"]) == {"documents", "job"}
    counts = schema["components"]["schemas"]["IngestJobCounts"]["properties"]
    assert set(counts) == set(Document.Status.values) and "cancelled" in counts


@pytest.mark.django_db(transaction=True)
def test_cancel_while_the_worker_embeds_writes_nothing(genapi):
    """The race: a worker has claimed the documents and is waiting on the provider when the job is
    cancelled. Its write (row lock, lease re-checked) must find nothing to write."""
    embedding_space_get_or_create_active()
    collection = CollectionFactory(slug="race")
    job, documents = ingest_job_bulk_create(
        collection=collection,
        documents=[{"title": f"R{i}", "text": f"Condenser {i} coils are rinsed yearly."} for i in range(3)],
    )
    ids = [d.pk for d in documents]
    genapi.set_knobs(latency_ms=1500)
    result = {}

    def work() -> None:
        try:
            result["done"] = documents_ingest(ids)
        finally:
            connections.close_all()

    worker = threading.Thread(target=work)
    worker.start()
    try:
        wait_for(lambda: genapi.stats()["in_flight"] > 0, timeout=30, message="the embeddings call in flight")
        assert set(Document.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"processing"}
        assert ingest_job_cancel(job) == 3
    finally:
        worker.join(timeout=60)
    assert result["done"] == {}
    assert set(Document.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"cancelled"}
    assert not Chunk.objects.filter(document_id__in=ids).exists()
    assert searchable(collection, "condenser coils") == {"vector": [], "fulltext": []}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM search_posting p JOIN ingestion_chunk c ON c.id = p.chunk_id "
            "WHERE c.document_id = ANY(%s)",
            [ids],
        )
        assert cursor.fetchone()[0] == 0
    assert ingest_job_progress(IngestJob.objects.get(pk=job.pk)).state == "cancelled"
    with pytest.raises(NothingToCancel):
        ingest_job_cancel(IngestJob.objects.create(collection=collection))  # nothing in it to stop


def test_ingest_command_makes_a_job_and_ctrl_c_cancels_it(people, tmp_path, monkeypatch):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(f"Boiler room rule {i}.")

    def interrupted(seconds):  # the user presses Ctrl-C while the bar waits (no worker runs here)
        raise KeyboardInterrupt

    monkeypatch.setattr("ingestion.management.commands.ingest.time.sleep", interrupted)
    out = StringIO()
    with pytest.raises(CommandError, match="Interrupted: job \\d+ cancelled \\(3 unfinished") as error:
        call_command("ingest", str(folder), "--collection", "kb", "--wait", stdout=out, stderr=StringIO())
    assert error.value.returncode == 130
    job = IngestJob.objects.get()
    assert (
        job.source == "cli"
        and job.submitted == 3
        and f"job {job.pk}: /api/ingest-jobs/{job.pk}" in out.getvalue()
    )
    assert ingest_job_progress(job).counts["cancelled"] == 3


@pytest.mark.django_db(transaction=True)
def test_a_cancel_chosen_as_a_deadlock_victim_is_tried_again(monkeypatch):
    """Another writer (a worker's progress update, the lease heartbeat) locks the same rows in another
    order: PostgreSQL breaks the deadlock by failing one side; when that is the cancel, it runs again."""
    from ingestion.services import jobs

    job, documents = ingest_job_bulk_create(
        collection=CollectionFactory(slug="locks"),
        documents=[{"text": "Alpha pump."}, {"text": "Beta pump."}],
    )
    first, second = sorted(d.pk for d in documents)  # the cancel locks the newest first: second, then first
    attempts = []
    once = jobs._documents_cancel_once
    monkeypatch.setattr(jobs, "_documents_cancel_once", lambda *a: attempts.append(1) or once(*a))

    def other_writer() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL deadlock_timeout = '30s'")  # the cancel's check runs first
                cursor.execute("UPDATE ingestion_document SET updated_at = now() WHERE id = %s", [first])
                locked.set()
                wait_for(
                    lambda: waiting_on_a_lock(cursor), timeout=30, interval=0.01, message="the cancel waits"
                )
                cursor.execute("UPDATE ingestion_document SET updated_at = now() WHERE id = %s", [second])
        finally:
            connections.close_all()

    def waiting_on_a_lock(cursor) -> bool:
        cursor.execute(
            "SELECT count(*) FROM pg_locks "
            "WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        )
        return cursor.fetchone()[0] > 0

    locked = threading.Event()
    thread = threading.Thread(target=other_writer)
    thread.start()
    try:
        assert locked.wait(30)
        with connection.cursor() as cursor:
            cursor.execute("SET deadlock_timeout = '2s'")
        assert ingest_job_cancel(job) == 2
    finally:
        thread.join(timeout=60)
        with connection.cursor() as cursor:
            cursor.execute("RESET deadlock_timeout")
    assert len(attempts) == 2
    assert set(Document.objects.filter(job=job).values_list("status", flat=True)) == {"cancelled"}
