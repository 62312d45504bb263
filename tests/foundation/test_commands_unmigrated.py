"""A command run against a database that was never migrated says what to do, instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from rag_project.commands import migrations_pending
from tests.conftest import database_url_for_subprocess

REPO = Path(__file__).resolve().parents[2]


def test_the_test_database_has_no_pending_migrations(db):
    assert migrations_pending() == 0


@pytest.mark.django_db(transaction=True)
def test_evaluate_on_an_empty_database_asks_for_migrate_and_exits_1():
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        url = database_url_for_subprocess().rsplit("/", 1)[0] + f"/{name}"
        env = {**os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "1", "DJANGO_SECRET_KEY": "test"}
        done = subprocess.run(
            [sys.executable, "manage.py", "evaluate", "--dataset", "benchmarks/data/scifact-mini"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr[-2000:]
        assert "run `python manage.py migrate` first" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
