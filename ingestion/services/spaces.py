"""Embedding spaces: one per embedding model, each with its own partial HNSW index.

The active space is what search and ingestion use; changing model builds a new space in the background
(`embedding_space_build`), fills it, switches the active space atomically (`embedding_space_activate`) and
then drops the old space's vectors and index (`embedding_space_retire`).
"""

from __future__ import annotations

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from genapi import GenAPIError, get_client
from ingestion.chunking import ChunkSpec
from ingestion.models import MAX_INDEXED_DIMENSIONS, Chunk, ChunkEmbedding, EmbeddingSpace
from ingestion.services.copy_writes import embeddings_copy
from ingestion.services.embedding import EMBED_BATCH_SIZE, texts_embed
from ingestion.services.errors import EmbeddingSpaceError

_SPACE_LOCK_KEY = 0x43495441  # pg advisory lock: one process creates the active space
_FILL_LOCK_KEY = 0x43495446  # pg advisory lock (with the space id): one fill of a space writes at a time


def space_index_name(space_id: int) -> str:
    """The name of the space's partial HNSW index."""
    return f"ingestion_chunkembedding_space_{int(space_id)}_hnsw"


def hnsw_graph_parameters() -> tuple[int, int]:
    """(m, ef_construction) for new HNSW indexes: the settings, ef_construction raised to 2 x m (pgvector
    refuses less)."""
    m = int(settings.RAG_HNSW_M)
    return m, max(int(settings.RAG_HNSW_EF_CONSTRUCTION), 2 * m)


def _index_ddl(space: EmbeddingSpace, name: str, *, concurrently: bool = False) -> str:
    m, ef_construction = hnsw_graph_parameters()
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {name} "
        f"ON ingestion_chunkembedding "
        f"USING hnsw ((embedding::halfvec({int(space.dimensions)})) halfvec_cosine_ops) "
        f"WITH (m = {m}, ef_construction = {ef_construction}) "
        f"WHERE space_id = {int(space.pk)}"
    )


def embedding_space_index_create(space: EmbeddingSpace) -> None:
    """The space's partial HNSW index; search must use the same cast and `space_id` predicate.

    Raw DDL: the index exists per space row, created at run time, which migrations cannot express.

    (`CREATE INDEX CONCURRENTLY` cannot run in a transaction; a new space has no rows, so a plain one is
    instant.)
    """
    with connection.cursor() as cursor:
        # DDL refuses to run while deferred foreign-key checks are pending in the same transaction.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(_index_ddl(space, space_index_name(space.pk)))
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def embedding_space_index_rebuild(space: EmbeddingSpace, *, lock_timeout_s: float = 30.0) -> str:
    """Build the space's HNSW index again with the current graph parameters (`RAG_HNSW_M`,
    `RAG_HNSW_EF_CONSTRUCTION`) while search and ingestion go on; returns the new index's definition.

    The new graph is built with `CREATE INDEX CONCURRENTLY` under a second name (writes continue and go into
    both), then the old index is dropped and the new one takes its name in one short transaction (search
    reads the index size by name: `search.hnsw`). A rebuild interrupted before the swap leaves the second
    index: the next run swaps it in if it is complete and has the current parameters (a million vectors take
    half an hour to build), and otherwise drops it and builds afresh. Must run outside a transaction
    (CONCURRENTLY refuses one)."""
    if connection.in_atomic_block:
        raise EmbeddingSpaceError("An HNSW index is rebuilt outside a transaction (CONCURRENTLY).")
    name = space_index_name(space.pk)
    building = f"{name}_rebuild"
    wanted = _index_ddl(space, building, concurrently=True)
    m, ef_construction = hnsw_graph_parameters()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indexrelid = to_regclass(%s)",
            [building],
        )
        left = cursor.fetchone()
        reusable = bool(left and left[0] and f"m='{m}', ef_construction='{ef_construction}'" in left[1])
        if not reusable:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {building}")
            cursor.execute(wanted)
        try:
            with transaction.atomic():
                # DROP INDEX takes the table's exclusive lock for an instant, once the queries on it end.
                cursor.execute(
                    "SELECT set_config('lock_timeout', %s, true)", [f"{int(lock_timeout_s * 1000)}ms"]
                )
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
                cursor.execute(f"ALTER INDEX {building} RENAME TO {name}")
        except OperationalError as exc:
            raise EmbeddingSpaceError(
                f"The new graph is built ({building}) but the table stayed busy for {lock_timeout_s:.0f} s, "
                f"so the old index was not swapped out ({exc}). Run the rebuild again: it swaps at once."
            ) from exc
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        return cursor.fetchone()[0]


