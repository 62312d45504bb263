"""`make run`: the whole service on the embedded defaults, one command, Ctrl-C stops everything.

Production-shaped: DEBUG stays off unless DJANGO_DEBUG asks for it, static files come from
collectstatic through whitenoise, and the secret key is generated once into the data folder, where
settings find it, so `manage.py` in a second terminal sees the same service with no variables.
Starts the embedded PostgreSQL (no DATABASE_URL), the local model stand-in (no provider
configured), the web server (gunicorn) and one Celery worker with beat embedded (the stale-document
sweeper), each child in its own process group. Migrates first, waits for /readyz, prints the URL.
Ctrl-C stops every one of them, the database too when this run started it; the next run on the
same data folder picks up where this one left off.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from rag_project.embedded_db import embedded_database_running, embedded_database_stop, embedded_database_uri
from rag_project.local_state import SECRET_KEY_FILE, run_env_write, secret_key_ensure

REPO_ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def log(message: str) -> None:
    print(f"[citable] {message}", flush=True)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_http_ok(url: str, timeout: float, procs: list[subprocess.Popen]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            return False
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - localhost only
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def data_dir() -> Path:
    # The same default as settings.RAG_DATA_DIR (read before Django is set up).
    return Path(os.environ.get("RAG_DATA_DIR") or REPO_ROOT / ".data").resolve()


def configure_environment() -> tuple[str, int, bool]:
    env = os.environ
    host = env.get("HOST", "127.0.0.1")
    port = int(env.get("PORT", "8000"))
    if not env.get("DJANGO_SECRET_KEY") and secret_key_ensure(data_dir()):
        log(f"generated a secret key in {data_dir() / SECRET_KEY_FILE} (kept for later runs)")
    # Served over plain HTTP on this machine: answer on its loopback names and do not redirect to
    # HTTPS (a deployment behind TLS sets these itself, see .env.example).
    hosts = ["localhost", "127.0.0.1", "[::1]"] + ([host] if host not in ("0.0.0.0", "::") else [])
    env.setdefault("DJANGO_ALLOWED_HOSTS", ",".join(dict.fromkeys(hosts)))
    env.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
    env.setdefault("DJANGO_SECURE_COOKIES", "0")
    # A person reads these logs in the terminal; JSON lines (the default) are for log collectors.
    env.setdefault("RAG_LOG_FORMAT", "plain")
    use_standin = not env.get("SCW_SECRET_KEY") and not env.get("GENAPI_BASE_URL")
    provider: dict[str, str] = {}
    if use_standin:
        standin_port = int(env.get("GENAPI_LOCAL_PORT", "8765"))
        env["GENAPI_BASE_URL"] = f"http://127.0.0.1:{standin_port}/v1"
        # The stand-in's small model: 384 dimensions (the hash engine, or MiniLM with the minilm engine).
        env.setdefault("GENAPI_EMBEDDING_MODEL", "all-minilm-l6-v2")
        provider = {name: env[name] for name in ("GENAPI_BASE_URL", "GENAPI_EMBEDDING_MODEL")}
    # So `manage.py` in another terminal talks to the same provider (settings load this file).
    run_env_write(data_dir(), provider)
    return host, port, use_standin


def metrics_dir_reset() -> None:
    """Empty the Prometheus multiprocess folder before any service process starts: it holds one file per
    process that ever ran, and counters restart with the service, as Prometheus expects."""
    folder = Path(os.environ.get("RAG_METRICS_DIR") or data_dir() / "metrics")
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def django_manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=REPO_ROOT, check=True)


def first_run_setup() -> None:
    """On an empty database, create an admin account and a default collection so the page is usable."""
    script = (
        "import secrets\n"
        "from django.contrib.auth import get_user_model\n"
        "from ingestion.models import Collection\n"
        "User = get_user_model()\n"
        "if not User.objects.filter(is_superuser=True).exists():\n"
        "    password = secrets.token_urlsafe(12)\n"
        "    User.objects.create_superuser('admin', '', password)\n"
        "    print(f'[citable] created the admin account: user admin, password {password} (shown once)')\n"
        "if not Collection.objects.exists():\n"
        "    Collection.objects.create(name='Knowledge base', slug='kb', is_public=True)\n"
        "    print('[citable] created the public collection kb')\n"
    )
    subprocess.run([PY, "manage.py", "shell", "-c", script], cwd=REPO_ROOT, check=True)


def web_command(host: str, port: int) -> list[str]:
    return [
        *(PY, "-m", "gunicorn", "rag_project.wsgi", "--bind", f"{host}:{port}"),
        *("--worker-class", "gthread", "--workers", os.environ.get("WEB_CONCURRENCY", "2")),
        *("--threads", "8", "--timeout", "180", "--access-logfile", "-"),
        # Idle connections kept longer than clients keep them (httpx 5 s, browsers ~60 s): with gunicorn's
        # 2 s, a client reusing a connection the server just closed gets a reset (load.py saw 1.3 %).
        *("--keep-alive", "75"),
    ]


def worker_command(
    *,
    beat: bool = True,
    concurrency: int | None = None,
    pool: str | None = None,
    queue: str | None = None,
    name: str | None = None,
) -> list[str]:
    """The Celery worker as `make run` starts it: beat embedded (the stale-document sweeper), concurrency
    from CELERY_CONCURRENCY. Benchmarks start theirs through this too, without beat and with their own
    pool, queue and node name (a named node skips gossip, mingle and heartbeats: it works alone)."""
    command = [
        *(PY, "-m", "celery", "-A", "rag_project", "worker", "--loglevel=INFO"),
        *("--concurrency", str(concurrency or os.environ.get("CELERY_CONCURRENCY", "2"))),
    ]
    if beat:
        command += ["--beat", "--schedule", str(data_dir() / "celerybeat-schedule")]
    if pool:
        command.append(f"--pool={pool}")
    if queue:
        command += ["-Q", queue]
    if name:
        command += ["-n", name, "--without-gossip", "--without-mingle", "--without-heartbeat"]
    return command


def start(name: str, command: list[str]) -> subprocess.Popen:
    log(f"starting {name}: {' '.join(command)}")
    return subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True)


def stop_all(procs: dict[str, subprocess.Popen]) -> None:
    # SIGTERM to each main process only: gunicorn and celery shut their own children down
    # gracefully; the whole process group is killed only if that takes too long.
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 20
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop in time; killing it")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    host, port, use_standin = configure_environment()
    if not port_is_free(host, port):
        log(f"port {port} on {host} is taken; set PORT to another one")
        return 2
    procs: dict[str, subprocess.Popen] = {}
    started_database = False
    stopping = False
    crashed: list[str] = []

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if use_standin:
            standin_port = int(os.environ["GENAPI_BASE_URL"].rsplit(":", 1)[1].split("/")[0])
            procs["stand-in"] = start(
                "local model stand-in (no SCW_SECRET_KEY set)",
                [PY, "-m", "genapi.local", "--host", "127.0.0.1", "--port", str(standin_port)],
            )
        if not os.environ.get("DATABASE_URL"):
            started_database = not embedded_database_running(data_dir())
            log(
                f"{'starting' if started_database else 'using the running'} embedded PostgreSQL "
                f"in {data_dir() / 'postgres'}"
            )
            embedded_database_uri(data_dir())
        log("migrating the database")
        django_manage("migrate", "--noinput")
        django_manage("collectstatic", "--noinput", "--verbosity", "0")
        first_run_setup()
        metrics_dir_reset()
        procs["web"] = start("web (gunicorn)", web_command(host, port))
        procs["worker"] = start("worker (celery, with beat for the sweeper)", worker_command())
        url = f"http://{host}:{port}/"
        if wait_http_ok(f"{url}readyz", 120, list(procs.values())):
            log(
                f"Citable is up at {url}  (readiness: {url}readyz, API docs: {url}api/docs/). "
                "Ctrl-C stops it."
            )
        else:
            log(f"not ready yet; see the logs above and {url}readyz")
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    log(f"{name} exited with code {proc.returncode}; stopping the rest")
                    crashed.append(name)
                    stopping = True
                    break
            time.sleep(0.5)
    finally:
        log("stopping")
        stop_all(procs)
        if started_database:
            # Only a database this run started: one that was already running belongs to someone else.
            log("stopping the embedded PostgreSQL")
            embedded_database_stop(data_dir())
    # Ctrl-C is a normal end; a service that died on its own is not.
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
