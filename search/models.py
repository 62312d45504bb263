"""What people and services ask, what they got back, and what it cost."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class QueryLog(models.Model):
    """One search or question. Written for every call, failed ones included (with `error`)."""

    class Kind(models.TextChoices):
        SEARCH = "search"
        ASK = "ask"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="query_logs"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="query_logs"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    channel = models.CharField(max_length=32, blank=True, help_text="api, page, openai, ...")
    query = models.TextField()
    # For follow-up questions: the query actually searched (rewritten from the history).
    search_query = models.TextField(blank=True)
    mode = models.CharField(max_length=16, blank=True)
    collection_ids = models.JSONField(default=list, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    chunk_ids = models.JSONField(default=list, blank=True, help_text="Passages returned, best first.")
    cited_chunk_ids = models.JSONField(default=list, blank=True)
    model = models.CharField(max_length=200, blank=True)
    api = models.CharField(max_length=16, blank=True, help_text="chat or responses")
    streamed = models.BooleanField(default=False)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    reranked = models.BooleanField(default=False)
    rerank_tokens = models.PositiveIntegerField(
        default=0, help_text="Rerank tokens billed (0 when skipped or answered from the cache)."
    )
    timings = models.JSONField(
        default=dict, blank=True, help_text="Milliseconds per stage (embed, vector, fulltext, ..., total)."
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.query[:60]}"
