"""Settings load from the environment, with and without each variable; every variable the service reads
is documented, and every documented variable is read.

Each case imports the settings in a fresh interpreter with a controlled environment (nothing inherited
from the developer's shell or from a `make run` data folder), so what is asserted is what a process
started that way would see.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
OUR_PREFIXES = ("DJANGO_", "DATABASE_", "CELERY_", "GENAPI_", "SCW_", "RAG_")
# Never a setting: how Python finds the settings module.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE"}
# A server URL that is never contacted: settings only parse it (no embedded server is started).
UNUSED_DATABASE = "postgresql://unused@127.0.0.1:1/unused"

PROBE = """
import json
import django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": settings.SECRET_KEY,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "DB": {k: db.get(k) for k in ("NAME", "HOST", "USER", "PORT", "CONN_MAX_AGE")},
    "EMBEDDED": settings.EMBEDDED_DATABASE_URI,
    "BROKER": settings.CELERY_BROKER_URL,
    "DATA_DIR": str(settings.RAG_DATA_DIR),
    "EMBEDDING_MODEL": settings.GENAPI_EMBEDDING_MODEL,
    "RERANK_MODEL": settings.GENAPI_RERANK_MODEL,
    "TOP_K": settings.RAG_TOP_K,
    "CACHE": settings.CACHES["default"]["BACKEND"],
    "RERANK_CACHE": settings.CACHES["rerank"]["BACKEND"],
    "RERANK_CACHE_LOCATION": settings.CACHES["rerank"].get("LOCATION"),
    "SSL_REDIRECT": getattr(settings, "SECURE_SSL_REDIRECT", None),
    "SECURE_COOKIES": settings.SESSION_COOKIE_SECURE,
    "GENAPI_BASE_URL": __import__("os").environ.get("GENAPI_BASE_URL"),
    "GENAPI_BUDGET_URL": __import__("os").environ.get("GENAPI_BUDGET_URL"),
}))
"""


def clean_env(data_dir: Path, overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}
    env.update({"DJANGO_SETTINGS_MODULE": "rag_project.settings", "RAG_DATA_DIR": str(data_dir)})
    env.update(overrides)
    return env


def load_settings(data_dir: Path, overrides: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env=clean_env(data_dir, overrides),
        capture_output=True,
        text=True,
        timeout=120,
    )


def loaded(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_secret_key_is_required_when_debug_is_off(tmp_path):
    result = load_settings(tmp_path, {"DATABASE_URL": UNUSED_DATABASE})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_the_secret_key_make_run_keeps_in_the_data_folder_is_used_without_debug(tmp_path):
    from rag_project.local_state import secret_key_ensure

    assert secret_key_ensure(tmp_path) is True
    assert secret_key_ensure(tmp_path) is False  # generated once, then kept
    key = (tmp_path / "secret_key").read_text().strip()
    assert len(key) >= 50 and (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    settings = loaded(load_settings(tmp_path, {"DATABASE_URL": UNUSED_DATABASE}))
    assert settings["DEBUG"] is False
    assert settings["SECRET_KEY"] == key
    # The environment still wins over the file.
    settings = loaded(
        load_settings(tmp_path, {"DATABASE_URL": UNUSED_DATABASE, "DJANGO_SECRET_KEY": "e" * 50})
    )
    assert settings["SECRET_KEY"] == "e" * 50


def test_run_env_gives_defaults_that_the_environment_overrides(tmp_path):
    from rag_project.local_state import run_env_write

    run_env_write(
        tmp_path,
        {"GENAPI_BASE_URL": "http://127.0.0.1:8765/v1", "GENAPI_EMBEDDING_MODEL": "all-minilm-l6-v2"},
    )
    base = {"DATABASE_URL": UNUSED_DATABASE, "DJANGO_DEBUG": "1"}
    settings = loaded(load_settings(tmp_path, base))
    assert settings["GENAPI_BASE_URL"] == "http://127.0.0.1:8765/v1"  # genapi reads it from os.environ
    assert settings["EMBEDDING_MODEL"] == "all-minilm-l6-v2"
    settings = loaded(load_settings(tmp_path, {**base, "GENAPI_EMBEDDING_MODEL": "bge-multilingual-gemma2"}))
    assert settings["EMBEDDING_MODEL"] == "bge-multilingual-gemma2"


def test_production_settings_from_environment(tmp_path):
    settings = loaded(
        load_settings(
            tmp_path,
            {
                "DJANGO_DEBUG": "0",
                "DJANGO_SECRET_KEY": "x" * 60,
                "DJANGO_ALLOWED_HOSTS": "kb.example.com, api.example.com",
                "DATABASE_URL": "postgresql://citable:pw@db.example.com:5433/kb",
                "DATABASE_CONN_MAX_AGE": "30",
                "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
                "DJANGO_CACHE_URL": "redis://redis.example.com:6379/1",
                "GENAPI_EMBEDDING_MODEL": "qwen3-embedding-8b",
            },
        )
    )
    assert settings["DEBUG"] is False
    assert settings["ALLOWED_HOSTS"] == ["kb.example.com", "api.example.com"]
    assert settings["DB"] == {
        "NAME": "kb",
        "HOST": "db.example.com",
        "USER": "citable",
        "PORT": 5433,
        "CONN_MAX_AGE": 30,
    }
    assert settings["EMBEDDED"] == ""  # no embedded server started when DATABASE_URL is set
    assert settings["BROKER"] == "redis://redis.example.com:6379/0"
    assert settings["CACHE"] == "django.core.cache.backends.redis.RedisCache"
    # the rerank cache follows Redis when one is configured
    assert settings["RERANK_CACHE"] == "django.core.cache.backends.redis.RedisCache"
    assert "redis.example.com:6379/1" in str(settings["RERANK_CACHE_LOCATION"])
    assert settings["EMBEDDING_MODEL"] == "qwen3-embedding-8b"
    assert settings["SSL_REDIRECT"] is True and settings["SECURE_COOKIES"] is True


def test_empty_values_mean_the_default(tmp_path):
    """Compose files and .env.example write `NAME=` for "the default"; that must not crash or blank."""
    settings = loaded(
        load_settings(
            tmp_path,
            {
                "DJANGO_DEBUG": "",
                "DJANGO_SECRET_KEY": "y" * 60,
                "DATABASE_URL": UNUSED_DATABASE,
                "RAG_TOP_K": "",
                "GENAPI_RERANK_MODEL": " ",
                "DJANGO_CACHE_URL": "",
            },
        )
    )
    assert settings["DEBUG"] is False
    assert settings["TOP_K"] == 8
    assert settings["RERANK_MODEL"] == "qwen3-embedding-8b"
    assert settings["CACHE"] == "rag_project.cache.DatabaseCache"  # Django's, one upsert per write
    # rerank scores stay off the database cache (a write per search): process memory instead
    assert settings["RERANK_CACHE"] == "django.core.cache.backends.locmem.LocMemCache"


def test_embedded_defaults_without_database_or_broker_url():
    from django.conf import settings as test_settings

    data_dir = test_settings.RAG_DATA_DIR  # the running embedded server: no second one is started
    settings = loaded(load_settings(data_dir, {"DJANGO_DEBUG": "1"}))
    assert settings["DEBUG"] is True
    assert settings["EMBEDDED"].startswith("postgresql://")
    assert settings["DB"]["HOST"] == str(data_dir / "postgres")
    assert settings["BROKER"].startswith("sqla+postgresql+psycopg://")
    assert "localhost" in settings["ALLOWED_HOSTS"]


def test_broker_defaults_to_the_database_url_even_over_a_unix_socket(tmp_path):
    socket_dir = "/run/citable/postgres"
    settings = loaded(
        load_settings(
            tmp_path,
            {"DJANGO_DEBUG": "1", "DATABASE_URL": f"postgresql://postgres@{quote(socket_dir, safe='')}/kb"},
        )
    )
    assert settings["DB"]["HOST"] == socket_dir
    # SQLAlchemy wants the socket folder as ?host=, not %-encoded in the host part.
    assert settings["BROKER"] == f"sqla+postgresql+psycopg://postgres@/kb?host={socket_dir}"
    settings = loaded(
        load_settings(
            tmp_path, {"DJANGO_DEBUG": "1", "DATABASE_URL": "postgresql://u:p%40ss@db.example.com:5433/kb"}
        )
    )
    assert settings["BROKER"] == "sqla+postgresql+psycopg://u:p%40ss@db.example.com:5433/kb"


def test_the_provider_budget_lives_in_redis_when_the_broker_or_cache_is_redis_else_the_database(tmp_path):
    """genapi (no Django) reads GENAPI_BUDGET_URL from the environment: settings pass their choice on."""
    base = {"DJANGO_DEBUG": "1", "DATABASE_URL": "postgresql://u:p%40ss@db.example.com:5433/kb"}
    assert loaded(load_settings(tmp_path, base))["GENAPI_BUDGET_URL"] == (
        "postgresql://u:p%40ss@db.example.com:5433/kb"
    )
    broker = {**base, "CELERY_BROKER_URL": "redis://cache.example.com:6379/2"}
    assert loaded(load_settings(tmp_path, broker))["GENAPI_BUDGET_URL"] == "redis://cache.example.com:6379/2"
    cache = {**base, "DJANGO_CACHE_URL": "rediscache://cache.example.com:6379/4"}
    assert loaded(load_settings(tmp_path, cache))["GENAPI_BUDGET_URL"] == "redis://cache.example.com:6379/4"
    chosen = {**broker, "GENAPI_BUDGET_URL": "process"}
    assert loaded(load_settings(tmp_path, chosen))["GENAPI_BUDGET_URL"] == "process"


# --- Documentation: what the code reads, recorded while it runs --------------------------------------

RECORDER = """
import collections.abc, json, os, sys

