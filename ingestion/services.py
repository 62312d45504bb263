"""Ingestion writes: documents in, chunks and vectors out; embedding spaces created, built and switched.

Documents move `queued -> processing -> ready | failed`. A worker claims documents with a lease (the
`processing_started_at` it set) and only writes results while it still holds the lease, so a task delivered
twice, a re-ingest requested mid-flight, or a sweeper re-queue never leaves mixed rows.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import connection, transaction
from django.utils import timezone

from ingestion.chunking import ChunkSpec, chunk_document
from ingestion.models import (
    MAX_INDEXED_DIMENSIONS,
    Chunk,
    ChunkEmbedding,
    Collection,
    Document,
    EmbeddingSpace,
)
from ingestion.parsers import ParsedDocument, ParseError, parse_bytes, parse_string, sniff_mime_type
from ingestion.parsers.text import normalize_newlines

logger = logging.getLogger(__name__)

# Documents a worker ingests together: one embeddings call and one bulk write serve them all.
INGEST_GROUP_SIZE = 50
# Inputs per embeddings call; progress counters move after each.
EMBED_BATCH_SIZE = 256
# A document whose worker vanished this many times is failed rather than re-queued again.
MAX_INGEST_ATTEMPTS = 3
_SPACE_LOCK_KEY = 0x43495441  # pg advisory lock: one process creates the active space


class IngestionError(Exception):
    """A request that cannot be honoured (shown to the caller as is)."""


class EmbeddingSpaceError(IngestionError):
    pass


# --- collections --------------------------------------------------------------------------------------------


def collection_create(*, name: str, slug: str, description: str = "", is_public: bool = False) -> Collection:
    return Collection.objects.create(name=name, slug=slug, description=description, is_public=is_public)


# --- documents: create, update, reingest, delete ------------------------------------------------------------


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


def _enqueue_ingest(document_ids: list[int]) -> None:
    """Queue the ingestion once the rows are committed (a worker must see them)."""
    from ingestion.tasks import document_ingest, documents_ingest

    def send() -> None:
        for start in range(0, len(document_ids), INGEST_GROUP_SIZE):
            group = document_ids[start : start + INGEST_GROUP_SIZE]
            if len(group) == 1:
                document_ingest.delay(group[0])
            else:
                documents_ingest.delay(group)

    if document_ids:
        transaction.on_commit(send)


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
) -> tuple[Document, bool]:
    """Store a document (a file or text) and queue its ingestion. Returns `(document, created)`.

    The same content in the same collection returns the existing document (`created` False) and costs no
    embedding call. A different content with the same `source_url` replaces that document's content.
    """
    if (file is None) == (text is None):
        raise IngestionError("Give either a file or text.")
    if file is not None:
        file = _as_file(file, filename)
    else:
        text = normalize_newlines(text)
    sha, mime, size, failure = _document_source_check(file, text)
    existing = Document.objects.filter(collection=collection, content_sha256=sha).first()
    if existing is not None:
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
        status=Document.Status.FAILED if failure else Document.Status.QUEUED,
        error=failure,
    )
    if file is not None and not failure:
        document.file.save(os.path.basename(name) or "upload", file, save=False)
    document.save()
    if not failure:
        _enqueue_ingest([document.pk])
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
    _checked: tuple | None = None,
) -> Document:
    """Replace a document's content; its chunks are replaced on ingestion, unchanged ones keep their vectors.

    If another document of the collection already has exactly this content, that one is returned.
    """
    if (file is None) == (text is None):
        raise IngestionError("Give either a file or text.")
    if file is not None:
        file = _as_file(file, filename)
    else:
        text = normalize_newlines(text)
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
        _enqueue_ingest([document.pk])
    return document


@transaction.atomic
def documents_bulk_create(
    *, collection: Collection, documents: list[dict], created_by=None
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
                by_url[url], text=text, title=item.get("title") or None, metadata=item.get("metadata")
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
            status=Document.Status.FAILED if empty else Document.Status.QUEUED,
            error="The document is empty." if empty else "",
            created_at=now,
            updated_at=now,
        )
        new[sha] = document
        results.append(document)
    if new:
        Document.objects.bulk_create(list(new.values()))
        _enqueue_ingest([d.pk for d in new.values() if d.status == Document.Status.QUEUED])
    return results


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
    _enqueue_ingest([document.pk])
    return document


def _chunks_delete(document_ids: list[int]) -> None:
    """Raw deletes: Django's cascade would load every chunk and vector into memory first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM ingestion_chunkembedding WHERE chunk_id IN "
            "(SELECT id FROM ingestion_chunk WHERE document_id = ANY(%s))",
            [document_ids],
        )
        cursor.execute("DELETE FROM ingestion_chunk WHERE document_id = ANY(%s)", [document_ids])


