"""Keeping an ingestion lease alive: while a worker holds documents, a thread renews their lease.

A worker that dies (SIGKILL, out of memory, a lost machine) stops renewing, so the sweeper notices within
RAG_LEASE_SECONDS instead of waiting for a timeout sized for the slowest document. Renewal is guarded by the
lease itself (`processing_started_at`), so a worker whose lease was already taken over cannot revive it, and
results are only written under a held lease (pipeline.py): a lost-then-resumed worker never duplicates rows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)


def leases_renew(document_ids: list[int], lease: datetime) -> int:
    """Renew the lease on the documents still held under `lease`; how many were."""
    # Raw: one statement, run from the heartbeat thread on its own connection.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ingestion_document SET lease_renewed_at = now() "
            "WHERE id = ANY(%s) AND status = 'processing' AND processing_started_at = %s",
            [list(document_ids), lease],
        )
        return cursor.rowcount


def _renew_until(document_ids: list[int], lease: datetime, stop: threading.Event) -> None:
    try:
        while not stop.wait(settings.RAG_LEASE_RENEW_SECONDS):
            try:
                if not leases_renew(document_ids, lease):
                    return  # nothing held any more: finished, or taken over by the sweeper
            except DatabaseError as exc:
                # The database restarting: keep trying; if it stays away the lease lapses, as it should.
                logger.warning("lease renewal of %d documents failed: %s", len(document_ids), exc)
                connection.close()
    finally:
        connection.close()  # this thread's own connection


@contextmanager
def lease_kept(document_ids: list[int], lease: datetime | None) -> Iterator[None]:
    """Renew the lease every RAG_LEASE_RENEW_SECONDS while the block runs."""
    if not document_ids or lease is None:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(
        target=_renew_until, args=(list(document_ids), lease, stop), name="lease-heartbeat", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
