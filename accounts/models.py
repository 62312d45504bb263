"""API keys for services. A key acts as its user, optionally narrowed to collections and scopes."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiKey(models.Model):
    class Scope(models.TextChoices):
        SEARCH = "search"
        ASK = "ask"
        INGEST = "ingest"
        ADMIN = "admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    # Shown in the admin and used to find the row; the secret itself is only stored hashed.
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scopes = models.JSONField(
        default=list,
        blank=True,
        help_text='e.g. ["search", "ask"]; empty means what the user may do ("ingest"/"admin" need staff).',
    )
    collections = models.ManyToManyField(
        "ingestion.Collection",
        blank=True,
        help_text="Narrow the key to these collections (empty and not narrowed: all the user may read).",
    )
    # Kept separately from `collections` so that deleting the last chosen collection can never widen a
    # narrowed key to everything its user may read: narrowed with no collections reads nothing.
    collections_narrowed = models.BooleanField(
        default=False,
        help_text="Only the chosen collections are readable (set automatically when collections are chosen).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
            and self.user.is_active
        )


class LoginAttemptCount(models.Model):
    """Sign-in attempts counted under one key (a username from an address, or an address) in a window.

    A database row rather than a cache entry: it is incremented by one atomic upsert before the password
    is checked, so parallel attempts cannot all pass the limit (the database cache's incr is a get+set).
    """

    key = models.CharField(max_length=100, primary_key=True)
    count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
