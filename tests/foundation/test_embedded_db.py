"""The embedded PostgreSQL has pgvector and is shared safely between processes."""

from __future__ import annotations

import os
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


def test_server_settings_are_sized_for_the_machine():
    from rag_project.embedded_db import embedded_server_settings

    big = embedded_server_settings(24 * 2**30)
    assert (big["shared_buffers"], big["effective_cache_size"], big["maintenance_work_mem"]) == (
        "4096MB", "12288MB", "1024MB",
    )  # fmt: skip
    small = embedded_server_settings(2 * 2**30)
    assert (small["shared_buffers"], small["effective_cache_size"], small["maintenance_work_mem"]) == (
        "512MB", "1024MB", "128MB",
    )  # fmt: skip
    assert big["max_wal_size"] == small["max_wal_size"] == "4GB"


def test_configuring_writes_the_file_and_includes_it_once(tmp_path):
    from rag_project.embedded_db import TUNING_FILE, embedded_server_configure

    (tmp_path / "postgresql.conf").write_text("shared_buffers = 128MB\n")
    assert embedded_server_configure(tmp_path, 8 * 2**30) is True
    assert embedded_server_configure(tmp_path, 8 * 2**30) is False  # nothing changed, no reload
    conf = (tmp_path / "postgresql.conf").read_text()
    assert conf.count(f"include_if_exists = '{TUNING_FILE}'") == 1
    # Included last, so it wins over initdb's own values above it.
    assert conf.rstrip().endswith(f"include_if_exists = '{TUNING_FILE}'")
    assert "shared_buffers = '2048MB'" in (tmp_path / TUNING_FILE).read_text()
    assert embedded_server_configure(tmp_path, 16 * 2**30) is True  # another machine: rewritten


@pytest.mark.django_db
def test_the_running_server_reads_the_sized_configuration():
    from rag_project.embedded_db import TUNING_FILE, embedded_server_settings

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, setting, error FROM pg_file_settings WHERE sourcefile LIKE %s", [f"%/{TUNING_FILE}"]
        )
        from_file = {name: (setting, error) for name, setting, error in cursor.fetchall()}
        cursor.execute(
            "SELECT current_setting('max_wal_size'), current_setting('checkpoint_timeout'), "
            "pg_size_bytes(current_setting('shared_buffers'))"
        )
        max_wal, checkpoint_timeout, shared_buffers = cursor.fetchone()
    expected = embedded_server_settings(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    assert {name: setting for name, (setting, _) in from_file.items()} == expected
    # Reloadable settings apply even to a server that was running before the file was written.
    assert (max_wal, checkpoint_timeout) == ("4GB", "15min")
    # shared_buffers only at a start: in effect, or (a server started before the file) pending a restart.
    if from_file["shared_buffers"][1] is None:
        assert shared_buffers == int(expected["shared_buffers"].removesuffix("MB")) * 2**20
    else:
        assert from_file["shared_buffers"][1] == "setting could not be applied"
    assert all(error is None for name, (_, error) in from_file.items() if name != "shared_buffers")


def test_allocator_settings_add_to_the_callers_own():
    from rag_project.embedded_db import embedded_server_tunables

    ours = "glibc.malloc.trim_threshold=67108864:glibc.malloc.mmap_threshold=33554432"
    assert embedded_server_tunables({}) == ours
    theirs = {"GLIBC_TUNABLES": "glibc.cpu.x86_ibt=0"}
    assert embedded_server_tunables(theirs) == f"glibc.cpu.x86_ibt=0:{ours}"
    # A threshold the caller chose is theirs.
    assert embedded_server_tunables({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}) == (
        "glibc.malloc.trim_threshold=1:glibc.malloc.mmap_threshold=33554432"
    )


def test_the_allocator_settings_are_set_only_while_a_server_starts(monkeypatch):
    from rag_project.embedded_db import embedded_server_environment, embedded_server_tunables

    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    with embedded_server_environment():
        assert os.environ["GLIBC_TUNABLES"] == embedded_server_tunables({})
    assert "GLIBC_TUNABLES" not in os.environ
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.cpu.x86_ibt=0")
    with embedded_server_environment():
        assert os.environ["GLIBC_TUNABLES"].startswith("glibc.cpu.x86_ibt=0:glibc.malloc.trim_threshold=")
    assert os.environ["GLIBC_TUNABLES"] == "glibc.cpu.x86_ibt=0"


def test_a_server_started_here_keeps_a_statements_freed_memory(tmp_path):
    """A fresh server in its own folder (the session's may have been started before this code). A sort of
    a few MB, run again and again on one connection: with glibc's defaults each run page-faults its memory
    in anew (~3,600 faults a run here), with the tunables the backend reuses what the last run freed."""
    import psycopg

    from rag_project.embedded_db import embedded_database_stop, embedded_database_uri

    uri = embedded_database_uri(tmp_path)
    try:
        with psycopg.connect(uri) as conn:
            (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
            conn.execute("SET work_mem = '64MB'")

            def minor_faults() -> int:  # /proc/PID/stat is readable whoever runs the server
                return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])

            sort = "SELECT count(*) FROM (SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC) s"
            for _ in range(2):
                assert conn.execute(sort).fetchone() == (200000,)
            before = minor_faults()
            for _ in range(3):
                conn.execute(sort).fetchone()
            faults = minor_faults() - before
    finally:
        embedded_database_stop(tmp_path)
    assert faults < 100
