"""One error taxonomy for every provider failure.

Every error carries ``status`` (HTTP status or ``None`` for network/stream problems), ``message``, ``code``
(the provider's machine code when it sent one) and ``retryable``.
"""

from __future__ import annotations

import json
import re
from typing import Any


class GenAPIError(Exception):
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        type: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.type = type
        self.body = body
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r}, code={self.code!r})"


class AuthenticationError(GenAPIError):
    pass


class PermissionDeniedError(GenAPIError):
    pass


class RateLimitedError(GenAPIError):
    retryable = True


class ContextTooLongError(GenAPIError):
    pass


class ModelNotFoundError(GenAPIError):
    pass


class InvalidRequestError(GenAPIError):
    pass


class ProviderUnavailableError(GenAPIError):
    """5xx answers, timeouts, refused connections, streams cut short."""

    retryable = True


class BadResponseError(GenAPIError):
    """The provider answered 2xx with something we cannot read (malformed JSON, unexpected shape)."""


class MalformedResponseError(BadResponseError):
    """A 2xx whose body is not JSON at all (cut short by a proxy, a half-written answer): transient, like a
    dropped connection, so it is retried; an answer that parses but has the wrong shape is not."""

    retryable = True


_CONTEXT_RE = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|tokens? limit|token_limit|"
    r"maximum input length|input is too long|prompt is too long|reduce the length|max_model_len|"
    r"longer than the maximum|exceeds? the maximum (number of )?tokens",
    re.IGNORECASE,
)
_MODEL_MISSING_RE = re.compile(
    r"model.*(not found|does not exist|doesn't exist|unknown|not supported|is not available|unavailable)|"
    r"(unknown|invalid|unsupported) model|no such model",
    re.IGNORECASE,
)


def _stringify(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)[:1000]


def extract_error_fields(body: Any) -> tuple[str | None, str | None, str | None, int | None]:
    """Return ``(message, code, type, status)`` from any error body shape the provider family sends.

    Shapes: OpenAI ``{"error": {"message", "type", "code"}}``; Scaleway gateway ``{"error": "...",
    "status": 429, "message": "..."}``; vLLM ``{"object": "error", "message", "type", "code"}``; list-style
    validation ``{"detail": [{"loc": [...], "msg": "..."}]}`` and ``{"detail": "..."}``.
    """
    if not isinstance(body, dict):
        if isinstance(body, list) and body:
            return extract_error_fields(body[0])
        return (_stringify(body) if body not in (None, "") else None), None, None, None
    message = code = etype = None
    status = None
    err = body.get("error")
    if isinstance(err, dict):
        message = _stringify(err.get("message"))
        etype = _stringify(err.get("type"))
        raw_code = err.get("code")
        if isinstance(err.get("status"), int):
            status = err["status"]
        if isinstance(raw_code, int) and 100 <= raw_code <= 599:
            status = status or raw_code
        code = _stringify(raw_code) if raw_code is not None else None
        if not message and err.get("detail"):
            message = _stringify(err.get("detail"))
    elif isinstance(err, str):
        message = _stringify(body.get("message")) or err
        if body.get("message") and err != body.get("message"):
            code = err
    if isinstance(body.get("status"), int):
        status = body["status"]
    if body.get("object") == "error" or message is None:
        message = message or _stringify(body.get("message"))
        etype = etype or _stringify(body.get("type"))
        raw_code = body.get("code")
        if raw_code is not None and code is None:
            if isinstance(raw_code, int) and 100 <= raw_code <= 599:
                status = status or raw_code
            code = _stringify(raw_code)
    detail = body.get("detail")
    if message is None and detail is not None:
        if isinstance(detail, list):
            items = []
            for d in detail:
                if isinstance(d, dict):
                    loc = ".".join(str(p) for p in d.get("loc", []) or [])
                    msg = d.get("msg") or d.get("message") or ""
                    items.append(f"{loc}: {msg}" if loc else str(msg))
                else:
                    items.append(str(d))
            message = "; ".join(items)
            code = code or "validation_error"
        else:
            message = _stringify(detail)
    return message, code, etype, status


def classify(
    status: int | None,
    message: str | None,
    code: str | None = None,
    etype: str | None = None,
    *,
    body: Any = None,
    retry_after: float | None = None,
    default: type[GenAPIError] = ProviderUnavailableError,
) -> GenAPIError:
    """Map a status and a parsed error to the taxonomy."""
    msg = message or (f"HTTP {status}" if status else "provider error")
    hay = " ".join(str(x) for x in (msg, code, etype) if x)
    kw = {"status": status, "code": code, "type": etype, "body": body, "retry_after": retry_after}
    lowered_code = (code or "").lower()
    if status == 401 or lowered_code in ("invalid_api_key", "unauthorized", "authentication_error"):
        return AuthenticationError(msg, **kw)
    if status == 403 or lowered_code in ("permission_denied", "forbidden"):
        return PermissionDeniedError(msg, **kw)
    if status == 429 or lowered_code in ("rate_limit_exceeded", "rate_limited", "too_many_requests"):
        return RateLimitedError(msg, **kw)
    if lowered_code == "model_not_found" or (status == 404 and re.search(r"model", hay, re.IGNORECASE)):
        return ModelNotFoundError(msg, **kw)
    if lowered_code == "context_length_exceeded" or (
        (status is None or 400 <= status <= 500) and _CONTEXT_RE.search(hay)
    ):
        return ContextTooLongError(msg, **kw)
    if status in (400, 404, 422) and _MODEL_MISSING_RE.search(msg):
        return ModelNotFoundError(msg, **kw)
    if status is not None and (status >= 500 or status == 408):
        return ProviderUnavailableError(msg, **kw)
    if status is not None and 400 <= status < 500:
        return InvalidRequestError(msg, **kw)
    if lowered_code in ("server_error", "internal_error", "service_unavailable", "overloaded") or (
        etype or ""
    ).lower() in ("server_error", "internalservererror", "service_unavailable"):
        return ProviderUnavailableError(msg, **kw)
    if lowered_code in ("invalid_request_error", "bad_request") or (etype or "").lower() in (
        "invalid_request_error",
        "badrequesterror",
    ):
        return InvalidRequestError(msg, **kw)
    return default(msg, **kw)


def error_from_response(status: int, content: bytes, retry_after: float | None = None) -> GenAPIError:
    body: Any
    try:
        body = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        body = content[:1000].decode("utf-8", "replace").strip() or None
    message, code, etype, _ = extract_error_fields(body)
    return classify(status, message, code, etype, body=body, retry_after=retry_after)


def error_from_stream_event(event: dict[str, Any]) -> GenAPIError:
    """An error inside a 200 stream (``{"error": {...}}``, vLLM ``object: error``, Responses events)."""
    payload: Any = event
    if event.get("type") in ("error", "response.failed"):
        if isinstance(event.get("response"), dict) and event["response"].get("error"):
            payload = {"error": event["response"]["error"]}
        elif "error" not in event:
            payload = {"error": {k: v for k, v in event.items() if k != "type"}}
    message, code, etype, status = extract_error_fields(payload)
    return classify(status, message or "error inside the stream", code, etype, body=event)
