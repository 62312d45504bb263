"""A request id follows a document from the API into its Celery task's log lines (JSON), and the task's
run time reaches /metrics from the worker process. A real worker process, the stand-in over a socket."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from ingestion.models import Document
from ingestion.services.spaces import embedding_space_get_or_create_active
from tests.conftest import wait_for
from tests.factories import ApiKeyFactory, CollectionFactory, UserFactory, bearer
from tests.operations.conftest import sample, scrape

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # celery's banner is not a log record
        if isinstance(entry, dict):
            lines.append(entry)
    return lines


def test_the_request_id_reaches_the_task_log_and_the_task_reaches_metrics(celery_worker_process, genapi):
    collection = CollectionFactory(slug="rid", is_public=True)
    embedding_space_get_or_create_active()
    caller = ApiKeyFactory(user=UserFactory(is_superuser=True, is_staff=True), scopes=["ingest"])
    client = Client()
    before = scrape(client)
    response = client.post(
        "/api/documents",
        data=json.dumps({"collection": collection.slug, "title": "Boilers", "text": "Boilers need valves."}),
        content_type="application/json",
        HTTP_X_REQUEST_ID="upload-7f3a",
        **bearer(caller.raw_key),
    )
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "upload-7f3a"
    document_id = response.json()["id"]
    wait_for(
        lambda: Document.objects.get(pk=document_id).status == "ready", timeout=90, message="document ready"
    )

    def our_task_lines():
        """The lines of the task that ingested this document (the queue may also hold messages that
        earlier tests of this session published without a worker: other tasks, no request id)."""
        entries = [e for e in json_lines(celery_worker_process.log()) if e.get("task_name")]
        ours = {e["task_id"] for e in entries if e["message"].endswith(f"started (args [[{document_id}]])")}
        return [e for e in entries if e["task_id"] in ours]

    finished = "task ingestion.documents_ingest finished"
    lines = wait_for(
        lambda: [e for e in our_task_lines() if e["message"].startswith(finished)] and our_task_lines(),
        timeout=30,
        message="the task's finished line",
    )
    # Every line the task logged carries the upload's id (celery's own lines included).
    assert {entry["request_id"] for entry in lines} == {"upload-7f3a"}
    assert {entry["task_name"] for entry in lines} == {"ingestion.documents_ingest"}
    assert any(entry["logger"] == "celery.app.trace" for entry in lines)

    labels = {"task": "ingestion.documents_ingest", "state": "SUCCESS"}
    after = scrape(client)
    assert sample(after, "citable_celery_task_seconds_count", **labels) >= (
        sample(before, "citable_celery_task_seconds_count", **labels) + 1
    )
