"""The database cache's table unlogged: a commit that only touches it then waits for no WAL flush.

The cache holds throttle counters and rerank results, written on every API request; with a logged table each
of those commits waited for an fsync (5-10 ms on the benchmark machine) on the request's path. An unlogged
table is emptied after a crash, which a cache may be. A no-op when the cache is not the database cache.
"""

from django.conf import settings
from django.db import migrations

# Django's database cache, or ours (rag_project.cache.DatabaseCache, the default: a subclass).
DATABASE_CACHES = ("django.core.cache.backends.db.DatabaseCache", "rag_project.cache.DatabaseCache")


def _cache_tables() -> list[str]:
    return [conf["LOCATION"] for conf in settings.CACHES.values() if conf.get("BACKEND") in DATABASE_CACHES]


def unlogged(apps, schema_editor):
    for table in _cache_tables():
        schema_editor.execute(f'ALTER TABLE IF EXISTS "{table}" SET UNLOGGED')


def logged(apps, schema_editor):
    for table in _cache_tables():
        schema_editor.execute(f'ALTER TABLE IF EXISTS "{table}" SET LOGGED')


class Migration(migrations.Migration):
    dependencies = [("rag_project", "0003_delete_smokerecord")]
    operations = [migrations.RunPython(unlogged, logged)]
