from django.db import models


class SmokeRecord(models.Model):
    """Written by the smoke task; lets a test see that a real worker consumed a message."""

    token = models.CharField(max_length=64, unique=True)
    worker_hostname = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.token
