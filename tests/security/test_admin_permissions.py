"""Admin actions declare the permissions they need: a view-only staff account can look, not change."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from ingestion.models import Collection, Document, EmbeddingSpace
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def staff_with(*codenames: str, username: str = "viewer"):
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="ingestion", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def document():
    collection = Collection.objects.create(name="Public", slug="public", is_public=True)
    return Document.objects.create(
        collection=collection, title="Doc", text="words", content_sha256="x" * 64, status="ready"
    )


def run_action(client, action: str, pk: int, model: str = "document"):
    return client.post(f"/admin/ingestion/{model}/", {"action": action, "_selected_action": [pk], "index": 0})


@pytest.mark.parametrize("action", ["delete_with_chunks", "reingest_selected"])
def test_view_only_staff_cannot_run_document_actions(document, action):
    client = staff_with("view_document", "view_collection")
    listing = client.get("/admin/ingestion/document/")
    assert listing.status_code == 200
    assert action not in listing.content.decode()
    run_action(client, action, document.pk)
    document.refresh_from_db()
    assert Document.objects.filter(pk=document.pk).exists()
    assert document.status == "ready" and document.attempts == 0


def test_staff_with_the_permission_can_run_them(document, genapi):
    client = staff_with("view_document", "change_document", "delete_document")
    document.collection.writer_users.add(client.user)  # and write access to the collection
    listing = client.get("/admin/ingestion/document/").content.decode()
    assert "delete_with_chunks" in listing and "reingest_selected" in listing
    run_action(client, "reingest_selected", document.pk)
    document.refresh_from_db()
    assert document.status == "queued"
    run_action(client, "delete_with_chunks", document.pk)
    assert not Document.objects.filter(pk=document.pk).exists()


def test_reembed_is_for_superusers_only(genapi, monkeypatch):
    from ingestion import admin as ingestion_admin

    started = []
    monkeypatch.setattr(ingestion_admin, "embedding_space_build", lambda *a: started.append(a))
    space = EmbeddingSpace.objects.create(provider_base_url="x", model="m", dimensions=8)
    client = staff_with("view_embeddingspace", "change_embeddingspace")
    assert "reembed_with_this_model" not in client.get("/admin/ingestion/embeddingspace/").content.decode()
    run_action(client, "reembed_with_this_model", space.pk, "embeddingspace")
    client.post("/admin/ingestion/embeddingspace/reembed/", {"model": "other"})
    assert started == []


def test_upload_needs_the_add_permission():
    Collection.objects.create(name="Public", slug="public", is_public=True)
    client = staff_with("view_document", "change_document")
    response = client.get("/admin/ingestion/document/upload/")
    assert response.status_code == 302


def test_only_job_changers_of_a_writable_collection_cancel_jobs(document):
    from ingestion.models import IngestJob

    job = IngestJob.objects.create(collection=document.collection)
    Document.objects.filter(pk=document.pk).update(job=job, status="queued")
    viewer = staff_with("view_ingestjob", "view_collection")
    listing = viewer.get("/admin/ingestion/ingestjob/")
    assert listing.status_code == 200 and "cancel_selected" not in listing.content.decode()
    run_action(viewer, "cancel_selected", job.pk, "ingestjob")
    assert Document.objects.get(pk=document.pk).status == "queued"
    changer = staff_with("view_ingestjob", "change_ingestjob", username="changer")
    # May change jobs, but not this collection (public: readable, not writable): nothing is cancelled.
    run_action(changer, "cancel_selected", job.pk, "ingestjob")
    assert Document.objects.get(pk=document.pk).status == "queued"
    document.collection.writer_users.add(changer.user)
    run_action(changer, "cancel_selected", job.pk, "ingestjob")
    assert Document.objects.get(pk=document.pk).status == "cancelled"
