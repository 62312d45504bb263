"""python manage.py ingest PATH... --collection SLUG [--wait] [--create-collection]

The files become one ingest job (`/api/ingest-jobs/{id}`, the admin's "Ingest jobs"). With `--wait` a
progress bar follows it until every document is ready, failed or cancelled; Ctrl-C then cancels the job's
unfinished documents (nothing half-written stays searchable) instead of leaving them running unseen.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.core.management.base import CommandError
from django.db.models import Count
from tqdm import tqdm

from ingestion.models import PENDING_STATES, Collection, Document, IngestJob
from ingestion.progress import ingest_job_progress
from ingestion.services.collections import collection_create
from ingestion.services.documents import document_create
from ingestion.services.jobs import NothingToCancel, ingest_job_cancel, ingest_job_create
from rag_project.commands import MigratedCommand


def _walk(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"No such file or folder: {raw}")
    return files


class Command(MigratedCommand):
    help = "Ingest files and folders into a collection."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--collection", required=True, help="Collection slug")
        parser.add_argument(
            "--create-collection", action="store_true", help="Create the collection if missing"
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Follow the job with a progress bar until every document is ready, failed or cancelled "
            "(Ctrl-C cancels what is unfinished)",
        )
        parser.add_argument("--timeout", type=float, default=0, help="With --wait: give up after N seconds")

    def handle(self, *args, paths, collection, create_collection, wait, timeout, **options):
        target = Collection.objects.filter(slug=collection).first()
        if target is None:
            if not create_collection:
                raise CommandError(f"No collection '{collection}' (use --create-collection to create it).")
            target = collection_create(name=collection, slug=collection)
        files = _walk(paths)
        if not files:
            raise CommandError("No files found.")
        job = ingest_job_create(collection=target, source=IngestJob.Source.CLI, submitted=len(files))
        ids: list[int] = []
        new = duplicates = refused = 0
        progress = tqdm(
            files,
            desc="uploading",
            unit="file",
            disable=options.get("verbosity", 1) == 0,
            file=self.stderr._out,
        )
        for path in progress:
            with path.open("rb") as handle:
                document, created = document_create(
                    collection=target, file=handle, filename=path.name, title=path.name, job=job
                )
            ids.append(document.pk)
            if not created:
                duplicates += 1
            elif document.status == Document.Status.FAILED:
                refused += 1
            else:
                new += 1
        self.stdout.write(
            f"{len(files)} file(s): {new} queued, {duplicates} already present, {refused} refused."
        )
        self.stdout.write(f"job {job.pk}: /api/ingest-jobs/{job.pk}")
        if not wait:
            return
        try:
            counts = self._follow(job, ids, timeout, disable=options.get("verbosity", 1) == 0)
        except KeyboardInterrupt:
            try:
                cancelled = ingest_job_cancel(job)
            except NothingToCancel:
                cancelled = 0
            raise CommandError(
                f"Interrupted: job {job.pk} cancelled ({cancelled} unfinished document(s)).", returncode=130
            ) from None
        failed_docs = Document.objects.filter(pk__in=ids, status=Document.Status.FAILED)
        for document in failed_docs:
            self.stderr.write(f"failed: {document.title}: {document.error}")
        summary = f"ready: {counts.get(Document.Status.READY, 0)}, failed: {failed_docs.count()}"
        if counts.get(Document.Status.CANCELLED):
            summary += f", cancelled: {counts[Document.Status.CANCELLED]}"
        self.stdout.write(summary)
        if failed_docs.exists():
            raise CommandError(f"{failed_docs.count()} document(s) failed.", returncode=2)

    def _follow(self, job: IngestJob, ids: list[int], timeout: float, *, disable: bool) -> dict[str, int]:
        """A progress bar over the uploaded documents (the job's, and duplicates still being ingested by an
        earlier upload) until none is queued or processing; the job's tokens and time left beside it."""
        deadline = time.monotonic() + timeout if timeout else None
        with tqdm(
            total=len(set(ids)), desc=f"job {job.pk}", unit="doc", file=self.stderr._out, disable=disable
        ) as bar:
            while True:
                counts = dict(
                    Document.objects.filter(pk__in=ids)
                    .order_by()
                    .values_list("status")
                    .annotate(n=Count("id"))
                )
                pending = sum(counts.get(state, 0) for state in PENDING_STATES)
                progress = ingest_job_progress(job)
                bar.n = sum(counts.values()) - pending
                bar.set_postfix(
                    {state: n for state, n in counts.items() if n and state not in PENDING_STATES}
                    | {"tokens": progress.tokens_used},
                    refresh=False,
                )
                bar.refresh()
                if not pending:
                    return counts
                if deadline and time.monotonic() > deadline:
                    raise CommandError(f"Timed out with {pending} document(s) unfinished (job {job.pk}).")
                time.sleep(0.5)
