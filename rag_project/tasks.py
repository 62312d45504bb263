"""A smoke task that proves the queue path end to end: it writes a row a test can read back."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="rag_project.smoke", bind=True, max_retries=3)
def smoke(self, token: str) -> str:
    from rag_project.models import SmokeRecord

    SmokeRecord.objects.get_or_create(token=token, defaults={"worker_hostname": self.request.hostname or ""})
    return token
