"""Settings load from the environment, with and without each variable."""

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

PROBE = """
import json
from django.conf import settings
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "ALLOWED_HOSTS": settings.ALLOWED_HOSTS,
    "DB": {k: settings.DATABASES["default"].get(k) for k in ("NAME", "HOST", "USER", "PORT")},
    "EMBEDDED": settings.EMBEDDED_DATABASE_URI,
    "BROKER": settings.CELERY_BROKER_URL,
    "DATA_DIR": str(settings.RAG_DATA_DIR),
    "EMBEDDING_MODEL": settings.GENAPI_EMBEDDING_MODEL,
    "CHAT_MODEL": settings.GENAPI_CHAT_MODEL,
    "SCW_PROJECT_ID": settings.SCW_PROJECT_ID,
}))
"""


def load_settings(env_overrides: dict[str, str], drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "GENAPI_"))
    }
    for name in drop:
        env.pop(name, None)
    env["DJANGO_SETTINGS_MODULE"] = "rag_project.settings"
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + PROBE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_secret_key_is_required_when_debug_is_off():
    result = load_settings({"DJANGO_DEBUG": "0"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_production_settings_from_environment():
    result = load_settings(
        {
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "x" * 60,
            "DJANGO_ALLOWED_HOSTS": "kb.example.com, api.example.com",
            "DATABASE_URL": "postgresql://citable:pw@db.example.com:5433/kb",
            "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
            "GENAPI_EMBEDDING_MODEL": "qwen3-embedding-8b",
            "SCW_PROJECT_ID": "proj-123",
        }
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["DEBUG"] is False
    assert loaded["ALLOWED_HOSTS"] == ["kb.example.com", "api.example.com"]
    assert loaded["DB"] == {"NAME": "kb", "HOST": "db.example.com", "USER": "citable", "PORT": 5433}
    assert loaded["EMBEDDED"] == ""  # no embedded server started when DATABASE_URL is set
    assert loaded["BROKER"] == "redis://redis.example.com:6379/0"
    assert loaded["EMBEDDING_MODEL"] == "qwen3-embedding-8b"
    assert loaded["SCW_PROJECT_ID"] == "proj-123"


def test_embedded_defaults_without_database_or_broker_url():
    from django.conf import settings

    result = load_settings({"DJANGO_DEBUG": "1", "RAG_DATA_DIR": str(settings.RAG_DATA_DIR)})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["DEBUG"] is True
    assert loaded["EMBEDDED"].startswith("postgresql://")
    assert loaded["DB"]["HOST"] == str(settings.RAG_DATA_DIR / "postgres")
    assert loaded["BROKER"].startswith("sqla+postgresql+psycopg://")
    assert "localhost" in loaded["ALLOWED_HOSTS"]
    assert loaded["EMBEDDING_MODEL"] == "bge-multilingual-gemma2"


def env_names_read_by_code() -> set[str]:
    names: set[str] = set()
    pattern = re.compile(
        r"""(?:os\.environ(?:\.get|\.setdefault)?\(|env_(?:bool|int|float|list)\(|os\.environ\[)\s*["']([A-Z][A-Z0-9_]+)["']"""
    )
    for path in [*REPO_ROOT.glob("rag_project/*.py"), *REPO_ROOT.glob("genapi/*.py")]:
        names.update(pattern.findall(path.read_text()))
    return names


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_setting_is_documented(document):
    text = (REPO_ROOT / document).read_text()
    internal = {"DJANGO_SETTINGS_MODULE"}
    missing = sorted(name for name in env_names_read_by_code() - internal if name not in text)
    assert not missing, f"{document} does not mention: {missing}"


def test_env_example_has_no_misspelled_variables():
    """Every variable in .env.example is read somewhere: a typo there would silently do nothing."""
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    read = env_names_read_by_code() | {"HOST", "PORT", "CELERY_CONCURRENCY", "WEB_CONCURRENCY"}
    for path in REPO_ROOT.glob("genapi/**/*.py"):
        read.update(re.findall(r"""["']((?:GENAPI|SCW)_[A-Z0-9_]+)["']""", path.read_text()))
    assert documented <= read, f"not read by any code: {sorted(documented - read)}"


def test_broker_defaults_to_the_database_url_even_over_a_unix_socket():
    from django.conf import settings

    socket = quote(str(settings.RAG_DATA_DIR / "postgres"), safe="")
    result = load_settings({"DJANGO_DEBUG": "1", "DATABASE_URL": f"postgresql://postgres@{socket}/postgres"})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    # SQLAlchemy wants the socket folder as ?host=, not %-encoded in the host part.
    assert loaded["BROKER"] == (
        f"sqla+postgresql+psycopg://postgres@/postgres?host={settings.RAG_DATA_DIR / 'postgres'}"
    )
    result = load_settings(
        {"DJANGO_DEBUG": "1", "DATABASE_URL": "postgresql://u:p%40ss@db.example.com:5433/kb"}
    )
    assert json.loads(result.stdout.strip().splitlines()[-1])["BROKER"] == (
        "sqla+postgresql+psycopg://u:p%40ss@db.example.com:5433/kb"
    )