REPO = os.getcwd()

def read_by_this_project():
    # The first frame outside the mapping machinery (collections.abc's get/__contains__, this file).
    frame = sys._getframe(2)
    while frame and (
        "_collections_abc" in frame.f_code.co_filename
        or frame.f_code.co_filename == "<string>"
    ):
        frame = frame.f_back
    path = frame.f_code.co_filename if frame else ""
    return path.startswith(REPO) and "/.venv/" not in path and "site-packages" not in path

class RecordingEnviron(collections.abc.MutableMapping):
    '''os.environ that remembers every name this project's code looks up (libraries such as Celery
    read their own variables; those are theirs to document).'''
    def __init__(self, real):
        self.real, self.read = real, set()
    def __getitem__(self, name):
        if read_by_this_project():
            self.read.add(name)
        return self.real[name]
    def __setitem__(self, name, value):
        self.real[name] = value
    def __delitem__(self, name):
        del self.real[name]
    def __iter__(self):
        return iter(self.real)
    def __len__(self):
        return len(self.real)
    def copy(self):
        return dict(self.real)

recorder = RecordingEnviron(os.environ)
os.environ = recorder  # before anything (django-environ included) binds it
phases = {}

import django
django.setup()                                  # rag_project.settings
from genapi.config import GenAPIConfig
GenAPIConfig.from_env()                         # the provider client
phases["service"] = set(recorder.read)

