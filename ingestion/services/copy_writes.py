"""Passages and vectors written with PostgreSQL's binary COPY: one stream per table instead of an INSERT
with a parameter per value, and vectors sent as pgvector's binary halfvec (2 bytes a dimension) rather than
formatted as text and parsed back by the server.

COPY fires the same triggers as INSERT (the statement-level trigger that keeps the BM25 postings,
search/fulltext.py) and maintains every index (the space's HNSW index included), so nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from django.db import connection
from pgvector.psycopg.halfvec import register_halfvec_info
from psycopg.types import TypeInfo

from ingestion.models import Chunk, ChunkEmbedding

try:
    from pgvector import HalfVector
except ImportError:  # pgvector < 0.4 (what langchain-postgres, the benchmarks' peer, pins)
    from pgvector.utils import HalfVector

# Binary COPY needs each column's exact type (an int4 is 4 bytes on the wire, an int8 is 8).
CHUNK_COLUMNS = (
    ("id", "int8"),
    ("document_id", "int8"),
    ("ordinal", "int4"),
    ("text", "text"),
    ("token_count", "int4"),
    ("heading_path", "varchar"),
    ("page", "int4"),
    ("char_start", "int4"),
    ("char_end", "int4"),
    ("content_sha256", "varchar"),
)
EMBEDDING_COLUMNS = (("chunk_id", "int8"), ("space_id", "int8"), ("embedding", "halfvec"))

# The halfvec type, per database (its oid is fixed once the extension exists): fetched once per process,
# then registered on each new connection without a round trip.
_halfvec_info: dict[str, TypeInfo] = {}


def _pg_connection():
    """The psycopg connection under Django's, with pgvector's binary halfvec dumper registered."""
    connection.ensure_connection()
    raw = connection.connection
    if not getattr(raw, "_citable_halfvec", False):
        key = connection.settings_dict["NAME"]
        info = _halfvec_info.get(key)
        if info is None:
            info = TypeInfo.fetch(raw, "halfvec")
            if info is None:
                raise RuntimeError("the pgvector extension (halfvec) is not installed in this database")
            _halfvec_info[key] = info
        register_halfvec_info(raw, info)
        raw._citable_halfvec = True
    return raw


def _copy(table: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence]) -> None:
    names = ", ".join(name for name, _ in columns)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:  # noqa: S608
            copy.set_types([sql_type for _, sql_type in columns])
            for row in rows:
                copy.write_row(row)


def chunk_ids_reserve(count: int) -> list[int]:
    """`count` new passage ids from the table's own sequence, in one round trip (COPY returns nothing, and
    the vectors written next must name their passage)."""
    if count <= 0:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Chunk._meta.db_table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def chunks_copy(rows: Iterable[Sequence]) -> None:
    """Passages as tuples in `CHUNK_COLUMNS` order (ids from `chunk_ids_reserve`)."""
    _pg_connection()
    _copy(Chunk._meta.db_table, CHUNK_COLUMNS, rows)


def as_halfvec(vector) -> HalfVector:
    """A vector (list of floats or numpy array) as pgvector's HalfVector, for the binary dumper."""
    if isinstance(vector, HalfVector):
        return vector
    return HalfVector(np.asarray(vector, dtype=np.float32))


def embeddings_copy(rows: Iterable[tuple[int, int, object]]) -> None:
    """Vectors as `(chunk_id, space_id, vector)`."""
    _pg_connection()
    _copy(
        ChunkEmbedding._meta.db_table,
        EMBEDDING_COLUMNS,
        ((chunk_id, space_id, as_halfvec(vector)) for chunk_id, space_id, vector in rows),
    )
