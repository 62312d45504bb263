"""Celery tasks: primary keys in, a service call out. Idempotent under acks_late (the services claim
documents with a lease, so a redelivered task finds nothing left to do).

Tasks import the services; the services import this module only inside the functions that enqueue.
Task functions end in `_task` so they never share a name with the service they call.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from genapi import GenAPIError
from ingestion.models import EmbeddingSpace
from ingestion.services.pipeline import (
    database_reset,
    documents_ingest,
    documents_sweep_stale,
)
from ingestion.services.spaces import (
    RETIRE_GRACE_SECONDS,
    embedding_space_activate,
    embedding_space_retire,
)

logger = logging.getLogger(__name__)


class TransientProviderError(Exception):
    """A retryable provider error, re-raised so Celery's autoretry backs off and tries again."""


class DatabaseUnavailableError(Exception):
    """The database went away mid-task (a restart, a failover): retried like a provider outage."""


# Connection-level failures only; an IntegrityError or a bad query is a bug and is not retried.
_DATABASE_DOWN = (OperationalError, InterfaceError)

_RETRY = dict(
    bind=True,
    autoretry_for=(TransientProviderError, DatabaseUnavailableError),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=settings.CELERY_TASK_MAX_RETRIES,
    acks_late=True,
)


@shared_task(name="ingestion.documents_ingest", **_RETRY)
def documents_ingest_task(self, document_ids: list[int]) -> dict:
    """Ingest documents together (one embeddings call and one write serve all of them). Every failure is
    written by the service under the lease this attempt took: after the last retry, or a soft time limit,
    documents another worker has taken over meanwhile are left to it."""
    document_ids = list(document_ids)
    last = self.request.retries >= self.max_retries
    try:
        statuses = documents_ingest(document_ids, final_attempt=self.max_retries + 1 if last else None)
        return {str(k): v for k, v in statuses.items()}
    except GenAPIError as exc:
        if not exc.retryable:  # the service already failed the documents
            raise
        raise TransientProviderError(str(exc)) from exc
    except _DATABASE_DOWN as exc:
        # The service gave the documents back when it could; else their lease lapses and the sweeper
        # re-queues them. Either way a retry (or the sweeper's new message) finishes them.
        database_reset()
        if last:
            raise
        raise DatabaseUnavailableError(str(exc)) from exc
    except SoftTimeLimitExceeded:
        return {}  # the service failed the documents it still held
    except Exception:
        logger.exception("ingestion of %s failed", document_ids)  # and the service failed them
        return {}


@shared_task(name="ingestion.documents_sweep_stale")
def documents_sweep_stale_task() -> dict:
    return documents_sweep_stale()


@shared_task(name="ingestion.embedding_space_build", **_RETRY)
def embedding_space_build_task(self, space_id: int) -> int | None:
    space = EmbeddingSpace.objects.filter(pk=space_id, status=EmbeddingSpace.Status.BUILDING).first()
    if space is None:
        return None
    try:
        embedding_space_activate(space, retire_after=RETIRE_GRACE_SECONDS)
    except GenAPIError as exc:
        if exc.retryable and self.request.retries < self.max_retries:
            raise TransientProviderError(str(exc)) from exc
        raise
    return space.pk


@shared_task(name="ingestion.embedding_space_retire")
def embedding_space_retire_task(space_id: int) -> None:
    space = EmbeddingSpace.objects.filter(pk=space_id, is_active=False).first()
    if space is not None:
        embedding_space_retire(space)