@transaction.atomic
def document_delete(document: Document) -> None:
    """The document, its chunks and vectors, and its stored file (once committed)."""
    _chunks_delete([document.pk])
    file_name = document.file.name if document.file else ""
    storage = document.file.storage
    Document.objects.filter(pk=document.pk).delete()
    if file_name:
        transaction.on_commit(lambda: storage.delete(file_name))


# --- ingestion ----------------------------------------------------------------------------------------------


@dataclass
class _Work:
    document: Document
    parsed: ParsedDocument | None = None
    specs: list[ChunkSpec] = field(default_factory=list)
    shas: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    # space id -> chunk index -> vector
    vectors: dict[int, dict[int, list[float]]] = field(default_factory=dict)
    error: str = ""
    unchanged: bool = False


def _documents_claim(document_ids: list[int]) -> tuple[list[int], object]:
    """Take the lease on the given documents that are queued (or whose lease went stale)."""
    stale = timezone.now() - timedelta(seconds=settings.RAG_STALE_PROCESSING_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ingestion_document SET status = 'processing', processing_started_at = now(), "
            "attempts = attempts + 1, updated_at = now() "
            "WHERE id = ANY(%s) AND (status = 'queued' "
            "OR (status = 'processing' AND processing_started_at < %s)) "
            "RETURNING id, processing_started_at",
            [list(document_ids), stale],
        )
        rows = cursor.fetchall()
    return [row[0] for row in rows], (rows[0][1] if rows else None)


def _document_parse(document: Document) -> ParsedDocument:
    if document.file:
        with document.file.open("rb") as handle:
            data = handle.read()
        return parse_bytes(data, os.path.basename(document.file.name), document.mime_type or None)
    return parse_string(document.text)


def documents_fail(document_ids: Iterable[int], reason: str, *, lease=None) -> int:
    """Mark documents failed with a reason (only while `lease` is theirs, when given)."""
    queryset = Document.objects.filter(pk__in=list(document_ids)).exclude(status=Document.Status.READY)
    if lease is not None:
        queryset = queryset.filter(status=Document.Status.PROCESSING, processing_started_at=lease)
    return queryset.update(
        status=Document.Status.FAILED,
        error=reason[:4000],
        processing_started_at=None,
        updated_at=timezone.now(),
    )


def documents_requeue(document_ids: Iterable[int], reason: str, *, lease=None) -> int:
    """Give documents back to the queue (a transient failure; the task retries them)."""
    queryset = Document.objects.filter(pk__in=list(document_ids), status=Document.Status.PROCESSING)
    if lease is not None:
        queryset = queryset.filter(processing_started_at=lease)
    return queryset.update(
        status=Document.Status.QUEUED,
        error=reason[:4000],
        processing_started_at=None,
        updated_at=timezone.now(),
    )


def embedding_spaces_target() -> list[EmbeddingSpace]:
    """Spaces new chunks are embedded into: the active one, plus any being built (so it misses nothing)."""
    active = embedding_space_get_or_create_active()
    building = list(EmbeddingSpace.objects.filter(status=EmbeddingSpace.Status.BUILDING, is_active=False))
    return [active, *building]


