"""The knowledge-base page, the document viewer, a cited passage in context, the file download and the
login/logout pages.

The search page is static HTML plus the ES modules in `static/search/`; answers and passages come from the
JSON/SSE API (`POST /api/ask`) so the page and other clients see the same answers. Text the page shows as
it is (a document, a cited passage with its neighbours) is rendered here, reflowed and highlighted by
`search.page_text`, so the browser repeats none of those rules. Every read goes through
`ingestion.selectors`, the same permission decisions as the API.
"""

from __future__ import annotations

import mimetypes
import os

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from accounts.forms import RateLimitedAuthenticationForm
from ingestion.models import Chunk, Document
from ingestion.selectors import chunk_get_readable_or_404, collections_readable, document_get_readable_or_404
from search.page_text import MAX_HIGHLIGHT_QUERY_CHARS, text_highlight, text_reflow

# Passages shown on each side of a cited one when it opens in place on the search page.
CONTEXT_PASSAGES = 2


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = RateLimitedAuthenticationForm
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


def _chunks_for_display(chunks: QuerySet[Chunk]) -> list[Chunk]:
    """The chunks in document order, each with `display_text`: its text as the page shows it."""
    shown = list(chunks.only("id", "ordinal", "text", "page", "heading_path").order_by("ordinal"))
    for chunk in shown:
        chunk.display_text = text_reflow(chunk.text)
    return shown


@require_GET
@login_required
def document_detail(request: HttpRequest, document_id: int) -> HttpResponse:
    document = _readable_document(request, document_id)
    try:
        cited_chunk_id = int(request.GET.get("chunk", ""))
    except ValueError:
        cited_chunk_id = None
    chunks = _chunks_for_display(document.chunks.all())
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
def passage_context(request: HttpRequest, document_id: int, chunk_id: int) -> HttpResponse:
    """An HTML fragment for the search page: the cited passage, the question's words marked, between its
    neighbours. Fetched by script, so a signed-out caller gets 401 rather than the login page."""
    if not request.user.is_authenticated:
        return HttpResponse("Sign in again.", status=401, content_type="text/plain; charset=utf-8")
    query = request.GET.get("q", "")
    if len(query) > MAX_HIGHLIGHT_QUERY_CHARS:
        return HttpResponseBadRequest("The query is too long.", content_type="text/plain; charset=utf-8")
    cited = chunk_get_readable_or_404(chunk_id, request.user, document_id=document_id)
    around = _chunks_for_display(
        cited.document.chunks.filter(
            ordinal__gte=cited.ordinal - CONTEXT_PASSAGES, ordinal__lte=cited.ordinal + CONTEXT_PASSAGES
        ).exclude(pk=cited.pk)
    )
    return render(
        request,
        "search/_passage_context.html",
        {
            "cited": cited,
            "segments": text_highlight(text_reflow(cited.text), query),
            "before": [c for c in around if c.ordinal < cited.ordinal],
            "after": [c for c in around if c.ordinal > cited.ordinal],
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
