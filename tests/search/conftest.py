"""Search fixtures: rows built by tests/factories.py (vectors embedded by the stand-in in the active
space), independent of the ingestion pipeline."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from ingestion.models import EmbeddingSpace
from tests.factories import CollectionFactory, DocumentFactory, active_space


@pytest.fixture(autouse=True)
def _clean_cache():
    # Throttle counters live in the cache; every test starts from zero.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def space(db, genapi) -> EmbeddingSpace:
    return active_space()


@pytest.fixture
def kb(space):
    """A small knowledge base: three documents in one public collection, one in a private collection."""
    public = CollectionFactory(slug="handbook", is_public=True)
    private = CollectionFactory(slug="hr-private")
    keys = DocumentFactory(
        collection=public,
        passages=[
            "Signing keys are rotated every ninety days by the platform team.",
            "To rotate a signing key, run the rotate-keys command and publish the new public key.",
            "Old signing keys stay valid for verification during a grace period of seven days.",
        ],
        space=space,
        title="Key management",
        metadata={"team": "platform", "lang": "en"},
        pages=[1, 1, 2],
    )
    billing = DocumentFactory(
        collection=public,
        passages=[
            "Invoices are sent on the first business day of each month.",
            "Refunds are processed by the billing team within ten working days.",
        ],
        space=space,
        title="Billing FAQ",
        metadata={"team": "billing"},
        mime_type="text/markdown",
    )
    lunch = DocumentFactory(
        collection=public,
        passages=[
            "The cafeteria serves lunch from noon until two o'clock.",
            "Vegetarian dishes are available daily.",
        ],
        space=space,
        title="Cafeteria",
        metadata={"team": "facilities"},
        mime_type="application/pdf",
    )
    salaries = DocumentFactory(
        collection=private,
        passages=["Salary reviews happen every March; the signing bonus policy is confidential."],
        space=space,
        title="Compensation",
    )
    return {"public": public, "private": private, "keys": keys, "billing": billing, "lunch": lunch,
            "salaries": salaries}  # fmt: skip
