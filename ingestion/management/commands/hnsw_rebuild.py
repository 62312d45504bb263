"""python manage.py hnsw_rebuild [--memory 2GB] [--workers N]"""

from __future__ import annotations

import threading
import time

from django.core.management.base import CommandError
from django.db import DatabaseError, connection

from ingestion.models import Chunk
from ingestion.services.errors import IngestionError
from ingestion.services.spaces import embedding_space_index_rebuild, hnsw_graph_parameters
from rag_project.commands import MigratedCommand
from search.selectors import embedding_space_active

# How often the build's progress is printed (from pg_stat_progress_create_index): a million vectors take
# half an hour.
PROGRESS_SECONDS = 15.0


class Command(MigratedCommand):
    help = (
        "Build the active embedding space's HNSW index again with the current RAG_HNSW_M and "
        "RAG_HNSW_EF_CONSTRUCTION (an index keeps the parameters it was built with), while search and "
        "ingestion go on. No provider calls: the stored vectors are reused."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--memory",
            default="",
            help="maintenance_work_mem for the build, e.g. 2GB (default: the server's); a graph larger "
            "than this is built much more slowly",
        )
        parser.add_argument(
            "--workers", type=int, default=None, help="parallel build workers (default: the server's)"
        )

    def handle(self, *args, memory, workers, **options):
        space = embedding_space_active()
        if space is None:
            raise CommandError("There is no active embedding space yet: nothing to rebuild.")
        m, ef_construction = hnsw_graph_parameters()
        vectors = space.embeddings.count()
        self.stdout.write(
            f"Rebuilding the HNSW index of embedding space {space.pk} ({space.model}): {vectors:,} vectors "
            f"of {Chunk.objects.count():,} passages, m {m}, ef_construction {ef_construction} ..."
        )
        try:
            with connection.cursor() as cursor:
                if memory:
                    cursor.execute("SELECT set_config('maintenance_work_mem', %s, false)", [memory])
                if workers is not None:
                    cursor.execute(
                        "SELECT set_config('max_parallel_maintenance_workers', %s, false)",
                        [str(workers)],
                    )
        except DatabaseError as exc:
            raise CommandError(f"--memory {memory!r} / --workers {workers!r}: {exc}") from exc
        started = time.monotonic()
        done = threading.Event()
        reporter = threading.Thread(target=self._progress_print, args=(done, started), daemon=True)
        reporter.start()
        try:
            definition = embedding_space_index_rebuild(space)
        except IngestionError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            done.set()
            reporter.join()
        self.stdout.write(f"Rebuilt in {time.monotonic() - started:.1f} s: {definition}")

    def _progress_print(self, done: threading.Event, started: float) -> None:
        """The build's phase and share of the table read, every PROGRESS_SECONDS, on this thread's own
        connection (the build holds the command's)."""
        try:
            while not done.wait(PROGRESS_SECONDS):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT phase, blocks_done, blocks_total FROM pg_stat_progress_create_index "
                        "WHERE relid = 'ingestion_chunkembedding'::regclass"
                    )
                    row = cursor.fetchone()
                if row:
                    phase, blocks_done, blocks_total = row
                    share = f", {100 * blocks_done / blocks_total:.0f} %" if blocks_total else ""
                    self.stdout.write(f"  {time.monotonic() - started:.0f} s: {phase}{share}")
        except DatabaseError:
            pass  # progress is a courtesy; the build's own outcome is reported by handle()
        finally:
            connection.close()
