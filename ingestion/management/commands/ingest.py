"""python manage.py ingest PATH... --collection SLUG [--wait] [--create-collection]"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ingestion.models import Collection, Document
from ingestion.services.collections import collection_create
from ingestion.services.documents import document_create


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


class Command(BaseCommand):
    help = "Ingest files and folders into a collection."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--collection", required=True, help="Collection slug")
        parser.add_argument(
            "--create-collection", action="store_true", help="Create the collection if missing"
        )
        parser.add_argument(
            "--wait", action="store_true", help="Wait until every document is ready or failed"
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
                    collection=target, file=handle, filename=path.name, title=path.name
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
        if not wait:
            return
        deadline = time.monotonic() + timeout if timeout else None
        done_states = {Document.Status.READY, Document.Status.FAILED}
        with tqdm(
            total=len(set(ids)),
            desc="ingesting",
            unit="doc",
            file=self.stderr._out,
            disable=options.get("verbosity", 1) == 0,
        ) as bar:
            while True:
                statuses = dict(Document.objects.filter(pk__in=ids).values_list("pk", "status"))
                finished = sum(1 for s in statuses.values() if s in done_states)
                bar.n = finished
                bar.refresh()
                if finished == len(statuses):
                    break
                if deadline and time.monotonic() > deadline:
                    raise CommandError(f"Timed out with {len(statuses) - finished} document(s) unfinished.")
                time.sleep(0.5)
        ready = sum(1 for s in statuses.values() if s == Document.Status.READY)
        failed_docs = Document.objects.filter(pk__in=ids, status=Document.Status.FAILED)
        for document in failed_docs:
            self.stderr.write(f"failed: {document.title}: {document.error}")
        self.stdout.write(f"ready: {ready}, failed: {failed_docs.count()}")
        if failed_docs.exists():
            raise CommandError(f"{failed_docs.count()} document(s) failed.", returncode=2)
