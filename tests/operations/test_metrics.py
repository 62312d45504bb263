"""/metrics over the real stack: who may scrape it, and that requests, documents, the queue, provider
calls and search stages show up in it. Counters are summed over every process on the metrics folder
(other test processes too), so each test compares before and after."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from ingestion.models import Document
from operations.models import ProviderUsageDay
from rag_project.celery import app
from tests.factories import ApiKeyFactory, bearer
from tests.operations.conftest import sample, scrape

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client()


def search(client, caller, query="rotate a signing key", **extra):
    return client.post(
        "/api/search",
        data=json.dumps({"query": query, "top_k": 3}),
        content_type="application/json",
        **bearer(caller.raw_key),
        **extra,
    )


def test_metrics_answer_loopback_only_without_a_token(client):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    # A forwarded header does not make a remote client local.
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403


def test_metrics_need_the_token_when_one_is_set(client, settings):
    settings.RAG_METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert ok.status_code == 200
    assert "citable_documents" in ok.content.decode()


def test_a_search_shows_in_request_provider_and_stage_metrics(kb, client, genapi, settings):
    caller = ApiKeyFactory()
    before = scrape(client)
    model = settings.GENAPI_RERANK_MODEL
    response = search(client, caller)
    assert response.status_code == 200, response.content
    after = scrape(client)

    route = {"route": "/api/search", "method": "POST", "status": "200"}
    assert sample(after, "citable_http_request_seconds_count", **route) == (
        sample(before, "citable_http_request_seconds_count", **route) + 1
    )
    for endpoint, name in (("rerank", model), ("embeddings", settings.GENAPI_EMBEDDING_MODEL)):
        ok = {"endpoint": endpoint, "model": name, "outcome": "200"}
        assert sample(after, "citable_provider_requests_total", **ok) >= (
            sample(before, "citable_provider_requests_total", **ok) + 1
        ), endpoint
        tokens = {"endpoint": endpoint, "model": name, "direction": "input"}
        assert sample(after, "citable_provider_tokens_total", **tokens) > sample(
            before, "citable_provider_tokens_total", **tokens
        )
    for stage in ("total", "rerank", "fulltext"):
        labels = {"kind": "search", "stage": stage}
        assert sample(after, "citable_search_stage_seconds_count", **labels) == (
            sample(before, "citable_search_stage_seconds_count", **labels) + 1
        ), stage
    # The scrape itself is a request with its own route.
    assert sample(after, "citable_http_request_seconds_count", route="/metrics", method="GET") >= 1

    # The same calls, per day, in the table the admin's cost page reads (written when the request ended).
    usage = ProviderUsageDay.objects.get(endpoint="rerank", model=model)
    assert usage.calls >= 1 and usage.input_tokens > 0


def test_429s_are_counted_by_endpoint_and_model(kb, client, genapi, settings):
    caller = ApiKeyFactory()
    model = settings.GENAPI_RERANK_MODEL
    before = scrape(client)
    genapi.set_knobs(fail_next={"count": 1, "status": 429, "endpoint": "rerank"})
    assert search(client, caller, query="refunds billing team").status_code == 200
    after = scrape(client)
    labels = {"endpoint": "rerank", "model": model}
    assert sample(after, "citable_provider_rate_limited_total", **labels) == (
        sample(before, "citable_provider_rate_limited_total", **labels) + 1
    )
    assert sample(after, "citable_provider_requests_total", outcome="429", **labels) == (
        sample(before, "citable_provider_requests_total", outcome="429", **labels) + 1
    )
    assert ProviderUsageDay.objects.get(endpoint="rerank", model=model).rate_limited == 1


def test_documents_by_state_and_queue_depth_come_from_the_database_and_broker(kb, client, settings):
    Document.objects.filter(pk=kb["billing"].pk).update(status="failed", error="test")
    # A queue of its own, so nothing else (no worker) takes the message while it is counted.
    queue = f"citable-test-metrics-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    text = scrape(client)
    assert sample(text, "citable_broker_up") == 1
    assert sample(text, "citable_queue_depth", queue=queue) == 0
    for state in ("queued", "processing", "ready", "failed"):
        assert sample(text, "citable_documents", state=state) == Document.objects.filter(status=state).count()
    assert sample(text, "citable_documents", state="failed") >= 1

    app.send_task("ingestion.documents_sweep_stale", queue=queue)
    app.send_task("ingestion.documents_sweep_stale", queue=queue)
    try:
        assert sample(scrape(client), "citable_queue_depth", queue=queue) == 2
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(queue)


def test_the_response_carries_the_request_id(kb, client):
    caller = ApiKeyFactory()
    given = search(client, caller, HTTP_X_REQUEST_ID="proxy-id-42")
    assert given["X-Request-ID"] == "proxy-id-42"
    made = search(client, caller)
    assert len(made["X-Request-ID"]) == 32
    # An id that could break a log line or a header is replaced, not echoed.
    bad = search(client, caller, HTTP_X_REQUEST_ID="x" * 300)
    assert bad["X-Request-ID"] != "x" * 300 and len(bad["X-Request-ID"]) == 32


def test_a_busy_web_process_folds_its_usage_at_most_every_few_seconds(kb, client, genapi, settings):
    """With RAG_PROVIDER_USAGE_FLUSH_SECONDS the request that ends after the interval folds what the
    requests before it used; the ones in between leave the row alone (nothing is lost, only later)."""
    from operations import provider_usage

    settings.RAG_PROVIDER_USAGE_FLUSH_SECONDS = 3600.0
    model = settings.GENAPI_RERANK_MODEL
    provider_usage.provider_usage_flush()
    provider_usage._last_flush = float("-inf")  # the next request's end folds
    caller = ApiKeyFactory()
    assert search(client, caller).status_code == 200
    calls_after_first = ProviderUsageDay.objects.get(endpoint="rerank", model=model).calls
    assert search(client, caller, query="refunds billing team").status_code == 200
    assert search(client, caller, query="cafeteria hours").status_code == 200
    # Within the interval: the row did not move, the two searches' calls wait in the process's tally.
    assert ProviderUsageDay.objects.get(endpoint="rerank", model=model).calls == calls_after_first
    provider_usage._last_flush = float("-inf")
    assert search(client, caller, query="signing keys").status_code == 200
    assert ProviderUsageDay.objects.get(endpoint="rerank", model=model).calls == calls_after_first + 3
