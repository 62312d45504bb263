"""The base of the management commands that read or write the service's tables."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor


def migrations_pending(alias: str = DEFAULT_DB_ALIAS) -> int:
    """How many migrations the database still lacks (0 when its tables match the code)."""
    connection = connections[alias]
    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


class MigratedCommand(BaseCommand):
    """A command that needs the tables: on a database that was never migrated (a new RAG_DATA_DIR, a fresh
    DATABASE_URL) it says what to run instead of failing deep inside with `relation ... does not exist`."""

    def execute(self, *args, **options):
        pending = migrations_pending()
        if pending:
            raise CommandError(
                f"the database lacks {pending} migration(s): run `python manage.py migrate` first "
                "(`make run` does it on its first start)"
            )
        return super().execute(*args, **options)
