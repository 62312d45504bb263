"""Request id (X-Request-ID in, out and in every log line) and request latency by route."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from operations.context import request_id_accept, request_id_set
from operations.metrics import http_request_seconds

REQUEST_ID_HEADER = "X-Request-ID"
# Anything else is one label: a client inventing methods must not invent time series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestIdMiddleware:
    """Takes the caller's X-Request-ID when well-formed (a proxy's or a client's, so one id spans
    systems), else makes one; every log line and every task enqueued while answering carries it, and
    the response returns it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_accept(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        # Cleared when the request finishes (below), not when this returns: Django logs 4xx/5xx
        # (django.request) after the middleware chain, and those lines need the id most.
        request_id_set(request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


@receiver(request_finished, dispatch_uid="operations.request_id_clear")
def request_id_clear(**kwargs) -> None:
    request_id_set(None)


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered ("api/documents/<int:pk>"), never the raw path: one time series per
    route, whatever ids the URLs carry. Static files and unknown paths share one label."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return "/" + (match.route or match.view_name or "")


class RequestMetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in KNOWN_METHODS else "other"
        http_request_seconds.labels(method, route_of(request), str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response
