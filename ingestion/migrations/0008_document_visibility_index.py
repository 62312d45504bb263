"""A covering index for the check every search makes per candidate passage: is its document in a readable
collection, and ready? With `collection_id` and `status` in the index the check is an index-only scan, not
a read of the document's row (search/fulltext.py, search/selectors.py; BENCHMARKS.md, issue 14). Built
CONCURRENTLY so a large table is not locked against writes meanwhile."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("ingestion", "0007_drop_chunk_search_vector_gin"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="document",
            index=models.Index(fields=["id"], include=["collection", "status"], name="document_visibility"),
        ),
    ]