def embedding_space_index_drop(space: EmbeddingSpace) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP INDEX IF EXISTS {space_index_name(space.pk)}")


def embedding_space_probe(model: str, dimensions: int | None = None) -> tuple[int, bool]:
    """`(dimensions, send_dimensions)` for a model, from one embeddings call.

    Above pgvector's 4,000 indexable dimensions the model is asked for `dimensions` (the argument, else
    settings.GENAPI_EMBEDDING_DIMENSIONS) or refused with a message saying what to do.
    """
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
        with connection.cursor() as cursor:  # no ORM API for advisory locks
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
    from ingestion.tasks import embedding_space_build_task

    space = embedding_space_create(model, dimensions)
    transaction.on_commit(lambda: embedding_space_build_task.delay(space.pk))
    return space


def embedding_space_fill(space: EmbeddingSpace, batch_size: int = EMBED_BATCH_SIZE) -> int:
    """Embed every chunk that has no vector in `space`; returns how many were added.

    Vectors go in by binary COPY (copy_writes.py), which has no ON CONFLICT: conflicts are excluded up front.
    Ingestion only writes vectors for the passages it creates, in the transaction that creates them, so
    the one writer that could add the same (passage, space) is another fill of this space (a build task
    delivered twice). Each batch's write therefore holds the space's fill lock, re-reads which of its
    passages still exist and still lack a vector (locking them against deletion until the commit) and
    copies only those; the provider call stays outside the lock and the transaction."""
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
        vectors = dict(zip([c.pk for c in chunks], texts_embed(space, inputs), strict=True))
        with transaction.atomic():
            missing = _chunks_missing_vectors_locked(space, list(vectors))
            if missing:
                embeddings_copy((pk, space.pk, vectors[pk]) for pk in missing)
        added += len(missing)


def _chunks_missing_vectors_locked(space: EmbeddingSpace, chunk_ids: list[int]) -> list[int]:
    """Of `chunk_ids`, those that exist and have no vector in `space`, under the space's fill lock (held to
    the end of the transaction) and with their rows locked against deletion (FOR KEY SHARE)."""
    # Raw: advisory locks and FOR KEY SHARE have no ORM API.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_FILL_LOCK_KEY, int(space.pk)])
        cursor.execute(
            "SELECT c.id FROM ingestion_chunk c WHERE c.id = ANY(%s) AND NOT EXISTS ("
            "SELECT 1 FROM ingestion_chunkembedding e WHERE e.chunk_id = c.id AND e.space_id = %s) "
            "ORDER BY c.id FOR KEY SHARE OF c",
            [chunk_ids, int(space.pk)],
        )
        return [row[0] for row in cursor.fetchall()]


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
            from ingestion.tasks import embedding_space_retire_task

            embedding_space_retire_task.apply_async((old.pk,), countdown=retire_after)
        else:
            embedding_space_retire(old)
    return space


def embedding_space_retire(space: EmbeddingSpace) -> None:
    """Drop a non-active space's vectors and index (the row stays, as history)."""
    if space.is_active:
        raise EmbeddingSpaceError("The active embedding space cannot be retired.")
    with transaction.atomic():
        # One DELETE: vectors have no dependents and no delete signals, so Django fast-deletes them.
        ChunkEmbedding.objects.filter(space=space).delete()
        embedding_space_index_drop(space)
        EmbeddingSpace.objects.filter(pk=space.pk).update(status=EmbeddingSpace.Status.RETIRED)


def embedding_spaces_target() -> list[EmbeddingSpace]:
    """Spaces new chunks are embedded into: the active one, plus any being built (so it misses nothing)."""
    active = embedding_space_get_or_create_active()
    building = list(EmbeddingSpace.objects.filter(status=EmbeddingSpace.Status.BUILDING, is_active=False))
    return [active, *building]
