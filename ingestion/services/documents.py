"""Document writes: store (a file, text, or many texts at once), replace content, re-ingest, delete.

Each write that changes content leaves the document `queued` and queues its ingestion once committed
(`pipeline.documents_enqueue`); the worker side lives in `pipeline`. Uploads that belong to an ingest job
(`services.jobs`) link the documents they queue to it; sending a cancelled document again queues it again.
"""

from __future__ import annotations

import hashlib
import os

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.utils import timezone

from ingestion.models import Collection, Document, IngestJob
from ingestion.parsers import ParseError, sniff_mime_type
from ingestion.parsers.text import normalize_newlines
from ingestion.services.errors import IngestionError
from ingestion.services.pipeline import chunks_delete, documents_enqueue


def _sha256_file(file: File) -> str:
    digest = hashlib.sha256()
    if hasattr(file, "seek"):
        file.seek(0)
    for part in file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(1 << 20), b""):
        digest.update(part)
    if hasattr(file, "seek"):
        file.seek(0)
    return digest.hexdigest()


def _text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_head(file: File, size: int = 1 << 16) -> bytes:
    file.seek(0)
    head = file.read(size)
    file.seek(0)
    return head


def _as_file(file, filename: str | None) -> File:
    if isinstance(file, bytes | bytearray):
        return ContentFile(bytes(file), name=filename or "upload")
    if not isinstance(file, File):
        file = File(file, name=filename or getattr(file, "name", "upload"))
    return file


def _content_take(file, filename: str | None, text: str | None) -> tuple[File | None, str | None]:
    """Exactly one of a file (bytes, a file object or a Django File) or text, in the form stored."""
    if (file is None) == (text is None):
        raise IngestionError("Give either a file or text.")
    if file is not None:
        return _as_file(file, filename), None
    return None, normalize_newlines(text)


def _document_source_check(file: File | None, text: str | None) -> tuple[str, str, int, str]:
    """(sha256, mime type, size, failure reason) of the new content, sniffing files from their bytes."""
    if file is not None:
        size = file.size or 0
        if size > settings.RAG_MAX_UPLOAD_BYTES:
            limit = settings.RAG_MAX_UPLOAD_BYTES / 2**20
            return (
                _sha256_file(file),
                "",
                size,
                f"The file is {size / 2**20:.1f} MB; the limit is {limit:.0f} MB.",
            )
        sha = _sha256_file(file)
        try:
            # Telling a DOCX from another zip needs the archive's directory (at its end): read it all.
            whole = size <= (1 << 16) or _file_head(file, 4).startswith(b"PK")
            data = _file_head(file, size if whole else (1 << 16))
            mime = sniff_mime_type(data, getattr(file, "name", "") or "", truncated=not whole)
        except ParseError as exc:
            return sha, "", size, str(exc)
        return sha, mime, size, ""
    text = normalize_newlines(text or "")
    if not text.strip():
        return _text_sha256(text), "text/plain", 0, "The document is empty."
    return _text_sha256(text), "text/plain", len(text.encode("utf-8")), ""


@transaction.atomic
def document_create(
    *,
    collection: Collection,
    title: str = "",
    file=None,
    filename: str | None = None,
    text: str | None = None,
    metadata: dict | None = None,
    source_url: str = "",
    created_by=None,
    job: IngestJob | None = None,
) -> tuple[Document, bool]:
    """Store a document (a file or text) and queue its ingestion. Returns `(document, created)`.

    The same content in the same collection returns the existing document (`created` False) and costs no
    embedding call. A different content with the same `source_url` replaces that document's content.
    """
    file, text = _content_take(file, filename, text)
    sha, mime, size, failure = _document_source_check(file, text)
    existing = Document.objects.filter(collection=collection, content_sha256=sha).first()
    if existing is not None:
        _documents_requeue_cancelled([existing], job)
        return existing, False
    if source_url:
        previous = Document.objects.filter(collection=collection, source_url=source_url).first()
        if previous is not None:
            document = document_update(
                previous,
                file=file,
                text=text,
                title=title or None,
                metadata=metadata,
                updated_by=created_by,
                job=job,
                _checked=(sha, mime, size, failure),
            )
            return document, False
    name = getattr(file, "name", "") if file is not None else ""
    document = Document(
        collection=collection,
        title=(
            title or os.path.basename(name or "") or (text or "").strip().split("\n", 1)[0][:80] or "Untitled"
        )[:500],
        text=text or "",
        source_url=source_url or "",
        mime_type=mime,
        size_bytes=size,
        content_sha256=sha,
        metadata=metadata or {},
        created_by=created_by,
        job=job,
        status=Document.Status.FAILED if failure else Document.Status.QUEUED,
        error=failure,
    )
    if file is not None and not failure:
        document.file.save(os.path.basename(name) or "upload", file, save=False)
    document.save()
    if not failure:
        documents_enqueue([document.pk])
    return document, True


