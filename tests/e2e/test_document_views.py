"""The document viewer and the original-file download: only readers see them (404 for everyone else)."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from tests.factories import ChunkFactory, CollectionFactory, DocumentFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    reader = UserFactory(username="reader", password="pw")
    UserFactory(username="stranger", password="pw")
    collection = CollectionFactory(slug="handbook", reader_users=[reader])
    document = DocumentFactory(collection=collection, title="Leave policy", passages=())
    document.file.save("leave-policy.txt", ContentFile(b"Twenty-five days of annual leave."), save=True)
    first = ChunkFactory(document=document, ordinal=0, text="Intro\nwrapped line.", char_end=10)
    cited = ChunkFactory(document=document, ordinal=1, text="Twenty-five days.", char_start=10, char_end=30)
    return document, first, cited


def test_viewer_marks_the_cited_passage(client, setup):
    document, first, cited = setup
    client.login(username="reader", password="pw")
    response = client.get(f"/documents/{document.pk}?chunk={cited.pk}")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="chunk-{cited.pk}" class="passage passage--cited"' in html
    assert f'id="chunk-{first.pk}" class="passage"' in html
    assert "Intro wrapped line." in html  # source wrapping is joined
    assert f"/documents/{document.pk}/download" in html


def test_download_streams_the_original_as_an_attachment(client, setup):
    document, _first, _cited = setup
    client.login(username="reader", password="pw")
    response = client.get(f"/documents/{document.pk}/download")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert "leave-policy" in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == b"Twenty-five days of annual leave."


def test_text_documents_download_their_text(client, setup):
    document, _first, _cited = setup
    text_doc = DocumentFactory(collection=document.collection, title="Note", passages=["Just text."])
    client.login(username="reader", password="pw")
    response = client.get(f"/documents/{text_doc.pk}/download")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="note.txt"'
    assert response.content == b"Just text."


@pytest.mark.parametrize("path", ["/documents/{id}", "/documents/{id}/download"])
def test_non_readers_get_404_and_anonymous_users_the_login_page(client, setup, path):
    document, _first, _cited = setup
    url = path.format(id=document.pk)
    assert client.get(url).status_code == 302  # to /login/
    client.login(username="stranger", password="pw")
    assert client.get(url).status_code == 404
    assert client.get(path.format(id=999999)).status_code == 404


def test_logout_is_post_only(client, setup):
    client.login(username="reader", password="pw")
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302
