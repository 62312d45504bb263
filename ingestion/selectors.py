"""Ingestion reads. Every read is narrowed to the caller's readable collections (accounts.selectors)."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from accounts.selectors import collection_ids_readable, collections_readable
from ingestion.models import Chunk, Collection, Document, EmbeddingSpace


def collection_list(user, api_key=None) -> QuerySet[Collection]:
    return collections_readable(user, api_key).order_by("name")


def collection_get_readable(slug: str, user, api_key=None) -> Collection | None:
    return collections_readable(user, api_key).filter(slug=slug).first()


def document_list(
    user, api_key=None, *, collection_slug: str | None = None, status: str | None = None
) -> QuerySet[Document]:
    documents = Document.objects.filter(collection_id__in=collection_ids_readable(user, api_key))
    if collection_slug:
        documents = documents.filter(collection__slug=collection_slug)
    if status:
        documents = documents.filter(status=status)
    return documents.select_related("collection").defer("text").order_by("-created_at", "-id")


def document_get_readable(document_id: int, user, api_key=None) -> Document | None:
    """The document if the caller may read its collection; None (a 404) otherwise."""
    return (
        Document.objects.filter(pk=document_id, collection_id__in=collection_ids_readable(user, api_key))
        .select_related("collection")
        .annotate(chunk_count=Count("chunks"))
        .first()
    )


def chunk_list(document: Document) -> QuerySet[Chunk]:
    return Chunk.objects.filter(document=document).defer("search_vector").order_by("ordinal")


def embedding_space_active() -> EmbeddingSpace | None:
    """The space search uses (None before the first ingestion created it)."""
    return EmbeddingSpace.objects.filter(is_active=True).first()


def documents_status_counts(document_ids: list[int]) -> dict[str, int]:
    rows = Document.objects.filter(pk__in=document_ids).values_list("status").annotate(n=Count("id"))
    return {status: n for status, n in rows}
