"""Content-Security-Policy on every response, and `check --deploy` clean with production settings."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory

from rag_project.security import ContentSecurityPolicyMiddleware, content_security_policy
from tests.conftest import REPO_ROOT, database_url_for_subprocess

CSP_MIDDLEWARE = "rag_project.security.ContentSecurityPolicyMiddleware"
EXPECTED_DIRECTIVES = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
}


def directives(header: str) -> set[str]:
    return {part.strip() for part in header.split(";") if part.strip()}


def test_policy_is_strict():
    policy = directives(content_security_policy())
    assert EXPECTED_DIRECTIVES <= policy
    assert not any("unsafe-inline" in d or "unsafe-eval" in d or "*" in d for d in policy)


def test_middleware_sets_header_and_respects_a_view_policy():
    request = RequestFactory().get("/")
    middleware = ContentSecurityPolicyMiddleware(lambda r: HttpResponse("ok"))
    assert directives(middleware(request)["Content-Security-Policy"]) >= EXPECTED_DIRECTIVES

    def own_policy(r):
        response = HttpResponse("ok")
        response["Content-Security-Policy"] = "default-src 'none'"
        return response

    assert (
        ContentSecurityPolicyMiddleware(own_policy)(request)["Content-Security-Policy"]
        == "default-src 'none'"
    )
    streamed = ContentSecurityPolicyMiddleware(lambda r: StreamingHttpResponse(iter([b"data: x\n\n"])))(
        request
    )
    assert "Content-Security-Policy" in streamed


def test_middleware_async():
    async def get_response(request):
        return HttpResponse("ok")

    middleware = ContentSecurityPolicyMiddleware(get_response)
    request = RequestFactory().get("/")
    # A fresh thread has no event loop, whatever earlier tests (the browser ones) left in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        response = pool.submit(lambda: asyncio.run(middleware(request))).result()
    assert "Content-Security-Policy" in response


@pytest.mark.django_db
def test_csp_header_on_real_responses_in_debug(client):
    """With the project's settings (tests run with DEBUG on): the header is always there."""
    assert CSP_MIDDLEWARE in settings.MIDDLEWARE, "add the CSP middleware to settings.MIDDLEWARE"
    for path in ("/healthz", "/admin/login/", "/api/me"):
        response = client.get(path)
        assert directives(response["Content-Security-Policy"]) >= EXPECTED_DIRECTIVES, path


@pytest.mark.django_db
def test_check_deploy_is_clean_with_production_env():
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SECURE_")) and key != "DATABASE_TEST_NAME"
    }
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="example.com",
        DATABASE_URL=database_url_for_subprocess(),
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "rag_project.settings"),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNING" not in output.upper().replace("--FAIL-LEVEL WARNING", ""), output
