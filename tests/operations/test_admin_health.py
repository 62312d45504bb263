"""The admin's ingestion health page and provider cost per day, over the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from genapi import AttemptRecord, UsageRecord
from ingestion.models import Document
from operations.models import ProviderUsageDay
from operations.provider_usage import on_attempt, on_usage, provider_usage_flush
from tests.factories import CollectionFactory, DocumentFactory, UserFactory

pytestmark = pytest.mark.django_db

PAGE = "/admin/operations/ingestionhealth/"


@pytest.fixture
def documents(space):
    hr = CollectionFactory(slug="hr")
    public = CollectionFactory(slug="pub", is_public=True)
    stale = timezone.now() - timedelta(hours=1)
    stuck = DocumentFactory(collection=public, passages=["a"], space=space, title="Stuck upload")
    Document.objects.filter(pk=stuck.pk).update(status="processing", processing_started_at=stale)
    fresh = DocumentFactory(collection=public, passages=["b"], space=space, title="Fresh upload")
    Document.objects.filter(pk=fresh.pk).update(status="queued")
    for i, collection in enumerate([public, public, hr]):
        failed = DocumentFactory(collection=collection, passages=[f"c{i}"], space=space, title=f"Broken {i}")
        Document.objects.filter(pk=failed.pk).update(status="failed", error="Unsupported file type: x/y")
    hidden = DocumentFactory(collection=hr, passages=["d"], space=space, title="Secret stuck")
    Document.objects.filter(pk=hidden.pk).update(status="queued", updated_at=stale)
    return {"public": public, "hr": hr}


def test_the_page_shows_stuck_documents_failures_by_reason_and_throughput(admin_client, documents):
    page = admin_client.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Stuck upload" in html and "Secret stuck" in html
    assert "Fresh upload" not in html  # queued a moment ago: not stuck
    assert "Unsupported file type: x/y" in html
    failures = page.context["health"]["failure_reasons"]
    assert failures[0]["reason"] == "Unsupported file type: x/y" and failures[0]["documents"] == 3
    assert page.context["health"]["by_state"]["failed"] == 3
    assert page.context["health"]["stuck_count"] == 2
    # The admin index links to it.
    assert PAGE in admin_client.get("/admin/").content.decode()


def test_staff_see_only_what_they_may_read_and_no_cost(documents):
    staff = UserFactory(is_staff=True)
    client = Client()
    client.force_login(staff)
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Stuck upload" in html
    assert "Secret stuck" not in html
    assert page.context["health"]["by_state"]["failed"] == 2
    assert page.context["usage_days"] is None
    assert client.get("/admin/operations/providerusageday/").status_code == 403


def test_usage_is_folded_per_day_and_priced(admin_client, settings):
    settings.RAG_PROVIDER_PRICES = {"priced-model": [2.0, 6.0]}
    # Start from nothing: calls made by earlier tests' fixtures in this process may still be pending.
    provider_usage_flush()
    ProviderUsageDay.objects.all().delete()
    for _ in range(3):
        on_usage(UsageRecord("priced-model", "chat/completions", 1_000_000, 500_000, 120.0, 0))
    on_attempt(AttemptRecord("priced-model", "chat/completions", "429", 5.0))
    on_attempt(AttemptRecord("priced-model", "chat/completions", "503", 5.0))
    on_usage(UsageRecord("mystery-model", "embeddings", 10, 0, 3.0, 0))
    assert provider_usage_flush() == 2
    on_usage(UsageRecord("priced-model", "chat/completions", 1_000_000, 500_000, 120.0, 0))
    provider_usage_flush()

    row = ProviderUsageDay.objects.get(model="priced-model")
    assert (row.calls, row.input_tokens, row.output_tokens) == (4, 4_000_000, 2_000_000)
    assert (row.rate_limited, row.errors) == (1, 1)
    page = admin_client.get(PAGE)
    day = page.context["usage_days"][0]
    assert day["unpriced"] is True  # mystery-model has no price
    # 4 M input at 2 EUR + 2 M output at 6 EUR.
    assert float(day["cost"]) == pytest.approx(20.0)
    assert "unpriced" in page.content.decode()
    listing = admin_client.get("/admin/operations/providerusageday/")
    assert listing.status_code == 200 and "20.0000" in listing.content.decode()


def test_a_flush_that_fails_raises_no_warning_from_psycopg(caplog):
    """At exit (quiet) a failed flush says nothing and raises nothing. (The flush used executemany, which
    psycopg runs in pipeline mode and whose aborted pipeline it logs itself when the connection also fails
    on the way out; this test's failure, a missing table, did not make psycopg log even then.)"""
    import logging

    from django.db import connection

    on_usage(UsageRecord("some-model", "embeddings", 10, 0, 3.0, 0))
    with connection.cursor() as cursor:  # the table gone (undone with the test's transaction)
        cursor.execute("ALTER TABLE operations_providerusageday RENAME TO operations_providerusageday_gone")
    with caplog.at_level(logging.DEBUG, logger="psycopg"):
        assert provider_usage_flush(quiet=True) == 0
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("psycopg")]
