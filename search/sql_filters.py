"""The WHERE conditions every retrieval leg shares: the readable collections and the caller's filters, inside
the candidate SQL itself (a filter applied after `LIMIT` would silently return fewer than k passages)."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from search.types import SearchFilters


def filters_sql(collection_ids: list[int], filters: SearchFilters) -> tuple[str, list[Any]]:
    """WHERE conditions on `d` (ingestion_document) for the readable collections and the caller's filters."""
    clauses = ["d.collection_id = ANY(%s)", "d.status = 'ready'"]
    params: list[Any] = [list(collection_ids)]
    if filters.document_ids:
        clauses.append("d.id = ANY(%s)")
        params.append([int(i) for i in filters.document_ids])
    if filters.metadata:
        clauses.append("d.metadata @> %s::jsonb")
        params.append(Jsonb(filters.metadata))
    if filters.mime_types:
        clauses.append("d.mime_type = ANY(%s)")
        params.append(list(filters.mime_types))
    if filters.created_after:
        clauses.append("d.created_at >= %s")
        params.append(filters.created_after)
    if filters.created_before:
        clauses.append("d.created_at < %s")
        params.append(filters.created_before)
    return " AND ".join(clauses), params
