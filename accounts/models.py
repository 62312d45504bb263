"""API keys for services. A key acts as its user, optionally narrowed to collections and scopes."""

from __future__ import annotations

from django.conf import settings
from django.db import models


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
    scopes = models.JSONField(default=list, blank=True, help_text='e.g. ["search", "ask"]; empty means all.')
    collections = models.ManyToManyField(
        "ingestion.Collection", blank=True, help_text="Narrow the key to these collections (empty: all the user may read)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
