"""Celery tasks: primary keys in, a service call out. Idempotent under acks_late (the services claim
documents with a lease, so a redelivered task finds nothing left to do)."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from ingestion import services

logger = logging.getLogger(__name__)


class TransientProviderError(Exception):
    """A retryable provider error, re-raised so Celery's autoretry backs off and tries again."""


def _ingest(task, document_ids: list[int]) -> dict:
    from genapi import GenAPIError

    try:
        return {str(k): v for k, v in services.documents_ingest(document_ids).items()}
    except GenAPIError as exc:
        if not exc.retryable:  # the service already failed the documents
            raise
        if task.request.retries >= task.max_retries:
            services.documents_fail(
                document_ids,
                f"The provider stayed unavailable after {task.max_retries + 1} attempts: {exc}",
            )
            return {}
        raise TransientProviderError(str(exc)) from exc
    except SoftTimeLimitExceeded:
        services.documents_fail(
            list(document_ids),
            f"Ingestion took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s and was stopped.",
        )
        return {}
    except Exception as exc:
        logger.exception("ingestion of %s failed", document_ids)
        services.documents_fail(document_ids, f"Internal error during ingestion: {type(exc).__name__}: {exc}")
        return {}


_RETRY = dict(
    bind=True,
    autoretry_for=(TransientProviderError,),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=settings.CELERY_TASK_MAX_RETRIES,
    acks_late=True,
)


@shared_task(name="ingestion.document_ingest", **_RETRY)
def document_ingest(self, document_id: int) -> dict:
    return _ingest(self, [document_id])


@shared_task(name="ingestion.documents_ingest", **_RETRY)
def documents_ingest(self, document_ids: list[int]) -> dict:
    """Several documents in one go (bulk ingestion): one embeddings call and one write for all of them."""
    return _ingest(self, list(document_ids))


@shared_task(name="ingestion.documents_sweep_stale")
def documents_sweep_stale() -> dict:
    return services.documents_sweep_stale()


@shared_task(name="ingestion.embedding_space_build", **_RETRY)
def embedding_space_build(self, space_id: int) -> int | None:
    from genapi import GenAPIError
    from ingestion.models import EmbeddingSpace

    space = EmbeddingSpace.objects.filter(pk=space_id, status=EmbeddingSpace.Status.BUILDING).first()
    if space is None:
        return None
    try:
        services.embedding_space_activate(space, retire_after=services.RETIRE_GRACE_SECONDS)
    except GenAPIError as exc:
        if exc.retryable and self.request.retries < self.max_retries:
            raise TransientProviderError(str(exc)) from exc
        raise
    return space.pk


@shared_task(name="ingestion.embedding_space_retire")
def embedding_space_retire(space_id: int) -> None:
    from ingestion.models import EmbeddingSpace

    space = EmbeddingSpace.objects.filter(pk=space_id, is_active=False).first()
    if space is not None:
        services.embedding_space_retire(space)
