"""Security plumbing shared by every app: the Content-Security-Policy header, the request-size limit, the
client address behind trusted proxies and log redaction."""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import re

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse

# The page ships no inline scripts or styles and loads nothing from elsewhere, so the policy can be
# strict in debug too: a violation found locally is one that would break in production.
DEFAULT_CONTENT_SECURITY_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
}


def content_security_policy() -> str:
    """The header value; `settings.RAG_CONTENT_SECURITY_POLICY` (a dict like the default) replaces it."""
    policy = getattr(settings, "RAG_CONTENT_SECURITY_POLICY", None) or DEFAULT_CONTENT_SECURITY_POLICY
    return "; ".join(f"{directive} {' '.join(sources)}".strip() for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    """Sets Content-Security-Policy on every response that has none (a view may set its own).

    Works for sync and async stacks, and for streamed responses (headers go out first).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.header_value = content_security_policy()
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def _apply(self, response):
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.header_value
        return response

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._apply(self.get_response(request))

    async def __acall__(self, request):
        return self._apply(await self.get_response(request))


def max_request_bytes() -> int:
    """The largest request body accepted: one upload at the limit plus room for the multipart framing."""
    configured = getattr(settings, "RAG_MAX_REQUEST_BYTES", None)
    if configured:
        return int(configured)
    return int(getattr(settings, "RAG_MAX_UPLOAD_BYTES", 50 * 1024 * 1024)) + 1024 * 1024


class _RefusingMiddleware:
    """A middleware that may answer a request itself (`_refusal` returns a response) before any view runs;
    sync and async alike."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)

    def _refusal(self, request):
        raise NotImplementedError

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self._refusal(request) or self.get_response(request)

    async def __acall__(self, request):
        return self._refusal(request) or await self.get_response(request)


class RequestSizeLimitMiddleware(_RefusingMiddleware):
    """Refuses a request whose declared Content-Length is over the limit with 413, before anything reads it.

    Must come before any middleware that touches the body (CsrfViewMiddleware reads request.POST): a 1 GB
    claim is answered from the headers alone. A body without Content-Length is not read by Django's WSGI
    handler at all, and one longer than declared is cut at the declared length.
    """

    def _refusal(self, request):
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._error(request, 400, "bad_request", "The Content-Length header is not a number.")
        limit = max_request_bytes()
        if declared > limit:
            message = f"The request body is {declared} bytes; the limit is {limit} bytes."
            return self._error(request, 413, "request_too_large", message)
        return None

    @staticmethod
    def _error(request, status: int, code: str, message: str):
        body = {"error": {"code": code, "message": message}}
        if request.path.startswith("/v1/"):
            body["error"].update(type="invalid_request_error", param=None)
        response = JsonResponse(body, status=status)
        # The unread body is still on the connection: ask the client and the server to drop it.
        response["Connection"] = "close"
        return response


class UnstorableQueryMiddleware(_RefusingMiddleware):
    """Refuses (400) a query string or path carrying NUL characters, which PostgreSQL text cannot hold:
    `?collection=%00` reached a query as a 500. One check here rather than one per parameter."""

    def _refusal(self, request):
        if "\x00" in request.path or any(
            "\x00" in key or "\x00" in value for key, value in _query_items(request)
        ):
            response = RequestSizeLimitMiddleware._error(
                request, 400, "bad_request", "The URL may not contain NUL characters."
            )
            # The body is read as usual here: no need to drop the connection (and WSGI servers such as
            # wsgiref refuse the hop-by-hop header outright).
            del response["Connection"]
            return response
        return None


def _query_items(request):
    for key, values in request.GET.lists():
        for value in values:
            yield key, value


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# A forwarded chain longer than this is not walked further (a client can prepend any number of hops).
MAX_FORWARDED_HOPS = 20


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"RAG_TRUSTED_PROXIES: {exc} (expected addresses or CIDR ranges)") from exc


def trusted_proxy_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`settings.RAG_TRUSTED_PROXIES`: the reverse proxies whose X-Forwarded-For is believed."""
    configured = getattr(settings, "RAG_TRUSTED_PROXIES", None) or ()
    if isinstance(configured, str):
        configured = configured.split(",")
    return _networks(tuple(configured))


def _address(value: str) -> IPAddress | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def request_client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or, when that is a trusted proxy, the nearest X-Forwarded-For
    hop that is not one. Hops added by the client itself (left of the first untrusted one) are ignored,
    so a spoofed header cannot choose the address that rate limits count against."""
    meta = getattr(request, "META", {}) or {}
    remote = meta.get("REMOTE_ADDR", "") or "unknown"
    networks = trusted_proxy_networks()
    peer = _address(remote)
    if not networks or peer is None or not any(peer in network for network in networks):
        return remote
    hops = (meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")[-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage from a client: the last proxy's own address is the best we know
        if not any(address in network for network in networks):
            return str(address)
        remote = str(address)
    return remote


REDACTED = "[REDACTED]"
# Values that must never reach a log line: bearer tokens, Citable API keys (the public prefix is
# kept so a key can still be identified), Scaleway access keys, and values of secret-named fields.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=\-]+"), rf"\1\2{REDACTED}"),
    (re.compile(r"\b(cit_[0-9a-f]{1,16})_[A-Za-z0-9_\-]+"), rf"\1_{REDACTED}"),
    (re.compile(r"\bcit_(?![0-9a-f]{1,16}_\[REDACTED\])[A-Za-z0-9_\-]{8,}"), f"cit_{REDACTED}"),
    (re.compile(r"\bSCW[A-Z0-9]{17}\b"), f"SCW{REDACTED}"),
    (
        re.compile(
            r"(?i)((?:scw_)?(?:secret[_-]?key|access[_-]?key|api[_-]?key|x-auth-token|authorization|password"
            r"|secret|token)[\"']?\s*[:=]\s*[\"']?)([^\s\"',;&}]+)"
        ),
        rf"\1{REDACTED}",
    ),
]
_SECRET_ENV_VARS = ("SCW_SECRET_KEY", "DJANGO_SECRET_KEY", "SCW_ACCESS_KEY")


def redact_secrets(text: str) -> str:
    """Replace anything that looks like a credential in `text` with [REDACTED]."""
    if not text:
        return text
    # Exact configured secrets first: they are redacted whatever their format.
    for name in _SECRET_ENV_VARS:
        value = os.environ.get(name, "")
        if len(value) >= 8 and value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretRedactingFilter(logging.Filter):
    """A logging filter for handlers: rewrites each record's message (and traceback) without secrets.

    Installed on the root handler it sees every record any logger propagates, including third-party ones
    (httpx, celery, django.request), which a logger-level filter would not.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not lose the record
            message = str(record.msg)
        record.msg = redact_secrets(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_secrets(record.stack_info)
        return True
