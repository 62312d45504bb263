"""Collections: named groups of documents, the unit of read permission."""

from __future__ import annotations

from ingestion.models import Collection


def collection_create(*, name: str, slug: str, description: str = "", is_public: bool = False) -> Collection:
    return Collection.objects.create(name=name, slug=slug, description=description, is_public=is_public)
