"""manage.py backup [FILE]: the database and the uploaded files, in one tar file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from operations.backups import BackupError, backup_create


class Command(BaseCommand):
    help = "Back up the database (pg_dump) and the uploaded files (MEDIA_ROOT) into one tar file."

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            nargs="?",
            help="where to write it (default: citable-backup-<UTC time>.tar in the current folder)",
        )

    def handle(self, *args, **options):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        destination = Path(options["file"] or f"citable-backup-{stamp}.tar").resolve()
        try:
            manifest = backup_create(destination)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        found = manifest["counts"]
        self.stdout.write(
            f"backed up {found['documents']} documents, {found['passages']} passages, {found['vectors']} "
            f"vectors and {manifest['media_files']} files to {destination}"
        )
