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


class Conversation(models.Model):
    """A thread of questions and answers, kept per user. Each turn's follow-up is rewritten into a
    standalone query before retrieval, using the thread's earlier turns."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True, help_text="Default: the first question.")
    # Slugs chosen when the thread started; every answer is still limited to what the caller may read then.
    collections = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class ConversationTurn(models.Model):
    """One question of a conversation, the query it was rewritten into, and the answer it got."""

    class RewriteMethod(models.TextChoices):
        NONE = "none", "first question, searched as asked"
        MODEL = "model", "rewritten by the chat model"
        TERMS = "terms", "previous question's key terms added"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    question = models.TextField()
    search_query = models.TextField(blank=True, help_text="The standalone query that was searched.")
    rewrite_method = models.CharField(max_length=8, choices=RewriteMethod.choices, default=RewriteMethod.NONE)
    answer = models.TextField(blank=True)
    citations = models.JSONField(default=list, blank=True)
    found = models.BooleanField(default=True)
    error = models.TextField(blank=True, help_text="Why the answer failed, when it did.")
    query_log = models.ForeignKey(
        QueryLog, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversation_id", "created_at", "id"]

    def __str__(self) -> str:
        return self.question[:60]


class Feedback(models.Model):
    """A thumbs up or down on an answer or a search, with an optional comment and the passage the person
    expected. `manage.py evaluate --from-feedback` turns these into judged queries."""

    class Rating(models.IntegerChoices):
        UP = 1, "thumbs up"
        DOWN = -1, "thumbs down"

    query_log = models.ForeignKey(QueryLog, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="feedback")
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True)
    expected_chunk = models.ForeignKey(
        "ingestion.Chunk", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The passage the person expected to see (judged relevant).",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # One opinion per person per answer: giving it again changes it.
        constraints = [models.UniqueConstraint(fields=["query_log", "user"], name="feedback_one_per_user")]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on {self.query_log_id}"
