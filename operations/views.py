"""GET /metrics: the Prometheus exposition of every process on this data folder (multiprocess mode)."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from operations.collectors import ServiceStateCollector


def metrics_allowed(request: HttpRequest) -> bool:
    """With RAG_METRICS_TOKEN set, that bearer token; without it, loopback clients only (a scraper on the
    same host, or a sidecar). REMOTE_ADDR, not X-Forwarded-For: a proxy must not open this to the world."""
    token = settings.RAG_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def registry_build() -> CollectorRegistry:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(ServiceStateCollector())
    return registry


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        # The same answer for a wrong token and a remote client: nothing to learn from probing.
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(registry_build()), content_type=CONTENT_TYPE_LATEST)
