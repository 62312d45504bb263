"""docker-compose.yml cannot run here (no Docker engine); check it agrees with the settings module."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def variables_read_by_settings() -> set[str]:
    names = set()
    for path in [*REPO_ROOT.glob("rag_project/*.py"), *REPO_ROOT.glob("genapi/**/*.py")]:
        names.update(re.findall(r"""["']([A-Z][A-Z0-9_]+)["']""", path.read_text()))
    return names


def test_services_and_images():
    services = compose()["services"]
    assert {"db", "redis", "web", "worker", "migrate"} <= set(services)
    assert services["db"]["image"] == "pgvector/pgvector:pg17"
    assert "healthcheck" in services["db"]
    assert any("pgdata" in volume for volume in services["db"]["volumes"])


def test_commands_match_the_project():
    services = compose()["services"]
    assert services["web"]["command"][:2] == ["gunicorn", "rag_project.wsgi"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "rag_project", "worker"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_every_app_variable_is_one_the_settings_read():
    known = variables_read_by_settings()
    for name in ("web", "worker", "migrate", "beat"):
        env = compose()["services"][name]["environment"]
        unknown = sorted(set(env) - known)
        assert not unknown, f"{name}: variables no code reads: {unknown}"
        assert env["DATABASE_URL"].startswith("postgresql://") and "@db:5432/" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379")
        assert env["DJANGO_DEBUG"] == "0"


def test_the_database_container_gets_the_embedded_servers_allocator_settings():
    from rag_project.embedded_db import embedded_server_tunables

    assert compose()["services"]["db"]["environment"]["GLIBC_TUNABLES"] == embedded_server_tunables({})