@transaction.atomic
def document_update(
    document: Document,
    *,
    file=None,
    filename: str | None = None,
    text: str | None = None,
    title: str | None = None,
    metadata: dict | None = None,
    updated_by=None,
    job: IngestJob | None = None,
    _checked: tuple | None = None,
) -> Document:
    """Replace a document's content; its chunks are replaced on ingestion, unchanged ones keep their vectors.

    If another document of the collection already has exactly this content, that one is returned.
    """
    file, text = _content_take(file, filename, text)
    sha, mime, size, failure = _checked or _document_source_check(file, text)
    document = Document.objects.select_for_update().get(pk=document.pk)
    if sha != document.content_sha256:
        clash = Document.objects.filter(collection_id=document.collection_id, content_sha256=sha).first()
        if clash is not None:
            return clash
    old_file = document.file.name if document.file else ""
    document.content_sha256, document.mime_type, document.size_bytes = sha, mime, size
    if title:
        document.title = title[:500]
    if metadata is not None:
        document.metadata = metadata
    if updated_by is not None:
        document.updated_by = updated_by
    if job is not None:
        document.job = job
    if file is not None:
        document.text = ""
        if not failure:
            document.file.save(os.path.basename(getattr(file, "name", "") or "upload"), file, save=False)
        else:
            document.file = None
    else:
        document.text, document.file = text, None
    document.status = Document.Status.FAILED if failure else Document.Status.QUEUED
    document.error, document.attempts, document.processing_started_at = failure, 0, None
    document.save()
    if old_file and old_file != (document.file.name if document.file else ""):
        storage = document.file.storage
        transaction.on_commit(lambda: storage.delete(old_file))
    if not failure:
        documents_enqueue([document.pk])
    return document


@transaction.atomic
def documents_bulk_create(
    *, collection: Collection, documents: list[dict], created_by=None, job: IngestJob | None = None
) -> list[Document]:
    """Many text documents at once (`{title, text, metadata?, source_url?}` each): one INSERT, one queueing.

    Returns one Document per input, in order; duplicates (by content, within the call too) are the existing
    rows. Inputs with a `source_url` already in the collection go through `document_update`.
    """
    prepared = []
    for item in documents:
        text = normalize_newlines(item.get("text") or "")
        prepared.append((item, text, _text_sha256(text)))
    shas = {sha for _, _, sha in prepared}
    existing = {
        d.content_sha256: d for d in Document.objects.filter(collection=collection, content_sha256__in=shas)
    }
    urls = {item.get("source_url") for item, _, _ in prepared if item.get("source_url")}
    by_url = (
        {d.source_url: d for d in Document.objects.filter(collection=collection, source_url__in=urls)}
        if urls
        else {}
    )
    now = timezone.now()
    new: dict[str, Document] = {}
    results: list[Document] = []
    for item, text, sha in prepared:
        if sha in existing:
            results.append(existing[sha])
            continue
        if sha in new:
            results.append(new[sha])
            continue
        url = item.get("source_url") or ""
        if url and url in by_url:
            updated = document_update(
                by_url[url],
                text=text,
                title=item.get("title") or None,
                metadata=item.get("metadata"),
                updated_by=created_by,
                job=job,
            )
            existing[sha] = updated
            results.append(updated)
            continue
        empty = not text.strip()
        document = Document(
            collection=collection,
            title=(item.get("title") or text.strip().split("\n", 1)[0][:80] or "Untitled")[:500],
            text=text,
            source_url=url,
            mime_type="text/plain",
            size_bytes=len(text.encode("utf-8")),
            content_sha256=sha,
            metadata=item.get("metadata") or {},
            created_by=created_by,
            job=job,
            status=Document.Status.FAILED if empty else Document.Status.QUEUED,
            error="The document is empty." if empty else "",
            created_at=now,
            updated_at=now,
        )
        new[sha] = document
        results.append(document)
    _documents_requeue_cancelled(list({d.pk: d for d in existing.values()}.values()), job)
    if new:
        Document.objects.bulk_create(list(new.values()))
        documents_enqueue([d.pk for d in new.values() if d.status == Document.Status.QUEUED])
    return results


def _documents_requeue_cancelled(documents: list[Document], job: IngestJob | None) -> None:
    """Queue again those of `documents` that were cancelled (sending one again means wanting it), linked
    to `job`; the objects are updated in place for the caller's answer."""
    cancelled = [d for d in documents if d.status == Document.Status.CANCELLED]
    if not cancelled:
        return
    now = timezone.now()
    changes = {"status": Document.Status.QUEUED, "error": "", "attempts": 0, "updated_at": now}
    if job is not None:
        changes["job"] = job
    Document.objects.filter(pk__in=[d.pk for d in cancelled], status=Document.Status.CANCELLED).update(
        processing_started_at=None, **changes
    )
    for document in cancelled:
        for name, value in changes.items():
            setattr(document, name, value)
    documents_enqueue([d.pk for d in cancelled])


@transaction.atomic
def document_reingest(document: Document) -> Document:
    """Parse, chunk and embed again (unchanged chunks keep their vectors)."""
    Document.objects.filter(pk=document.pk).update(
        status=Document.Status.QUEUED,
        error="",
        attempts=0,
        processing_started_at=None,
        updated_at=timezone.now(),
    )
    document.refresh_from_db()
    documents_enqueue([document.pk])
    return document


@transaction.atomic
def document_delete(document: Document) -> None:
    """The document, its chunks and vectors, and its stored file (once committed)."""
    chunks_delete([document.pk])
    file_name = document.file.name if document.file else ""
    storage = document.file.storage
    Document.objects.filter(pk=document.pk).delete()
    if file_name:
        transaction.on_commit(lambda: storage.delete(file_name))
