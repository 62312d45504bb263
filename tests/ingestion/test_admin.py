"""The admin: multi-file upload into a collection, list with status, re-embed form."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ingestion.models import Document
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