def _embed(space: EmbeddingSpace, inputs: list[str]) -> list[list[float]]:
    from genapi import BadResponseError, get_client

    # base64: a quarter of the bytes of a JSON float list and far cheaper to decode (the client
    # accepts floats too, for servers that ignore the option).
    result = get_client().embeddings_create(
        space.model,
        inputs,
        dimensions=space.dimensions if space.send_dimensions else None,
        encoding_format="base64",
    )
    for vector in result.vectors:
        if len(vector) != space.dimensions:
            raise BadResponseError(
                f"The model {space.model} returned {len(vector)} dimensions; "
                f"its space has {space.dimensions}."
            )
    return result.vectors


def documents_ingest(document_ids: list[int]) -> dict[int, str]:
    """Parse, chunk, embed and store the given documents; returns `{id: final status}` of those it claimed.

    Documents not queued (already ready, failed, or held by another worker) are left alone, which is what
    makes a task delivered twice harmless. A transient provider error gives the documents back to the queue
    and is re-raised for the task to retry; every other failure ends the document `failed` with a reason.
    """
    from genapi import GenAPIError

    claimed, lease = _documents_claim(document_ids)
    if not claimed:
        return {}
    documents = {d.pk: d for d in Document.objects.filter(pk__in=claimed)}
    works = [_Work(documents[pk]) for pk in claimed if pk in documents]
    try:
        spaces = embedding_spaces_target()
        for work in works:
            try:
                work.parsed = _document_parse(work.document)
                work.specs = chunk_document(
                    work.parsed, settings.RAG_CHUNK_TOKENS, settings.RAG_CHUNK_OVERLAP
                )
                if not work.specs:
                    raise ParseError("No text could be extracted from the document.")
            except ParseError as exc:
                work.error = str(exc)
            except GenAPIError as exc:  # audio transcription
                if exc.retryable:
                    raise
                work.error = f"Transcription failed: {exc}"
            except (OSError, ValueError) as exc:
                work.error = f"The document could not be read ({type(exc).__name__}: {exc})."
            if not work.error:
                title = work.document.title
                work.shas = [spec.content_sha256(title) for spec in work.specs]
                work.inputs = [spec.embedding_input(title) for spec in work.specs]
        live = [w for w in works if not w.error]
        for work in works:
            work.document.chunks_total = len(work.specs)
            work.document.chunks_embedded = 0
        if live:
            _documents_set_each(
                [w.document.pk for w in live],
                {"chunks_total": ("integer", [len(w.specs) for w in live])},
                {"chunks_embedded": 0},
            )
        _vectors_reuse(live, spaces)
        _vectors_embed(live, spaces)
        statuses = _results_write(works, spaces, lease)
    except GenAPIError as exc:
        if exc.retryable:
            documents_requeue(claimed, f"Provider temporarily unavailable, will retry: {exc}", lease=lease)
            raise
        documents_fail(claimed, f"The embedding provider refused the request: {exc}", lease=lease)
        return {pk: Document.Status.FAILED for pk in claimed}
    except EmbeddingSpaceError as exc:
        documents_fail(claimed, str(exc), lease=lease)
        return {pk: Document.Status.FAILED for pk in claimed}
    return statuses


def document_ingest(document_id: int) -> str | None:
    """Ingest one document; the final status, or None when it was not queued (nothing to do)."""
    return documents_ingest([document_id]).get(document_id)


