"""Reading a collection does not let you change it: writers are chosen per collection (users or groups),
every write path (API upload, bulk, PUT, DELETE, re-ingest; admin actions, forms and upload) checks
`collections_writable`, and a document records who uploaded and who last replaced it. Scopes decide what
a key may read: passage text needs `search`."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from ingestion.models import Collection, Document
from ingestion.selectors import collections_readable, collections_writable
from tests.factories import ApiKeyFactory, CollectionFactory, DocumentFactory, UserFactory, bearer

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(genapi):
    owner = UserFactory(username="owner")
    editor = UserFactory(username="editor", groups=["editors"])
    reader = UserFactory(username="reader", is_staff=True)  # staff with the ingest scope, a reader only
    kb = CollectionFactory(slug="kb", is_public=True, writer_users=[owner], writer_groups=["editors"])
    document = DocumentFactory(collection=kb, created_by=owner, passages=("Original leave policy text.",))
    return {"owner": owner, "editor": editor, "reader": reader, "kb": kb, "document": document}


def api(user, scopes=("ingest", "search"), collections=None) -> Client:
    key = ApiKeyFactory(user=user, scopes=list(scopes), collections=collections)
    return Client(**bearer(key.raw_key))


def attempts(client: Client, document: Document) -> dict[str, int]:
    """Every write path once; the status code of each."""
    json = "application/json"
    return {
        "upload": client.post(
            "/api/documents", {"collection": "kb", "text": "Planted text."}, json
        ).status_code,
        "upload-file": client.post(
            "/api/documents", {"collection": "kb", "file": _named("x.txt", b"Planted file.")}
        ).status_code,
        "bulk": client.post(
            "/api/documents/bulk", {"collection": "kb", "documents": [{"text": "Planted bulk."}]}, json
        ).status_code,
        "put": client.put(f"/api/documents/{document.pk}", {"text": "Overwritten."}, json).status_code,
        "reingest": client.post(f"/api/documents/{document.pk}/reingest").status_code,
        "delete": client.delete(f"/api/documents/{document.pk}").status_code,
    }


def _named(name: str, data: bytes):
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def test_a_reader_with_the_ingest_scope_cannot_change_a_public_collection(world):
    document = world["document"]
    refused = attempts(api(world["reader"]), document)
    assert refused == dict.fromkeys(refused, 403), refused
    document.refresh_from_db()
    assert document.text == "Original leave policy text." and document.status == "ready"
    assert Document.objects.count() == 1
    # It still reads it.
    assert api(world["reader"]).get(f"/api/documents/{document.pk}/chunks").status_code == 200


@pytest.mark.parametrize("who", ["owner", "editor"])
def test_writers_by_user_or_group_can(world, who):
    codes = attempts(api(world[who]), world["document"])
    assert codes == {
        "upload": 201, "upload-file": 201, "bulk": 202, "put": 202, "reingest": 202, "delete": 204,
    }, codes  # fmt: skip


def test_a_narrowed_key_narrows_writing(world):
    other = CollectionFactory(slug="other", writer_users=[world["owner"]])
    codes = attempts(api(world["owner"], collections=[other]), world["document"])
    assert set(codes.values()) <= {403, 404}, codes
    assert list(collections_writable(world["owner"])) == [world["kb"], other] or set(
        collections_writable(world["owner"])
    ) == {world["kb"], other}


def test_writers_read_what_they_write_and_superusers_write_everywhere(world):
    private = CollectionFactory(slug="private", writer_users=[world["owner"]])
    assert private in collections_readable(world["owner"])
    assert private not in collections_readable(world["reader"])
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    assert set(collections_writable(root)) == set(Collection.objects.all())
    assert not collections_writable(world["reader"]).exists()


def test_uploader_and_last_writer_are_recorded(world):
    owner, editor = world["owner"], world["editor"]
    response = api(owner).post(
        "/api/documents",
        {"collection": "kb", "text": "New text.", "source_url": "https://example.com/a"},
        "application/json",
    )
    document = Document.objects.get(pk=response.json()["id"])
    assert document.created_by == owner and document.updated_by is None
    api(editor).put(f"/api/documents/{document.pk}", {"text": "Edited text."}, "application/json")
    document.refresh_from_db()
    assert document.created_by == owner and document.updated_by == editor
    # Replacing through the same source_url records the replacer too.
    api(owner).post(
        "/api/documents",
        {"collection": "kb", "text": "Third text.", "source_url": "https://example.com/a"},
        "application/json",
    )
    document.refresh_from_db()
    assert document.updated_by == owner


def test_creating_a_collection_makes_its_creator_a_writer():
    staff = UserFactory(is_staff=True)
    client = api(staff, scopes=["admin"])
    assert (
        client.post("/api/collections", {"name": "New", "slug": "new"}, "application/json").status_code == 201
    )
    assert Collection.objects.get(slug="new") in collections_writable(staff)


# -- scopes decide what a key may read -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "chunks", "documents", "detail"),
    [
        (["ask"], 403, 403, 403),
        (["ingest"], 403, 200, 200),  # an ingest key polls status, it does not read passages
        (["search"], 200, 200, 200),
        ([], 200, 200, 200),  # unscoped: the user's own rights
    ],
)
def test_scopes_per_read_endpoint(world, scopes, chunks, documents, detail):
    client = api(world["owner"], scopes=scopes)
    document = world["document"]
    got = (
        client.get(f"/api/documents/{document.pk}/chunks").status_code,
        client.get("/api/documents").status_code,
        client.get(f"/api/documents/{document.pk}").status_code,
    )
    assert got == (chunks, documents, detail)
    if chunks == 403:
        response = client.get(f"/api/documents/{document.pk}/chunks")
        assert b"Original leave policy" not in response.content


# -- the admin -------------------------------------------------------------------------------------------


def staff_admin(user) -> Client:
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="ingestion"))
    client = Client()
    client.force_login(user)
    return client


def test_admin_actions_and_forms_check_write_access(world):
    document = world["document"]
    reader = staff_admin(world["reader"])
    for action in ("delete_with_chunks", "reingest_selected"):
        reader.post(
            "/admin/ingestion/document/", {"action": action, "_selected_action": [document.pk], "index": 0}
        )
    document.refresh_from_db()
    assert document.status == "ready"
    # The change form is read-only for a reader, and the collection admin will not change readers.
    reader.post(
        f"/admin/ingestion/document/{document.pk}/change/",
        {"title": "Renamed", "collection": document.collection_id},
    )
    document.refresh_from_db()
    assert document.title != "Renamed"
    assert reader.post(f"/admin/ingestion/document/{document.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Document.objects.filter(pk=document.pk).exists()
    page = reader.get("/admin/ingestion/document/upload/").content.decode()
    assert f'value="{world["kb"].pk}"' not in page
    writer = staff_admin(world["owner"])
    writer.post(
        "/admin/ingestion/document/",
        {"action": "delete_with_chunks", "_selected_action": [document.pk], "index": 0},
    )
    assert not Document.objects.filter(pk=document.pk).exists()


def test_source_url_is_http_only(world):
    for url in ("ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)"):
        response = api(world["owner"]).post(
            "/api/documents", {"collection": "kb", "text": "x", "source_url": url}, "application/json"
        )
        assert response.status_code == 400, (url, response.content)
        response = api(world["owner"]).post(
            "/api/documents/bulk",
            {"collection": "kb", "documents": [{"text": "y", "source_url": url}]},
            "application/json",
        )
        assert response.status_code == 400, (url, response.content)


@pytest.mark.parametrize("metadata", ['{"a": "\\u0000"}', '{"a":' * 100 + "1" + "}" * 100, "[1]", "{"])
def test_multipart_metadata_is_checked_like_json(world, metadata):
    response = api(world["owner"]).post(
        "/api/documents", {"collection": "kb", "file": _named("m.txt", b"Some words."), "metadata": metadata}
    )
    assert response.status_code == 400, response.content
    body = encode_multipart(BOUNDARY, {"file": _named("m.txt", b"Other words."), "metadata": metadata})
    response = api(world["owner"]).put(
        f"/api/documents/{world['document'].pk}", body, content_type=MULTIPART_CONTENT
    )
    assert response.status_code == 400, response.content


def test_metadata_size_is_bounded(world):
    response = api(world["owner"]).post(
        "/api/documents",
        {"collection": "kb", "text": "x", "metadata": {"k": "v" * 20_000}},
        "application/json",
    )
    assert response.status_code == 400, response.content
