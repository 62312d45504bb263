"""Collections: named groups of documents, the unit of read permission."""

from __future__ import annotations

from ingestion.models import Collection


def collection_create(
    *, name: str, slug: str, description: str = "", is_public: bool = False, created_by=None
) -> Collection:
    """A new collection; whoever creates it becomes its first writer (readers and others are added in
    the admin)."""
    collection = Collection.objects.create(name=name, slug=slug, description=description, is_public=is_public)
    if created_by is not None:
        collection.writer_users.add(created_by)
    return collection
