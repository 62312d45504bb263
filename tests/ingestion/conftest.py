from __future__ import annotations

import pytest


@pytest.fixture
def collection(db):
    from ingestion.models import Collection

    return Collection.objects.create(name="Handbook", slug="handbook")


def embedding_calls(server) -> int:
    return server.stats()["requests"].get("embeddings", 0)
