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
    # A broker restart: the worker reconnects for as long as it takes; a producer (the web process
    # queueing an upload) retries for about 15 s before giving up, then the sweeper sends the documents.
    broker_connection_max_retries=None,
    task_publish_retry_policy={
        "max_retries": 10,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 2,
    },
    worker_hijack_root_logger=False,
    # beat_schedule: CELERY_BEAT_SCHEDULE in settings (it reads RAG_SWEEP_SECONDS).
)
# Celery's Django fixup closes every database connection before and after each task unless this is set:
# a new PostgreSQL backend for every task, each paying its start and cold caches (the postings trigger's
# PL/pgSQL compiled again, the tables' and the HNSW index's metadata read again) for every group of 50
# documents. Connections are kept as a web process keeps them instead: operations/celery_signals.py closes
# them when Django would (past CONN_MAX_AGE, after an error, a failed health check), and the fixup
# recycles them after this many tasks.
app.conf["CELERY_DB_REUSE_MAX"] = 1000
app.autodiscover_tasks()
