"""Ingest jobs: a bulk upload as one thing to follow and stop. Creating one, cancelling it or one document.

Cancelling is safe against a worker that is mid-task: the cancel locks the documents' rows, and only those
still `queued` or `processing` become `cancelled`, losing their passages and vectors in the same transaction.
A worker writes its results under the same row lock and only while its lease holds (`pipeline`), so either
it committed first (the document is `ready` and the cancel leaves it be) or it finds the document cancelled
and writes nothing. A task still in the queue claims only `queued` documents: for a cancelled one it is a
no-op.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import OperationalError, transaction
from django.utils import timezone

from ingestion.models import PENDING_STATES, Collection, Document, IngestJob
from ingestion.services.documents import documents_bulk_create
from ingestion.services.errors import IngestionError
from ingestion.services.pipeline import chunks_delete


class NothingToCancel(IngestionError):
    """The document or job already finished (ready or failed): there is nothing left to stop."""


def ingest_job_create(
    *, collection: Collection, created_by=None, source: str = IngestJob.Source.API, submitted: int = 0
) -> IngestJob:
    """A job to link an upload's documents to (create it in the upload's transaction)."""
    return IngestJob.objects.create(
        collection=collection, created_by=created_by, source=source, submitted=submitted
    )


@transaction.atomic
def ingest_job_bulk_create(
    *, collection: Collection, documents: list[dict], created_by=None, source: str = IngestJob.Source.API
) -> tuple[IngestJob, list[Document]]:
    """`documents_bulk_create` as a job: the job and its documents commit together."""
    job = ingest_job_create(
        collection=collection, created_by=created_by, source=source, submitted=len(documents)
    )
    stored = documents_bulk_create(collection=collection, documents=documents, created_by=created_by, job=job)
    return job, stored


# A cancel that PostgreSQL picked as a deadlock's victim is tried again this many times.
DEADLOCK_ATTEMPTS = 3


def _deadlocked(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"  # deadlock_detected


def documents_cancel(document_ids: Iterable[int], *, reason: str) -> list[int]:
    """Cancel those of the documents still queued or processing; their passages and vectors go with it.
    Returns the ids cancelled.

    Other writers lock the same rows in their own order (a worker's progress update, the lease heartbeat),
    so PostgreSQL may break a deadlock by failing this transaction: it is then simply tried again (inside
    a caller's transaction this is a savepoint, rolled back alone)."""
    document_ids = list(document_ids)
    for attempt in range(DEADLOCK_ATTEMPTS):
        try:
            return _documents_cancel_once(document_ids, reason)
        except OperationalError as exc:
            if not _deadlocked(exc) or attempt == DEADLOCK_ATTEMPTS - 1:
                raise
    return []


def _documents_cancel_once(document_ids: list[int], reason: str) -> list[int]:
    now = timezone.now()
    with transaction.atomic():
        # The rows are locked in the model's default order, the order the worker's final write locks them
        # in (`pipeline._results_write`), so a cancel and a write never wait on each other crosswise.
        ids = list(
            Document.objects.select_for_update()
            .filter(pk__in=list(document_ids), status__in=PENDING_STATES)
            .values_list("pk", flat=True)
        )
        if not ids:
            return []
        chunks_delete(ids)
        Document.objects.filter(pk__in=ids).update(
            status=Document.Status.CANCELLED,
            error=reason[:4000],
            processing_started_at=None,
            chunks_embedded=0,
            updated_at=now,
        )
    return ids


def _who(user) -> str:
    return f" by {user.get_username()}" if user is not None else ""


def document_cancel(document: Document, *, cancelled_by=None) -> Document:
    """Stop one document's ingestion. Cancelling a cancelled document again changes nothing; a ready or
    failed one raises `NothingToCancel`."""
    documents_cancel([document.pk], reason=f"Cancelled{_who(cancelled_by)}.")
    document.refresh_from_db()
    if document.status != Document.Status.CANCELLED:
        raise NothingToCancel(f"The document is {document.status}; there is nothing to cancel.")
    return document


def ingest_job_cancel(job: IngestJob, *, cancelled_by=None) -> int:
    """Cancel every document of the job not finished yet; the job ends `cancelled`. Returns how many
    documents were cancelled. A finished job raises `NothingToCancel`; a cancelled one changes nothing."""
    with transaction.atomic():
        job = IngestJob.objects.select_for_update().get(pk=job.pk)
        pending = list(
            Document.objects.filter(job=job, status__in=PENDING_STATES).values_list("pk", flat=True)
        )
        if job.cancelled_at is not None and not pending:
            return 0
        if not pending:
            raise NothingToCancel("The job has finished; there is nothing to cancel.")
        cancelled = documents_cancel(pending, reason=f"Cancelled with job {job.pk}{_who(cancelled_by)}.")
        if not cancelled:  # they all finished between the two statements
            raise NothingToCancel("The job has finished; there is nothing to cancel.")
        if job.cancelled_at is None:
            job.cancelled_at, job.cancelled_by = timezone.now(), cancelled_by
            job.save(update_fields=["cancelled_at", "cancelled_by"])
    return len(cancelled)
