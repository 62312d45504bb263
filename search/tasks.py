"""Search tasks: thin, periodic maintenance."""

from __future__ import annotations

from celery import shared_task

from search.fulltext import lexeme_stats_compact


@shared_task(name="search.lexeme_stats_compact", acks_late=True, soft_time_limit=300, time_limit=360)
def lexeme_stats_compact_task() -> int:
    return lexeme_stats_compact()
