"""Maintenance of the full-text index (tables and triggers: search/migrations/0003_fulltext_postings.py).

The triggers keep the postings exact on every write; the lexeme statistics arrive as an append-only delta
log that readers add up. Folding the log into the totals keeps those reads short; it never changes a score.
"""

from __future__ import annotations

from django.db import connection


def lexeme_stats_compact() -> int:
    """Fold the pending statistics deltas into the totals; returns how many lexemes were updated."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_lexeme_stats_compact()")
        (folded,) = cursor.fetchone()
    return int(folded or 0)


def postings_rebuild() -> None:
    """Rebuild the postings and statistics from every passage in one pass: after a bulk load made with the
    index triggers disabled (faster than maintaining the indexes row by row), or to repair by hand."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT search_postings_rebuild()")
