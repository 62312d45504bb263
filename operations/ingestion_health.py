"""What the admin's ingestion health page shows: documents by state, the stuck ones, failures grouped by
reason, throughput per hour, provider usage and cost per day. Reads only; documents are limited to the
collections the viewer may read (ingestion.selectors)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import Left, TruncHour
from django.utils import timezone

from ingestion.models import Document
from ingestion.selectors import documents_readable
from operations.models import ProviderUsageDay
from operations.prices import cost_eur

LIST_LIMIT = 50
REASON_CHARS = 300


def documents_visible(user) -> QuerySet[Document]:
    return documents_readable(user).order_by()


def documents_stuck(user) -> QuerySet[Document]:
    """Queued or processing for longer than RAG_STUCK_DOCUMENT_SECONDS: waiting on a lost task, a dead
    worker's lease or a provider that does not answer."""
    since = timezone.now() - timedelta(seconds=settings.RAG_STUCK_DOCUMENT_SECONDS)
    return (
        documents_visible(user)
        .filter(
            Q(status=Document.Status.QUEUED, updated_at__lt=since)
            | Q(status=Document.Status.PROCESSING, processing_started_at__lt=since)
        )
        .select_related("collection")
        .order_by("updated_at")
    )


def failure_reasons(user) -> list[dict]:
    """Failed documents grouped by the start of their error (the reason, without the per-document tail)."""
    return list(
        documents_visible(user)
        .filter(status=Document.Status.FAILED)
        .annotate(reason=Left("error", REASON_CHARS))
        .values("reason")
        .annotate(documents=Count("id"), last=Max("updated_at"))
        .order_by("-documents", "-last")[:LIST_LIMIT]
    )


def throughput_per_hour(user, hours: int = 24) -> list[dict]:
    """Documents that reached `ready` or `failed` in each of the last `hours` hours (by their last update)."""
    since = timezone.now() - timedelta(hours=hours)
    return list(
        documents_visible(user)
        .filter(status__in=[Document.Status.READY, Document.Status.FAILED], updated_at__gte=since)
        .annotate(hour=TruncHour("updated_at"))
        .values("hour")
        .annotate(
            ready=Count("id", filter=Q(status=Document.Status.READY)),
            failed=Count("id", filter=Q(status=Document.Status.FAILED)),
        )
        .order_by("-hour")
    )


def provider_usage_days(days: int = 14) -> list[dict]:
    """Per day: rows per (endpoint, model) with their cost, and the day's total (None parts unpriced)."""
    since = timezone.now().date() - timedelta(days=days - 1)
    result: dict = {}
    for row in ProviderUsageDay.objects.filter(day__gte=since).order_by("-day", "endpoint", "model"):
        cost = cost_eur(row.model, row.input_tokens, row.output_tokens)
        day = result.setdefault(row.day, {"day": row.day, "rows": [], "cost": Decimal(0), "unpriced": False})
        day["rows"].append({"usage": row, "cost": cost})
        if cost is None:
            day["unpriced"] = True
        else:
            day["cost"] += cost
    return list(result.values())


def ingestion_health(user) -> dict:
    visible = documents_visible(user)
    by_state = dict(visible.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    stuck = documents_stuck(user)
    hour_ago = timezone.now() - timedelta(hours=1)
    return {
        "by_state": {state: by_state.get(state, 0) for state in Document.Status.values},
        "stuck_seconds": settings.RAG_STUCK_DOCUMENT_SECONDS,
        "stuck_count": stuck.count(),
        "stuck": list(stuck[:LIST_LIMIT]),
        "failure_reasons": failure_reasons(user),
        "throughput": throughput_per_hour(user),
        "ready_last_hour": visible.filter(status=Document.Status.READY, updated_at__gte=hour_ago).count(),
    }
