"""Ingest jobs with a real Celery worker: cancelling while tasks run and wait in the queue, and the
`manage.py ingest --wait` progress bar following its job to the end."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from ingestion.models import Chunk, Document, IngestJob
from ingestion.progress import ingest_job_progress
from ingestion.services.jobs import ingest_job_bulk_create, ingest_job_cancel
from ingestion.services.pipeline import INGEST_GROUP_SIZE
from ingestion.services.spaces import embedding_space_get_or_create_active
from tests.conftest import wait_for
from tests.factories import CollectionFactory
from tests.ingestion.conftest import embedding_calls

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_cancelling_a_job_mid_run_stops_running_and_queued_tasks(celery_worker_process, genapi):
    embedding_space_get_or_create_active()  # asks the provider for the model's size: not counted below
    genapi.reset_stats()
    collection = CollectionFactory(slug="stop")
    # Three tasks for a worker running two at a time: two wait on a slow provider, one waits in the queue.
    count = 2 * INGEST_GROUP_SIZE + 10
    genapi.set_knobs(latency_ms=3000)
    job, documents = ingest_job_bulk_create(
        collection=collection,
        documents=[{"title": f"D{i}", "text": f"Cooling tower {i} drift eliminators."} for i in range(count)],
    )
    ids = [d.pk for d in documents]
    wait_for(lambda: genapi.stats()["in_flight"] > 0, timeout=60, message="an embeddings call in flight")
    assert ingest_job_cancel(job) == count
    genapi.set_knobs(latency_ms=0)
    wait_for(
        lambda: celery_worker_process.log().count("succeeded") >= 3,
        timeout=120,
        message="all three tasks done",
    )
    assert set(Document.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"cancelled"}
    assert not Chunk.objects.filter(document_id__in=ids).exists()
    # The tasks that were waiting on the provider wrote nothing; the queued one never called it.
    assert embedding_calls(genapi) <= 2
    progress = ingest_job_progress(IngestJob.objects.get(pk=job.pk))
    assert (progress.state, progress.counts["cancelled"], progress.pending) == ("cancelled", count, 0)


def test_ingest_command_follows_its_job_to_the_end(celery_worker_process, genapi, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(4):
        (folder / f"note{i}.md").write_text(f"# Note {i}\n\nChiller {i} is serviced in spring.")
    out, err = StringIO(), StringIO()
    call_command(
        "ingest", str(folder), "--collection", "cli-job", "--create-collection", "--wait", "--timeout", "120",
        stdout=out, stderr=err,
    )  # fmt: skip
    job = IngestJob.objects.get(collection__slug="cli-job")
    assert "ready: 4, failed: 0" in out.getvalue() and f"job {job.pk}" in err.getvalue()
    progress = ingest_job_progress(job)
    assert (progress.state, progress.counts["ready"], progress.total) == ("finished", 4, 4)
    assert progress.tokens_used > 0
