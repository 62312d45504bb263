"""What a worker does with queued documents: claim, parse, chunk, embed, write the results; and the sweeper.

Documents move `queued -> processing -> ready | failed`, or to `cancelled` from either of the first two
(`services.jobs`). A worker claims documents with a lease (the `processing_started_at` it set) and only writes
results while it still holds the lease, so a task delivered twice, a re-ingest requested mid-flight, a
sweeper re-queue or a cancel never leaves mixed rows: the final write locks the rows and re-checks the lease
in the same transaction, and a cancelled document is never claimed again (its queued task is a no-op). The
lease is renewed while the worker runs (leases.py); one not renewed for RAG_LEASE_SECONDS is a lost worker's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from genapi import GenAPIError
from ingestion.chunking import ChunkSpec, chunk_document
from ingestion.models import Chunk, ChunkEmbedding, Document, EmbeddingSpace
from ingestion.parsers import ParsedDocument, ParseError, parse_bytes, parse_string
from ingestion.services.copy_writes import chunk_ids_reserve, chunks_copy, embeddings_copy
from ingestion.services.embedding import EMBED_BATCH_SIZE, texts_embed_counted
from ingestion.services.errors import EmbeddingSpaceError
from ingestion.services.leases import lease_kept
from ingestion.services.spaces import embedding_spaces_target

logger = logging.getLogger(__name__)

# Documents a worker ingests together (one task): the embeddings calls and one COPY per table serve them
# all. The default of settings.RAG_INGEST_GROUP_SIZE (not re-tuned for COPY yet: BENCHMARKS.md, issue 15).
INGEST_GROUP_SIZE = 50
# A document whose worker vanished this many times is failed rather than re-queued again.
MAX_INGEST_ATTEMPTS = 3


def documents_enqueue(document_ids: list[int]) -> None:
    """Queue the ingestion in groups once the rows are committed (a worker must see them)."""
    from ingestion.tasks import documents_ingest_task

    size = max(1, int(getattr(settings, "RAG_INGEST_GROUP_SIZE", INGEST_GROUP_SIZE)))

    def send() -> None:
        for start in range(0, len(document_ids), size):
            group = document_ids[start : start + size]
            try:
                documents_ingest_task.delay(group)
            except Exception:  # the broker down past the publish retries (kombu raises several types)
                # The rows are committed `queued`: the sweeper sends them again after
                # RAG_STALE_PROCESSING_SECONDS, so the upload itself still succeeds.
                logger.exception("could not queue %d documents; the sweeper will send them", len(group))

    if document_ids:
        transaction.on_commit(send)


def chunks_delete(document_ids: list[int]) -> None:
    """Raw deletes: `QuerySet.delete()` loads every chunk (text included) into memory to cascade; these two
    statements never bring a row out of the database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM ingestion_chunkembedding WHERE chunk_id IN "
            "(SELECT id FROM ingestion_chunk WHERE document_id = ANY(%s))",
            [document_ids],
        )
        cursor.execute("DELETE FROM ingestion_chunk WHERE document_id = ANY(%s)", [document_ids])


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
    # Provider tokens spent embedding this document's passages (its share of each call).
    tokens: int = 0
    # The document had passages before this run (a re-ingest): only then can vectors be reused.
    had_chunks: bool = False


def _lease_cutoff():
    """Leases last renewed before this belong to a lost worker."""
    return timezone.now() - timedelta(seconds=settings.RAG_LEASE_SECONDS)


