"""manage.py restore FILE: a backup into this service's database and media folder, then migrations."""

from __future__ import annotations

from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from operations.backups import BackupError, backup_restore, counts


class Command(BaseCommand):
    help = (
        "Restore a `manage.py backup` file into an empty database (a fresh RAG_DATA_DIR, or a new "
        "DATABASE_URL) and its uploaded files into MEDIA_ROOT. Stop the service first."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument(
            "--replace", action="store_true", help="overwrite a database that already holds documents"
        )

    def handle(self, *args, **options):
        try:
            manifest = backup_restore(Path(options["file"]), replace=options["replace"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        # A backup taken by an older version: bring its schema up to this one.
        call_command("migrate", "--noinput", verbosity=0)
        found, expected = counts(), manifest["counts"]
        self.stdout.write(
            f"restored {found['documents']} documents, {found['passages']} passages and {found['vectors']} "
            f"vectors (the backup of {manifest['created_at']} had {expected['documents']}, "
            f"{expected['passages']}, {expected['vectors']}) and {manifest['media_files']} files"
        )
        if found != expected:
            raise CommandError("the restored counts differ from the backup's")
