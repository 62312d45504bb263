"""Log records with the request id they belong to, as JSON lines or as plain text (RAG_LOG_FORMAT)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from operations.context import request_id_get, task_get


class RequestContextFilter(logging.Filter):
    """Adds `request_id` (and `task_name`, `task_id` inside a Celery task) to every record: "-" outside
    any request, so the plain format never fails on a record logged at startup."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id_get() or "-"
        task = task_get()
        if task is not None and not getattr(record, "task_name", None):
            record.task_name, record.task_id = task
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, the task when
    there is one, and the traceback as one string (already redacted by SecretRedactingFilter)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_get(),
            "process": record.process,
        }
        if getattr(record, "task_name", None):
            entry["task_name"], entry["task_id"] = record.task_name, record.task_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)
