"""Search stage timings into Prometheus, from the QueryLog row every search and ask already writes
(its `timings`: embed, vector, fulltext, fuse, rerank, answer, ..., total, in milliseconds)."""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from operations.metrics import search_stage_seconds
from search.models import QueryLog


@receiver(post_save, sender=QueryLog, dispatch_uid="operations.search_stage_timings")
def search_timings_observe(sender, instance: QueryLog, created: bool, **kwargs) -> None:
    if not created:
        return
    for stage, ms in (instance.timings or {}).items():
        if isinstance(ms, int | float):
            search_stage_seconds.labels(instance.kind, stage).observe(ms / 1000)