def _vectors_reuse(works: list[_Work], spaces: list[EmbeddingSpace]) -> None:
    """Vectors of chunks whose content did not change are kept: no provider call for them."""
    # Only documents ingested before can have vectors to reuse: new ones cost no query here.
    previous = [w for w in works if w.document.chunks_total]
    ids = [w.document.pk for w in previous]
    if not ids:
        return
    rows = ChunkEmbedding.objects.filter(
        chunk__document_id__in=ids, space_id__in=[s.pk for s in spaces]
    ).values_list("chunk__document_id", "chunk__content_sha256", "space_id", "embedding")
    known: dict[tuple[int, str, int], list[float]] = {}
    for document_id, sha, space_id, vector in rows:
        known[(document_id, sha, space_id)] = vector
    if not known:
        return
    existing = {
        w.document.pk: list(
            Chunk.objects.filter(document_id=w.document.pk)
            .order_by("ordinal")
            .values_list("content_sha256", "char_start", "char_end", "page", "heading_path", "text")
        )
        for w in previous
    }
    for work in previous:
        for space in spaces:
            got = work.vectors.setdefault(space.pk, {})
            for i, sha in enumerate(work.shas):
                vector = known.get((work.document.pk, sha, space.pk))
                if vector is not None:
                    got[i] = vector
        same = [
            (sha, s.char_start, s.char_end, s.page, s.heading_path, s.text)
            for sha, s in zip(work.shas, work.specs, strict=True)
        ] == existing[work.document.pk]
        complete = all(len(work.vectors.get(s.pk, {})) == len(work.specs) for s in spaces)
        work.unchanged = same and complete


def _vectors_embed(works: list[_Work], spaces: list[EmbeddingSpace]) -> None:
    """Embed every chunk still without a vector, in batches across documents; progress after each batch."""
    for space in spaces:
        pending = [
            (work, i)
            for work in works
            for i in range(len(work.specs))
            if i not in work.vectors.setdefault(space.pk, {})
        ]
        for start in range(0, len(pending), EMBED_BATCH_SIZE):
            batch = pending[start : start + EMBED_BATCH_SIZE]
            vectors = _embed(space, [work.inputs[i] for work, i in batch])
            for (work, i), vector in zip(batch, vectors, strict=True):
                work.vectors[space.pk][i] = vector
            if len(pending) > EMBED_BATCH_SIZE and space.is_active:
                # Large documents show progress as batches complete; small ones finish in one write.
                touched = {work.document.pk: work for work, _ in batch}
                for work in touched.values():
                    done = len(work.vectors[space.pk])
                    Document.objects.filter(pk=work.document.pk).update(chunks_embedded=done)


def _documents_set_each(
    ids: list[int], per_row: dict[str, tuple[str, list]], same: dict[str, Any] | None = None
) -> None:
    """One `UPDATE ... FROM unnest(...)` giving each document its own values (`per_row`: column ->
    (SQL type, values in `ids` order); NULL keeps the stored value) and all of them `same`.

    Django's bulk_update builds a CASE expression per row and field in Python; on bulk ingestion that
    was 40 % of the worker's time (BENCHMARKS.md). Column names come from this module, never from input.
    """
    same = same or {}
    columns = list(per_row)
    assignments = [f"{c} = COALESCE(v.{c}, d.{c})" for c in columns] + [f"{c} = %s" for c in same]
    arrays = ", ".join(f"%s::{sql_type}[]" for sql_type, _ in per_row.values())
    sql = (
        f"UPDATE {Document._meta.db_table} AS d SET {', '.join(assignments)} "
        f"FROM unnest(%s::bigint[], {arrays}) AS v(id, {', '.join(columns)}) WHERE d.id = v.id"
    )  # noqa: S608 - identifiers are this module's constants
    with connection.cursor() as cursor:
        cursor.execute(sql, [*same.values(), ids, *(values for _, values in per_row.values())])