from rag_project import run                     # make run's own knobs
run.configure_environment()
run.web_command("127.0.0.1", 8000)
run.worker_command()
from genapi.local.engines import Engines        # the stand-in make run starts
Engines()
phases["all"] = set(recorder.read)
print(json.dumps({k: sorted(v) for k, v in phases.items()}))
"""


@pytest.fixture(scope="module")
def names_read(tmp_path_factory) -> dict[str, set[str]]:
    data_dir = tmp_path_factory.mktemp("data")
    result = subprocess.run(
        [sys.executable, "-c", RECORDER],
        cwd=REPO_ROOT,
        env=clean_env(data_dir, {"DJANGO_SECRET_KEY": "z" * 60, "DATABASE_URL": UNUSED_DATABASE}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    phases = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        phase: {n for n in names if n.startswith(OUR_PREFIXES) or n in RUN_KNOBS}
        for phase, names in phases.items()
    }


RUN_KNOBS = {"HOST", "PORT", "WEB_CONCURRENCY", "CELERY_CONCURRENCY"}


def test_the_recorder_sees_the_reads(names_read):
    """Guards the two tests below against passing on an empty set."""
    service = names_read["service"]
    for name in (
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "GENAPI_RERANK_MODEL",
        "SCW_SECRET_KEY",
    ):
        assert name in service
    assert len(service) > 40
    assert RUN_KNOBS | {"GENAPI_LOCAL_PORT", "GENAPI_LOCAL_EMBEDDINGS"} <= names_read["all"]


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_variable_the_service_reads_is_documented(names_read, document):
    text = (REPO_ROOT / document).read_text()
    missing = sorted(name for name in names_read["service"] - NOT_SETTINGS if name not in text)
    assert not missing, f"{document} does not mention: {missing}"


def test_every_variable_in_env_example_is_read(names_read):
    """A misspelled name in .env.example would silently do nothing."""
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    assert len(documented) > 40  # the pattern still matches the file's layout
    unread = documented - names_read["all"]
    assert not unread, f"in .env.example but read by nothing: {sorted(unread)}"
