"""The passages' GIN index on `search_vector` goes: nothing searches passages by content through it.

Full-text retrieval reads the BM25 postings (search/fulltext.py, kept by a trigger), and highlighting
(search/selectors.py `highlights_add`) matches `search_vector @@ query` only on passages already chosen by
id, a primary-key lookup. Maintaining the GIN index cost every ingestion write (BENCHMARKS.md, issue 15).
Dropped CONCURRENTLY so a large table is not locked against reads and writes meanwhile.
"""

from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("ingestion", "0006_ingest_jobs"),
    ]

    operations = [
        RemoveIndexConcurrently(model_name="chunk", name="chunk_search_vector_gin"),
    ]