def _results_write(works: list[_Work], spaces: list[EmbeddingSpace], lease) -> dict[int, str]:
    """Replace chunks and vectors and set the final status, in one transaction, while the lease holds."""
    now = timezone.now()
    statuses: dict[int, str] = {}
    with transaction.atomic():
        held = set(
            Document.objects.select_for_update()
            .filter(
                pk__in=[w.document.pk for w in works],
                status=Document.Status.PROCESSING,
                processing_started_at=lease,
            )
            .values_list("pk", flat=True)
        )
        works = [w for w in works if w.document.pk in held]
        ok = [w for w in works if not w.error]
        rewrite = [w for w in ok if not w.unchanged]
        if rewrite:
            _chunks_delete([w.document.pk for w in rewrite])
            chunks = [
                Chunk(
                    document_id=w.document.pk,
                    ordinal=spec.ordinal,
                    text=spec.text,
                    token_count=spec.token_count,
                    heading_path=spec.heading_path[:1000],
                    page=spec.page,
                    char_start=spec.char_start,
                    char_end=spec.char_end,
                    content_sha256=sha,
                )
                for w in rewrite
                for spec, sha in zip(w.specs, w.shas, strict=True)
            ]
            Chunk.objects.bulk_create(chunks, batch_size=2000)
            embeddings = []
            position = 0
            for w in rewrite:
                for i in range(len(w.specs)):
                    chunk = chunks[position + i]
                    for space in spaces:
                        embeddings.append(
                            ChunkEmbedding(
                                chunk_id=chunk.pk, space_id=space.pk, embedding=w.vectors[space.pk][i]
                            )
                        )
                position += len(w.specs)
            ChunkEmbedding.objects.bulk_create(embeddings, batch_size=2000)
        if ok:
            counts = [len(w.specs) for w in ok]
            _documents_set_each(
                [w.document.pk for w in ok],
                {
                    "chunks_total": ("integer", counts),
                    "chunks_embedded": ("integer", counts),
                    # The extracted text is what chunk spans point into: keep it for citations.
                    # NULL keeps the stored value (a text document already holds its text).
                    "text": ("text", [w.parsed.text if w.document.file and w.parsed else None for w in ok]),
                    "mime_type": (
                        "text",
                        [
                            w.parsed.mime_type
                            if w.parsed and w.parsed.mime_type and not w.document.mime_type
                            else None
                            for w in ok
                        ],
                    ),
                },
                {
                    "status": Document.Status.READY,
                    "error": "",
                    "processing_started_at": None,
                    "updated_at": now,
                },
            )
            statuses.update({w.document.pk: Document.Status.READY for w in ok})
        for w in works:
            if w.error:
                Document.objects.filter(pk=w.document.pk).update(
                    status=Document.Status.FAILED,
                    error=w.error[:4000],
                    processing_started_at=None,
                    chunks_total=0,
                    chunks_embedded=0,
                    updated_at=now,
                )
                statuses[w.document.pk] = Document.Status.FAILED
    return statuses


def documents_sweep_stale() -> dict[str, int]:
    """Re-queue documents whose worker vanished (stuck `processing`), failing them after a few attempts;
    re-send documents left `queued` for as long (their message was lost)."""
    cutoff = timezone.now() - timedelta(seconds=settings.RAG_STALE_PROCESSING_SECONDS)
    now = timezone.now()
    with transaction.atomic():
        stale = Document.objects.select_for_update(skip_locked=True).filter(
            status=Document.Status.PROCESSING, processing_started_at__lt=cutoff
        )
        exhausted = list(stale.filter(attempts__gte=MAX_INGEST_ATTEMPTS).values_list("pk", flat=True))
        failed = Document.objects.filter(pk__in=exhausted).update(
            status=Document.Status.FAILED,
            error=f"Processing stopped {MAX_INGEST_ATTEMPTS} times (worker lost or timed out); giving up.",
            processing_started_at=None,
            updated_at=now,
        )
        retry = list(stale.exclude(pk__in=exhausted).values_list("pk", flat=True))
        Document.objects.filter(pk__in=retry).update(
            status=Document.Status.QUEUED,
            processing_started_at=None,
            updated_at=now,
            error="Processing was interrupted (worker lost or timed out); re-queued.",
        )
        lost = list(
            Document.objects.select_for_update(skip_locked=True)
            .filter(status=Document.Status.QUEUED, updated_at__lt=cutoff)
            .values_list("pk", flat=True)[:10000]
        )
        Document.objects.filter(pk__in=lost).update(updated_at=now)
        _enqueue_ingest(retry + lost)
    return {"requeued": len(retry), "failed": failed, "resent": len(lost)}


# --- embedding spaces ---------------------------------------------------------------------------------------


