"""Liveness (/healthz) and readiness (/readyz) probes."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

READY_TIMEOUT_SECONDS = 3.0


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the vector extension is missing (run migrations)")
    return f"pgvector {row[0]}"


def check_broker() -> str:
    from rag_project.celery import app

    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=READY_TIMEOUT_SECONDS)
        # Opening a channel makes lazy transports (the SQLAlchemy one) really talk to the server.
        conn.default_channel  # noqa: B018
        return conn.transport_cls if isinstance(conn.transport_cls, str) else conn.transport.driver_name


def check_provider() -> str:
    import httpx

    from genapi.config import GenAPIConfig

    config = GenAPIConfig.from_env()
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    # A single, unretried call: readiness must answer quickly and truthfully, not wait out backoff.
    response = httpx.get(
        f"{config.base_url.rstrip('/')}/models", headers=headers, timeout=READY_TIMEOUT_SECONDS
    )
    if response.status_code != 200:
        raise RuntimeError(f"/v1/models answered HTTP {response.status_code}")
    served = {model.get("id") for model in response.json().get("data", []) if isinstance(model, dict)}
    missing = [f"{role} {name}" for role, name in configured_models().items() if name not in served]
    if missing:
        # A model the provider does not serve fails every call that uses it: say which, by name.
        raise RuntimeError(f"configured but not served by the provider: {', '.join(missing)}")
    return f"{len(served)} models, the {len(configured_models())} configured ones among them"


def configured_models() -> dict[str, str]:
    from django.conf import settings

    return {
        "embedding": settings.GENAPI_EMBEDDING_MODEL,
        "rerank": settings.GENAPI_RERANK_MODEL,
        "chat": settings.GENAPI_CHAT_MODEL,
        "transcription": settings.GENAPI_TRANSCRIPTION_MODEL,
    }


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "broker": check_broker,
    "provider": check_provider,
}


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            detail = check()
            results[name] = {"ok": True, "detail": detail}
        except Exception as exc:  # noqa: BLE001 - any failure makes the check red, with its reason
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    ready = all(result["ok"] for result in results.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503
    )