def _documents_claim(document_ids: list[int]) -> tuple[list[int], object]:
    """Take the lease on the given documents that are queued (or whose lease lapsed)."""
    stale = _lease_cutoff()
    # Raw: one `UPDATE ... RETURNING` takes the lease and reads which rows it got in one atomic statement;
    # the ORM's update() returns only a count, and a SELECT first would race with another worker.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ingestion_document SET status = 'processing', processing_started_at = now(), "
            "lease_renewed_at = now(), attempts = attempts + 1, updated_at = now() "
            "WHERE id = ANY(%s) AND (status = 'queued' OR (status = 'processing' "
            "AND COALESCE(lease_renewed_at, processing_started_at) < %s)) "
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
    """Mark documents failed with a reason (only while `lease` is theirs, when given). Finished documents
    (ready, or cancelled by a person) keep their state."""
    queryset = Document.objects.filter(pk__in=list(document_ids)).exclude(
        status__in=[Document.Status.READY, Document.Status.CANCELLED]
    )
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
        # Giving back is not a lost worker: only vanished attempts count towards MAX_INGEST_ATTEMPTS.
        attempts=Greatest(F("attempts") - 1, Value(0)),
        status=Document.Status.QUEUED,
        error=reason[:4000],
        processing_started_at=None,
        updated_at=timezone.now(),
    )


def documents_ingest(document_ids: list[int], *, final_attempt: int | None = None) -> dict[int, str]:
    """Parse, chunk, embed and store the given documents; returns `{id: final status}` of those it claimed.

    Documents not queued (already ready, failed, or held by another worker) are left alone, which is what
    makes a task delivered twice harmless. A transient provider error gives the documents back to the queue
    and is re-raised for the task to retry, unless this is the task's last attempt (`final_attempt`, its
    number): then it fails them. Every other failure ends the document `failed` with a reason, and an
    unexpected exception (a bug, the task's soft time limit) fails them too before it propagates. Every
    failure is written under the lease: documents another worker took over meanwhile are left to it.
    """
    with commits_unflushed():
        return _documents_ingest(document_ids, final_attempt)


@contextmanager
def commits_unflushed() -> Iterator[None]:
    """This connection's commits return before their WAL reaches the disk (`synchronous_commit` off) while
    the block runs; the setting is restored after.

    Safe for ingestion: a commit is atomic either way, and a crash of the server can lose only the last
    commits (at most about 3 x `wal_writer_delay`, 0.6 s by default). What such a loss leaves is a state the
    pipeline already recovers from: a lost claim leaves the documents `queued` (the sweeper sends them again
    after RAG_STALE_PROCESSING_SECONDS), a lost final write leaves them `processing` under a lease nobody
    renews (re-queued after RAG_LEASE_SECONDS), and the re-run replaces the document's passages and vectors
    whole (`_results_write` deletes before it copies), so nothing is duplicated. Each commit no longer waits
    for a disk flush, which on a busy machine is most of a small transaction's time (BENCHMARKS.md, issue 15).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('synchronous_commit', 'off', false)")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except DatabaseError:  # the connection broke meanwhile: it is closed, and the setting with it
            database_reset()


def _documents_ingest(document_ids: list[int], final_attempt: int | None) -> dict[int, str]:
    claimed, lease = _documents_claim(document_ids)
    if not claimed:
        return {}
    with lease_kept(claimed, lease):
        try:
            return _documents_ingest_claimed(claimed, lease, final_attempt)
        except (OperationalError, InterfaceError) as exc:  # the database restarting under us
            database_reset()
            try:  # give the documents back now if it is already back; else the lease lapses
                documents_requeue(claimed, f"Database unavailable, will retry: {exc}", lease=lease)
            except DatabaseError:
                database_reset()
            raise
        except GenAPIError:
            raise  # retryable: given back to the queue above, for the task to retry
        except Exception as exc:
            documents_fail(claimed, _unexpected_failure_reason(exc), lease=lease)
            raise


def _unexpected_failure_reason(exc: Exception) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"Ingestion took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s and was stopped."
    return f"Internal error during ingestion: {type(exc).__name__}: {exc}"


def database_reset() -> None:
    """Close this thread's broken connections so the next query opens a fresh one."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.is_usable():
            conn.close()