def _index_name(space_id: int) -> str:
    return f"ingestion_chunkembedding_space_{int(space_id)}_hnsw"


def embedding_space_index_create(space: EmbeddingSpace) -> None:
    """The space's partial HNSW index; search must use the same cast and `space_id` predicate.

    (`CREATE INDEX CONCURRENTLY` cannot run in a transaction; a new space has no rows, so a plain one is
    instant.)
    """
    with connection.cursor() as cursor:
        # DDL refuses to run while deferred foreign-key checks are pending in the same transaction.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {_index_name(space.pk)} ON ingestion_chunkembedding "
            f"USING hnsw ((embedding::halfvec({int(space.dimensions)})) halfvec_cosine_ops) "
            f"WHERE space_id = {int(space.pk)}"
        )
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def embedding_space_index_drop(space: EmbeddingSpace) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP INDEX IF EXISTS {_index_name(space.pk)}")


def embedding_space_probe(model: str, dimensions: int | None = None) -> tuple[int, bool]:
    """`(dimensions, send_dimensions)` for a model, from one embeddings call.

    Above pgvector's 4,000 indexable dimensions the model is asked for `dimensions` (the argument, else
    settings.GENAPI_EMBEDDING_DIMENSIONS) or refused with a message saying what to do.
    """
    from genapi import GenAPIError, get_client

    client = get_client()
    try:
        if dimensions:
            vectors = client.embeddings_create(model, ["dimension probe"], dimensions=dimensions).vectors
            if len(vectors[0]) != dimensions:
                raise EmbeddingSpaceError(
                    f"The model {model} returned {len(vectors[0])} dimensions when asked for {dimensions}."
                )
            if dimensions > MAX_INDEXED_DIMENSIONS:
                raise EmbeddingSpaceError(
                    f"{dimensions} dimensions is more than pgvector can index ({MAX_INDEXED_DIMENSIONS})."
                )
            return dimensions, True
        native = len(client.embeddings_create(model, ["dimension probe"]).vectors[0])
    except GenAPIError as exc:
        if exc.retryable:
            raise
        raise EmbeddingSpaceError(f"The embedding model {model} cannot be used: {exc}") from exc
    if native <= MAX_INDEXED_DIMENSIONS:
        return native, False
    wanted = settings.GENAPI_EMBEDDING_DIMENSIONS
    if wanted and wanted <= MAX_INDEXED_DIMENSIONS:
        return embedding_space_probe(model, wanted)
    raise EmbeddingSpaceError(
        f"The embedding model {model} returns {native} dimensions; pgvector indexes at most "
        f"{MAX_INDEXED_DIMENSIONS}. Set GENAPI_EMBEDDING_DIMENSIONS (e.g. 2048) if the model supports "
        "shorter vectors, or choose another embedding model."
    )


def _provider_base_url() -> str:
    from genapi import get_client

    return get_client().config.base_url


def embedding_space_get_or_create_active() -> EmbeddingSpace:
    """The space search and ingestion use; created from settings (one probe call) on first use.

    Changing GENAPI_EMBEDDING_MODEL later does not switch spaces by itself: that is `reembed`'s job.
    """
    space = EmbeddingSpace.objects.filter(is_active=True).first()
    if space is not None:
        return space
    dimensions, send = embedding_space_probe(settings.GENAPI_EMBEDDING_MODEL)
    if (
        not send
        and settings.GENAPI_EMBEDDING_DIMENSIONS
        and settings.GENAPI_EMBEDDING_DIMENSIONS != dimensions
    ):
        dimensions, send = embedding_space_probe(
            settings.GENAPI_EMBEDDING_MODEL, settings.GENAPI_EMBEDDING_DIMENSIONS
        )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SPACE_LOCK_KEY])
        space = EmbeddingSpace.objects.filter(is_active=True).first()
        if space is not None:
            return space
        space = EmbeddingSpace.objects.create(
            provider_base_url=_provider_base_url(),
            model=settings.GENAPI_EMBEDDING_MODEL,
            dimensions=dimensions,
            send_dimensions=send,
            is_active=True,
            status=EmbeddingSpace.Status.READY,
            activated_at=timezone.now(),
        )
        embedding_space_index_create(space)
    return space


