from __future__ import annotations

from django.db import models

from ingestion.models import Document


class ProviderUsageDay(models.Model):
    """Provider usage per UTC day, endpoint and model: what the admin's cost per day is computed from.

    Written by `operations.provider_usage` from the genapi client's hooks (successful calls and tokens,
    429s and failed attempts), added up in each process and folded in with one upsert per row.
    """

    day = models.DateField()
    endpoint = models.CharField(max_length=64)
    model = models.CharField(max_length=200, blank=True)
    calls = models.BigIntegerField(default=0, help_text="Successful calls (retries not counted twice).")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    rate_limited = models.BigIntegerField(default=0, help_text="Attempts the provider answered 429.")
    errors = models.BigIntegerField(default=0, help_text="Other failed attempts: 5xx, 4xx, timeouts.")
    latency_ms_total = models.FloatField(default=0, help_text="Sum over successful calls.")

    class Meta:
        ordering = ["-day", "endpoint", "model"]
        verbose_name = "provider usage (per day)"
        verbose_name_plural = "provider usage (per day)"
        constraints = [
            models.UniqueConstraint(fields=["day", "endpoint", "model"], name="provider_usage_day_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.endpoint} {self.model}"


class IngestionHealth(Document):
    """No table: a proxy so the admin lists an "Ingestion health" page next to the documents."""

    class Meta:
        proxy = True
        verbose_name = "ingestion health"
        verbose_name_plural = "ingestion health"
