"""Errors the ingestion services raise for the caller to show as they are."""

from __future__ import annotations


class IngestionError(Exception):
    """A request that cannot be honoured (shown to the caller as is)."""


class EmbeddingSpaceError(IngestionError):
    """An embedding model that cannot be used (too many dimensions, refused, wrong size)."""
