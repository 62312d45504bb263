"""Admin for ingest jobs: uploads followed as one (counts by state, tokens, rate, time left) and cancelled."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from ingestion.admin import _writable
from ingestion.models import IngestJob
from ingestion.progress import ingest_job_progress
from ingestion.selectors import collections_readable, collections_writable
from ingestion.services.jobs import NothingToCancel, ingest_job_cancel


@admin.register(IngestJob)
class IngestJobAdmin(admin.ModelAdmin):
    """Uploads followed as one: counts by state, tokens, rate and time left, read from the documents."""

    list_display = [
        "id",
        "collection",
        "source",
        "created_by",
        "created_at",
        "state",
        "counts",
        "tokens",
        "eta",
    ]
    list_filter = ["source", ("collection", admin.RelatedOnlyFieldListFilter)]
    fields = [
        "collection",
        "source",
        "created_by",
        "created_at",
        "submitted",
        "state",
        "counts",
        "tokens",
        "rate",
        "eta",
        "finished_at",
        "cancelled_at",
        "cancelled_by",
        "documents_link",
    ]
    readonly_fields = fields
    actions = ["cancel_selected"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(collection__in=collections_readable(request.user).values("pk"))
            .select_related("collection", "created_by", "cancelled_by")
        )

    def has_add_permission(self, request):
        return False  # jobs are made by uploads

    # Cancelling needs the job change permission and a writable collection; everything else is read-only.
    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _writable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # the documents are what one deletes; a job is their history

    def _progress(self, obj):
        # Kept on the row (the admin instance is shared by every request): one query per job shown.
        if not hasattr(obj, "_progress"):
            obj._progress = ingest_job_progress(obj)
        return obj._progress

    @admin.display(description="State")
    def state(self, obj):
        return self._progress(obj).state

    @admin.display(description="Documents by state")
    def counts(self, obj):
        counts = self._progress(obj).counts
        return ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "none"

    @admin.display(description="Embedding tokens")
    def tokens(self, obj):
        return f"{self._progress(obj).tokens_used:,}"

    @admin.display(description="Rate")
    def rate(self, obj):
        rate = self._progress(obj).documents_per_second
        return "-" if rate is None else f"{rate:.2f} documents/s"

    @admin.display(description="Time left")
    def eta(self, obj):
        progress = self._progress(obj)
        if not progress.pending:
            return "done"
        return "-" if progress.eta_seconds is None else f"{progress.eta_seconds:.0f} s"

    @admin.display(description="Finished")
    def finished_at(self, obj):
        return self._progress(obj).finished_at or "-"

    @admin.display(description="Documents")
    def documents_link(self, obj):
        url = reverse("admin:ingestion_document_changelist") + f"?job__id__exact={obj.pk}"
        return format_html('<a href="{}">the job\'s documents</a>', url)

    @admin.action(
        description="Cancel selected jobs (their queued and processing documents)", permissions=["change"]
    )
    def cancel_selected(self, request, queryset):
        jobs = cancelled = 0
        for job in queryset.filter(collection__in=collections_writable(request.user).values("pk")):
            try:
                cancelled += ingest_job_cancel(job, cancelled_by=request.user)
                jobs += 1
            except NothingToCancel:
                continue
        self.message_user(request, f"{jobs} job(s) cancelled ({cancelled} document(s)).")
