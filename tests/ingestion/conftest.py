from __future__ import annotations

import pytest

from tests.factories import CollectionFactory


@pytest.fixture
def collection(db):
    return CollectionFactory(slug="handbook")


def embedding_calls(server) -> int:
    return server.stats()["requests"].get("embeddings", 0)
