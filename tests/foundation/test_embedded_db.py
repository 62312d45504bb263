"""The embedded PostgreSQL has pgvector and is shared safely between processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not settings.EMBEDDED_DATABASE_URI, reason="DATABASE_URL is set: the embedded server is not in use"
)


@pytest.mark.django_db
def test_vector_extension_is_installed_by_the_first_migration():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        cursor.execute("SELECT '[1,2,3]'::halfvec(3) <=> '[1,2,4]'::halfvec(3)")
        (distance,) = cursor.fetchone()
    assert tuple(int(part) for part in version.split(".")[:2]) >= (0, 8)
    assert 0 < distance < 0.1


def postmaster_pid() -> int:
    return int((settings.RAG_DATA_DIR / "postgres" / "postmaster.pid").read_text().splitlines()[0])


@pytest.mark.django_db
def test_a_second_process_attaches_to_the_same_server_and_leaves_it_running():
    pid_before = postmaster_pid()
    script = (
        "from pathlib import Path; import psycopg, sys\n"
        "from rag_project.embedded_db import embedded_database_uri\n"
        f"uri = embedded_database_uri(Path({str(settings.RAG_DATA_DIR)!r}))\n"
        "with psycopg.connect(uri) as conn:\n"
        "    print(conn.execute('SELECT pg_postmaster_start_time()').fetchone()[0])\n"
    )
    for _ in range(2):  # twice: the second attach must find the server the first one left running
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    assert postmaster_pid() == pid_before
    # This process's own connection still works after the other processes exited.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