def embedding_space_create(model: str, dimensions: int | None = None) -> EmbeddingSpace:
    """A new, inactive space being built (its index created now, while it is empty)."""
    embedding_space_get_or_create_active()
    size, send = embedding_space_probe(model, dimensions)
    with transaction.atomic():
        space = EmbeddingSpace.objects.create(
            provider_base_url=_provider_base_url(),
            model=model,
            dimensions=size,
            send_dimensions=send,
            is_active=False,
            status=EmbeddingSpace.Status.BUILDING,
        )
        embedding_space_index_create(space)
    return space


def embedding_space_build(model: str, dimensions: int | None = None) -> EmbeddingSpace:
    """Start re-embedding every chunk with another model: create the space and queue its build.

    Search keeps using the active space until the build completes and switches atomically.
    """
    from ingestion.tasks import embedding_space_build as build_task

    space = embedding_space_create(model, dimensions)
    transaction.on_commit(lambda: build_task.delay(space.pk))
    return space


def embedding_space_fill(space: EmbeddingSpace, batch_size: int = EMBED_BATCH_SIZE) -> int:
    """Embed every chunk that has no vector in `space`; returns how many were added."""
    added = 0
    while True:
        chunks = list(
            Chunk.objects.exclude(embeddings__space=space)
            .select_related("document")
            .order_by("pk")[:batch_size]
        )
        if not chunks:
            return added
        inputs = [
            ChunkSpec(0, c.text, c.char_start, c.char_end, 0, c.heading_path, c.page).embedding_input(
                c.document.title
            )
            for c in chunks
        ]
        vectors = _embed(space, inputs)
        ChunkEmbedding.objects.bulk_create(
            [ChunkEmbedding(chunk=c, space=space, embedding=v) for c, v in zip(chunks, vectors, strict=True)],
            ignore_conflicts=True,
        )
        added += len(chunks)


# Queries that read the old active space just before the switch still find its vectors for this long.
RETIRE_GRACE_SECONDS = 30


def embedding_space_activate(space: EmbeddingSpace, *, retire_after: float = 0) -> EmbeddingSpace:
    """Switch search to `space` atomically, then drop the previous space's vectors and index.

    With `retire_after`, the drop is queued that many seconds later so searches already running against the
    old space finish with its vectors.
    """
    embedding_space_fill(space)
    with transaction.atomic():
        spaces = {s.pk: s for s in EmbeddingSpace.objects.select_for_update().all()}
        space = spaces[space.pk]
        previous = [s for s in spaces.values() if s.is_active and s.pk != space.pk]
        for old in previous:
            old.is_active, old.status = False, EmbeddingSpace.Status.RETIRED
            old.save(update_fields=["is_active", "status"])
        space.is_active, space.status, space.activated_at = True, EmbeddingSpace.Status.READY, timezone.now()
        space.save(update_fields=["is_active", "status", "activated_at"])
    # Chunks written by ingestion that read the spaces just before the build started.
    embedding_space_fill(space)
    for old in previous:
        if retire_after:
            from ingestion.tasks import embedding_space_retire as retire_task

            retire_task.apply_async((old.pk,), countdown=retire_after)
        else:
            embedding_space_retire(old)
    return space


def embedding_space_retire(space: EmbeddingSpace) -> None:
    """Drop a non-active space's vectors and index (the row stays, as history)."""
    if space.is_active:
        raise EmbeddingSpaceError("The active embedding space cannot be retired.")
    with transaction.atomic():
        ChunkEmbedding.objects.filter(space=space)._raw_delete(connection.alias)
        embedding_space_index_drop(space)
        EmbeddingSpace.objects.filter(pk=space.pk).update(status=EmbeddingSpace.Status.RETIRED)
