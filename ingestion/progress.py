"""How far an ingest job got: its documents counted by state, the embedding tokens they used, the rate and
the time left. One aggregate query over the job's documents (indexed by `job_id`); nothing is stored, so the
figures can never drift from the documents themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Sum
from django.utils import timezone

from ingestion.models import PENDING_STATES, Document, IngestJob


class JobState:
    """A job's state, derived from its documents: `running` while any is queued or processing."""

    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    values = (RUNNING, FINISHED, CANCELLED)


@dataclass(frozen=True)
class IngestJobProgress:
    state: str
    # Every document state, zero included, so clients need no list of their own.
    counts: dict[str, int]
    total: int
    done: int
    pending: int
    tokens_used: int
    elapsed_seconds: float
    documents_per_second: float | None
    eta_seconds: float | None
    finished_at: datetime | None


def ingest_job_progress(job: IngestJob, *, now: datetime | None = None) -> IngestJobProgress:
    """The job's progress now. The rate is finished documents over the time since the job was created (a
    job waiting behind another one has no rate yet, so no estimate rather than a wrong one)."""
    now = now or timezone.now()
    rows = (
        Document.objects.filter(job=job)
        .order_by()
        .values("status")
        .annotate(n=Count("id"), tokens=Sum("embedding_tokens"), last=Max("updated_at"))
    )
    counts = dict.fromkeys(Document.Status.values, 0)
    tokens = 0
    last: datetime | None = None
    for row in rows:
        counts[row["status"]] = row["n"]
        tokens += row["tokens"] or 0
        if row["last"] is not None and (last is None or row["last"] > last):
            last = row["last"]
    total = sum(counts.values())
    pending = sum(counts[state] for state in PENDING_STATES)
    done = total - pending
    if job.cancelled_at is not None:
        state = JobState.CANCELLED
    elif pending:
        state = JobState.RUNNING
    else:
        state = JobState.FINISHED
    finished_at = None
    if not pending:
        finished_at = max(filter(None, [last, job.cancelled_at]), default=job.created_at)
    end = finished_at or now
    elapsed = max((end - job.created_at).total_seconds(), 0.0)
    rate = done / elapsed if done and elapsed > 0 else None
    eta = None
    if pending and rate:
        eta = round(pending / rate, 1)
    elif not pending:
        eta = 0.0
    return IngestJobProgress(
        state=state,
        counts=counts,
        total=total,
        done=done,
        pending=pending,
        tokens_used=tokens,
        elapsed_seconds=round(elapsed, 3),
        documents_per_second=round(rate, 3) if rate is not None else None,
        eta_seconds=eta,
        finished_at=finished_at,
    )
