"""Service-wide gauges read at scrape time: documents by state and the task queue's depth.

They describe shared state (the database, the broker), so any process answering /metrics can read them
directly; recording them per process would double-count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2.0


def documents_by_state() -> dict[str, int]:
    from django.db.models import Count

    from ingestion.models import Document

    counts = {state: 0 for state in Document.Status.values}
    for row in Document.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts


def queue_depth(queue: str) -> int:
    """Messages waiting in `queue` (not those a worker holds unacknowledged), from the broker itself."""
    from rag_project.celery import app

    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        # A passive declare answers the message count on every kombu transport (Redis, SQLAlchemy, AMQP).
        # Redis keeps no empty lists, so an empty queue there is "not found": that is a depth of 0.
        try:
            return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
        except conn.channel_errors:
            return 0


class ServiceStateCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from django.conf import settings

        documents = GaugeMetricFamily("citable_documents", "Documents by ingestion state.", labels=["state"])
        try:
            for state, count in documents_by_state().items():
                documents.add_metric([state], count)
        except Exception:  # noqa: BLE001 - a scrape must still answer (the up metric tells)
            log.exception("metrics: could not count documents")
        yield documents

        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        depth = GaugeMetricFamily(
            "citable_queue_depth", "Tasks waiting in the broker queue.", labels=["queue"]
        )
        up = GaugeMetricFamily("citable_broker_up", "1 when the broker answered this scrape.")
        try:
            depth.add_metric([queue], queue_depth(queue))
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - an empty queue may not exist yet; a broker may be down
            log.warning("metrics: no queue depth for %s: %s: %s", queue, type(exc).__name__, exc)
            up.add_metric([], 0)
        yield depth
        yield up
