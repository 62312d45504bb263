"""python manage.py reembed --model NAME [--dimensions N] [--wait]"""

from __future__ import annotations

import time

from django.core.management.base import CommandError

from ingestion.models import Chunk, EmbeddingSpace
from ingestion.services.errors import IngestionError
from ingestion.services.spaces import embedding_space_build
from rag_project.commands import MigratedCommand


class Command(MigratedCommand):
    help = "Re-embed every passage with another model; search switches when the new space is complete."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True)
        parser.add_argument("--dimensions", type=int, default=None)
        parser.add_argument("--wait", action="store_true", help="Wait until the new space is active")
        parser.add_argument("--timeout", type=float, default=0)

    def handle(self, *args, model, dimensions, wait, timeout, **options):
        try:
            space = embedding_space_build(model, dimensions)
        except IngestionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"Building embedding space {space.pk}: {space.model}, {space.dimensions} dimensions."
        )
        if not wait:
            return
        deadline = time.monotonic() + timeout if timeout else None
        total = Chunk.objects.count()
        while True:
            space.refresh_from_db()
            if space.is_active:
                break
            done = space.embeddings.count()
            self.stdout.write(f"  {done}/{total} passages embedded", ending="\r")
            if deadline and time.monotonic() > deadline:
                raise CommandError("Timed out; the build continues in the background.")
            if space.status == EmbeddingSpace.Status.RETIRED:
                raise CommandError("The build was abandoned.")
            time.sleep(1)
        # The progress line ends in a carriage return: finish it before the last message.
        self.stdout.write("")
        self.stdout.write(f"Embedding space {space.pk} ({space.model}) is now active.")
