"""The knowledge-base page, the document viewer, the file download and the login/logout pages.

The page itself is static HTML plus `static/search/app.js`; everything it shows comes from the JSON/SSE
API (`/api/ask`, `/api/documents/{id}/chunks/{chunk_id}`) so the page and other clients see the same
answers and the same permission decisions.
"""

from __future__ import annotations

import mimetypes
import os
import re

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from accounts.selectors import collections_readable, document_get_readable_or_404
from ingestion.models import Document

try:  # The accounts engineer's form adds login throttling; Django's form is the fallback.
    from accounts.forms import RateLimitedAuthenticationForm as LoginForm
except ImportError:  # pragma: no cover - depends on what the accounts app ships
    from django.contrib.auth.forms import AuthenticationForm as LoginForm


# A single newline followed by anything but a heading, quote, list item or table row is source wrapping.
_SOFT_BREAK = re.compile(r"(?<=[^\n])\n(?![\n#>*\-+|]|\s*\d+[.)]\s)")


def text_reflow(text: str) -> str:
    """Join lines the source wrapped, keeping paragraphs and list/heading lines (same rule as app.js)."""
    return _SOFT_BREAK.sub(" ", text)


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django's default since 5.0), so a link or a prefetch cannot sign anyone out."""


@require_GET
@login_required
def search_page(request: HttpRequest) -> HttpResponse:
    collections = list(collections_readable(request.user).only("id", "name", "slug"))
    return render(request, "search/index.html", {"collections": collections})


def _readable_document(request: HttpRequest, document_id: int) -> Document:
    """The document if the user may read its collection; 404 (not 403) so ids reveal nothing."""
    return document_get_readable_or_404(document_id, request.user)


@require_GET
@login_required
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    document = _readable_document(request, document_id)
    try:
        cited_chunk_id = int(request.GET.get("chunk", ""))
    except ValueError:
        cited_chunk_id = None
    chunks = list(document.chunks.only("id", "ordinal", "text", "page", "heading_path").order_by("ordinal"))
    for chunk in chunks:
        chunk.display_text = text_reflow(chunk.text)
    return render(
        request,
        "search/document.html",
        {
            "document": document,
            "chunks": chunks,
            "cited_chunk_id": cited_chunk_id,
            "has_download": bool(document.file) or bool(document.text),
        },
    )


@require_GET
@login_required
def document_download(request: HttpRequest, document_id: int) -> HttpResponse:
    """Stream the stored original as an attachment; documents created from text get that text back."""
    document = _readable_document(request, document_id)
    if document.file:
        try:
            handle = document.file.open("rb")
        except FileNotFoundError as exc:
            raise Http404("The stored file is missing.") from exc
        filename = os.path.basename(document.file.name)
        content_type = document.mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return FileResponse(handle, as_attachment=True, filename=filename, content_type=content_type)
    if document.text:
        response = HttpResponse(document.text, content_type="text/plain; charset=utf-8")
        filename = f"{slugify(document.title) or 'document'}.txt"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    raise Http404("This document has no stored original.")
