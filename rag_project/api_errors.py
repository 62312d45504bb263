"""One JSON error shape for the whole API: {"error": {"code", "message", "details"?}}."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from rest_framework import exceptions
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)

# Seconds a client is told to wait when the database is away (a restart or failover takes a few).
DATABASE_RETRY_AFTER = 5


class DatabaseUnavailable(exceptions.APIException):
    status_code = 503
    default_code = "unavailable"
    default_detail = "The service's database is unavailable; retry in a few seconds."


def api_exception_handler(exc, context):
    database_down = isinstance(exc, (OperationalError, InterfaceError))
    if database_down:
        # A restart or failover: a 503 the client can retry (a clean `error` event on a stream), not a 500.
        logger.warning("database unavailable: %s", exc)
        exc = DatabaseUnavailable()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        code, message, details = "invalid", "The request is invalid.", response.data
    else:
        detail = getattr(exc, "detail", None)
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
        message, details = (str(detail) if detail is not None else str(exc)), None
    if code == "permission_denied":
        code = "forbidden"  # one name for a 403 across the API, whichever layer refused
    body = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    response.data = body
    if database_down:
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return response
