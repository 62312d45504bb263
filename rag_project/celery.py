"""The Celery app. Tasks are thin (primary keys in, a service call out); settings live in Django settings."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rag_project.settings")

app = Celery("rag_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    # A task whose worker died is redelivered rather than lost: acks_late plus reject on loss.
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    beat_schedule={
        "documents-sweep-stale": {"task": "ingestion.documents_sweep_stale", "schedule": 60.0},
        # Folds full-text statistics deltas into totals (reads stay exact either way, just shorter).
        "search-lexeme-stats-compact": {"task": "search.lexeme_stats_compact", "schedule": 300.0},
    },
)
app.autodiscover_tasks()
