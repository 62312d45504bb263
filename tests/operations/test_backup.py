"""manage.py backup, then manage.py restore into a fresh data folder (its own embedded PostgreSQL): every
document comes back, its uploaded file too, and each is found by both retrieval legs (HNSW and BM25)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.core.files.base import ContentFile

from ingestion.models import Document
from ingestion.services.documents import document_create
from ingestion.services.pipeline import documents_ingest
from ingestion.services.spaces import embedding_space_get_or_create_active
from rag_project.embedded_db import embedded_database_stop
from tests.conftest import REPO_ROOT, database_url_for_subprocess
from tests.factories import CollectionFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TEXTS = [
    "Boiler maintenance: descale the heat exchanger every spring and log the pressure readings.",
    "Expense reports are due on the fifth working day; receipts above fifty euros need a scan.",
    "Parking on level minus two is reserved for staff with a blue badge.",
    "The quarterly security review audits firewall rules, VPN accounts and dormant API keys.",
]

# Run in the restored service: for every document, its first passage's text as the query; both legs
# must return that passage among their first ten.
VERIFY = """
import json
from pathlib import Path
from ingestion.models import Chunk, Document
from search.fulltext import fulltext_candidates
from search.selectors import embedding_space_active, query_embed, vector_candidates
from search.types import SearchFilters
space = embedding_space_active()
report = {"documents": 0, "vector_misses": [], "fulltext_misses": [], "missing_files": []}
for document in Document.objects.all():
    report["documents"] += 1
    chunk = Chunk.objects.filter(document=document).order_by("ordinal").first()
    cids = [document.collection_id]
    hits = [c for c, _ in vector_candidates(query_embed(chunk.text, space), space, cids, SearchFilters(), 10)]
    if chunk.pk not in hits:
        report["vector_misses"].append(document.pk)
    if chunk.pk not in [c for c, _ in fulltext_candidates(chunk.text, cids, SearchFilters(), 10)]:
        report["fulltext_misses"].append(document.pk)
    if document.file and not Path(document.file.path).is_file():
        report["missing_files"].append(document.pk)
print("REPORT " + json.dumps(report))
"""


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_a_backup_restores_into_a_fresh_data_folder_with_every_document_searchable(
    tmp_path, genapi, settings
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    collection = CollectionFactory(slug="backed-up", is_public=True)
    embedding_space_get_or_create_active()
    documents = [
        document_create(collection=collection, title=f"Text {i}", text=t)[0] for i, t in enumerate(TEXTS)
    ]
    upload, _ = document_create(
        collection=collection,
        title="Uploaded",
        file=ContentFile(
            b"# Lockers\n\nLockers are emptied every Friday evening by facilities.\n", name="lockers.md"
        ),
        filename="lockers.md",
    )
    documents.append(upload)
    documents_ingest([d.pk for d in documents])
    assert set(Document.objects.values_list("status", flat=True)) == {"ready"}
    assert upload.file and os.path.isfile(upload.file.path)

    source_env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_BROKER", "DATABASE_"))}
    source_env.update(DATABASE_URL=database_url_for_subprocess(), RAG_MEDIA_ROOT=settings.MEDIA_ROOT)
    archive = tmp_path / "backup.tar"
    made = manage(source_env, "backup", str(archive))
    assert f"backed up {len(documents)} documents" in made.stdout and "1 files" in made.stdout

    fresh = tmp_path / "fresh"
    fresh_env = {k: v for k, v in source_env.items() if not k.startswith(("DATABASE_", "RAG_MEDIA_ROOT"))}
    fresh_env.update(RAG_DATA_DIR=str(fresh))
    try:
        restored = manage(fresh_env, "restore", str(archive))
        assert f"restored {len(documents)} documents" in restored.stdout
        # Restoring again over documents is refused, not merged.
        again = subprocess.run(
            [sys.executable, "manage.py", "restore", str(archive)],
            cwd=REPO_ROOT, env=fresh_env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert again.returncode != 0 and "already holds documents" in again.stderr

        out = manage(fresh_env, "shell", "-c", VERIFY).stdout
        report = json.loads(out.split("REPORT ", 1)[1])
        assert report == {"documents": len(documents), "vector_misses": [], "fulltext_misses": [],
                          "missing_files": []}  # fmt: skip
        assert (fresh / "media" / upload.file.name).read_bytes().startswith(b"# Lockers")
    finally:
        embedded_database_stop(fresh)
