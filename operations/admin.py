"""Admin: the ingestion health page (stuck documents, failures by reason, throughput, provider usage and
cost per day) and the provider usage table."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse

from operations.ingestion_health import ingestion_health, provider_usage_days
from operations.models import IngestionHealth, ProviderUsageDay
from operations.prices import cost_eur
from rag_project.admin_mixins import ReadOnlyAdminMixin


@admin.register(IngestionHealth)
class IngestionHealthAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """One read-only page instead of a change list. Staff see the documents of the collections they may
    read; provider usage and cost (the whole service's) only superusers."""

    superuser_only = False

    def changelist_view(self, request, extra_context=None):
        context = {
            **self.admin_site.each_context(request),
            "title": "Ingestion health",
            "opts": self.model._meta,
            "health": ingestion_health(request.user),
            "usage_days": provider_usage_days() if request.user.is_superuser else None,
        }
        return TemplateResponse(request, "admin/operations/ingestion_health.html", context)


@admin.register(ProviderUsageDay)
class ProviderUsageDayAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Usage is the service's account of its spending: only superusers see it, nobody edits it."""

    list_display = ["day", "endpoint", "model", "calls", "input_tokens", "output_tokens", "rate_limited",
                    "errors", "cost"]  # fmt: skip
    list_filter = ["endpoint", "model"]
    date_hierarchy = "day"

    @admin.display(description="cost (EUR)")
    def cost(self, obj: ProviderUsageDay) -> str:
        value = cost_eur(obj.model, obj.input_tokens, obj.output_tokens)
        return "unpriced" if value is None else f"{value:.4f}"