def _documents_ingest_claimed(claimed: list[int], lease, final_attempt: int | None) -> dict[int, str]:
    documents = {d.pk: d for d in Document.objects.filter(pk__in=claimed)}
    works = [
        _Work(documents[pk], had_chunks=bool(documents[pk].chunks_total)) for pk in claimed if pk in documents
    ]
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
        _vectors_embed(live, spaces, lease)
        statuses = _results_write(works, spaces, lease)
    except GenAPIError as exc:
        if exc.retryable and final_attempt is not None:
            reason = f"The provider stayed unavailable after {final_attempt} attempts: {exc}"
            documents_fail(claimed, reason, lease=lease)
            return {pk: Document.Status.FAILED for pk in claimed}
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
    previous = [w for w in works if w.had_chunks]
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


def _documents_held(works: list[_Work], lease) -> set[int]:
    """Which of `works` this worker still holds: a document cancelled (or re-queued) meanwhile is dropped
    before it costs more provider tokens. Only a saving: `_results_write` re-checks under a row lock."""
    return set(
        Document.objects.filter(
            pk__in=[w.document.pk for w in works],
            status=Document.Status.PROCESSING,
            processing_started_at=lease,
        ).values_list("pk", flat=True)
    )


def _vectors_embed(works: list[_Work], spaces: list[EmbeddingSpace], lease=None) -> None:
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
            if lease is not None:
                held = _documents_held(list({id(w): w for w, _ in batch}.values()), lease)
                batch = [(work, i) for work, i in batch if work.document.pk in held]
                if not batch:
                    continue
            vectors, tokens = texts_embed_counted(space, [work.inputs[i] for work, i in batch])
            for (work, i), vector, spent in zip(batch, vectors, tokens, strict=True):
                work.vectors[space.pk][i] = vector
                work.tokens += spent
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
            # Always: a document's passages can outlive its counters (a failed re-ingest zeroes them).
            chunks_delete([w.document.pk for w in rewrite])
            # Binary COPY with ids reserved up front: two streams and one id query per group, whatever its
            # size (BENCHMARKS.md, issue 15).
            ids = iter(chunk_ids_reserve(sum(len(w.specs) for w in rewrite)))
            chunk_rows = []
            vector_rows = []
            for w in rewrite:
                for i, (spec, sha) in enumerate(zip(w.specs, w.shas, strict=True)):
                    chunk_id = next(ids)
                    chunk_rows.append(
                        (
                            chunk_id,
                            w.document.pk,
                            spec.ordinal,
                            spec.text,
                            spec.token_count,
                            spec.heading_path[:1000],
                            spec.page,
                            spec.char_start,
                            spec.char_end,
                            sha,
                        )
                    )
                    for space in spaces:
                        vector_rows.append((chunk_id, space.pk, w.vectors[space.pk][i]))
            chunks_copy(chunk_rows)
            embeddings_copy(vector_rows)
        if ok:
            counts = [len(w.specs) for w in ok]
            _documents_set_each(
                [w.document.pk for w in ok],
                {
                    "chunks_total": ("integer", counts),
                    "chunks_embedded": ("integer", counts),
                    "embedding_tokens": ("integer", [w.tokens for w in ok]),
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
    """Re-queue documents whose worker vanished (`processing` with a lapsed lease), failing them after a
    few attempts; re-send documents left `queued` for RAG_STALE_PROCESSING_SECONDS (message lost)."""
    cutoff = timezone.now() - timedelta(seconds=settings.RAG_STALE_PROCESSING_SECONDS)
    now = timezone.now()
    with transaction.atomic():
        stale = (
            Document.objects.select_for_update(skip_locked=True)
            .annotate(lease_at=Coalesce("lease_renewed_at", "processing_started_at"))
            .filter(status=Document.Status.PROCESSING, lease_at__lt=_lease_cutoff())
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
        documents_enqueue(retry + lost)
    return {"requeued": len(retry), "failed": failed, "resent": len(lost)}
