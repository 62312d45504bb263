"""The admin: multi-file upload into a collection, list with status, re-embed form."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.models import Document, IngestJob
from ingestion.services.documents import document_create
from tests.factories import CollectionFactory

pytestmark = pytest.mark.django_db


def test_admin_uploads_many_files_and_lists_them(admin_client):
    collection = CollectionFactory(slug="docs")
    assert admin_client.get("/admin/ingestion/document/upload/").status_code == 200
    files = [
        SimpleUploadedFile("a.txt", b"Alpha text."),
        SimpleUploadedFile("b.md", b"# B\n\nBeta."),
        SimpleUploadedFile("c.bin", bytes(range(256)) * 10),
    ]
    response = admin_client.post(
        "/admin/ingestion/document/upload/", {"collection": collection.pk, "files": files}
    )
    assert response.status_code == 302
    assert sorted(Document.objects.values_list("title", "status")) == [
        ("a.txt", "queued"),
        ("b.md", "queued"),
        ("c.bin", "failed"),
    ]
    listing = admin_client.get("/admin/ingestion/document/")
    assert listing.status_code == 200 and b"Unknown file type" in listing.content
    assert admin_client.get("/admin/ingestion/embeddingspace/reembed/").status_code == 200
    assert admin_client.get("/admin/ingestion/collection/add/").status_code == 200


def test_admin_upload_is_a_job_with_counts_that_can_be_cancelled(admin_client):
    collection = CollectionFactory(slug="jobs")
    files = [SimpleUploadedFile("a.txt", b"Alpha text."), SimpleUploadedFile("c.bin", bytes(range(256)) * 10)]
    response = admin_client.post(
        "/admin/ingestion/document/upload/", {"collection": collection.pk, "files": files}
    )
    job = IngestJob.objects.get()
    assert (
        response.status_code == 302 and response["Location"] == f"/admin/ingestion/ingestjob/{job.pk}/change/"
    )
    assert (job.source, job.submitted, job.documents.count()) == ("admin", 2, 2)
    listing = admin_client.get("/admin/ingestion/ingestjob/").content.decode()
    assert "1 queued, 1 failed" in listing and "running" in listing
    page = admin_client.get(f"/admin/ingestion/ingestjob/{job.pk}/change/").content.decode()
    assert "1 queued, 1 failed" in page and f"?job__id__exact={job.pk}" in page
    # The link to the job's documents filters the document list.
    documents = admin_client.get(f"/admin/ingestion/document/?job__id__exact={job.pk}")
    assert documents.status_code == 200 and "a.txt" in documents.content.decode()
    admin_client.post(
        "/admin/ingestion/ingestjob/", {"action": "cancel_selected", "_selected_action": [job.pk], "index": 0}
    )
    assert dict(job.documents.values_list("title", "status")) == {"a.txt": "cancelled", "c.bin": "failed"}
    assert "1 failed, 1 cancelled" in admin_client.get("/admin/ingestion/ingestjob/").content.decode()


def test_admin_cancels_selected_documents(admin_client):
    collection = CollectionFactory(slug="some")
    queued, _ = document_create(collection=collection, title="Q", text="Queued words.")
    ready = Document.objects.create(
        collection=collection, title="R", text="words", content_sha256="r" * 64, status="ready"
    )
    admin_client.post(
        "/admin/ingestion/document/",
        {"action": "cancel_selected", "_selected_action": [queued.pk, ready.pk], "index": 0},
    )
    assert dict(Document.objects.values_list("title", "status")) == {"Q": "cancelled", "R": "ready"}
