"""Keys and provider secrets never reach a log line."""

from __future__ import annotations

import io
import logging

import pytest
from django.conf import settings

from rag_project.security import SecretRedactingFilter, redact_secrets
from tests.factories import ApiKeyFactory, bearer

RAW_KEY = "cit_0123456789ab_S3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3c"
SCW_SECRET = "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {RAW_KEY}", RAW_KEY),
        (f"headers={{'authorization': 'Bearer {SCW_SECRET}'}}", SCW_SECRET),
        (f"calling with key {RAW_KEY} now", "S3cr3tS3cr3t"),
        ("cit_abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnop"),
        (f"SCW_SECRET_KEY={SCW_SECRET}", SCW_SECRET),
        ('{"secret_key": "' + SCW_SECRET + '"}', SCW_SECRET),
        (f"X-Auth-Token: {SCW_SECRET}", SCW_SECRET),
        ("access key SCWABCDEFGHJKLMNPQRS used", "SCWABCDEFGHJKLMNPQRS"),
        ("password=hunter2hunter2", "hunter2"),
    ],
)
def test_redact(text, secret):
    redacted = redact_secrets(text)
    assert secret not in redacted
    assert "[REDACTED]" in redacted


def test_prefix_kept_for_identification():
    assert redact_secrets(RAW_KEY) == "cit_0123456789ab_[REDACTED]"


def test_ordinary_text_untouched():
    text = "embedded 400 tokens in 12 chunks for document 7 (prompt_tokens=5, max_tokens: 100)"
    assert redact_secrets(text) == text


def test_configured_secret_redacted_whatever_its_shape(monkeypatch):
    monkeypatch.setenv("SCW_SECRET_KEY", "plain-looking-value-xyz")
    assert "plain-looking-value-xyz" not in redact_secrets("provider said plain-looking-value-xyz is bad")


def _capture(logger_name: str):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretRedactingFilter())
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    return stream, handler


def test_filter_on_a_root_handler_redacts_args_and_tracebacks_of_any_logger(monkeypatch):
    # The provider key is a bare UUID: it is found because it is the configured one.
    monkeypatch.setenv("SCW_SECRET_KEY", SCW_SECRET)
    stream, handler = _capture("root")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("httpx").warning("request headers %s", {"Authorization": f"Bearer {RAW_KEY}"})
        try:
            raise RuntimeError(f"provider refused {SCW_SECRET} token Bearer {RAW_KEY}")
        except RuntimeError:
            logging.getLogger("some.library").exception("failed with key=%s", RAW_KEY)
    finally:
        root.removeHandler(handler)
    output = stream.getvalue()
    assert "S3cr3t" not in output
    assert SCW_SECRET not in output
    assert "RuntimeError" in output and "[REDACTED]" in output


@pytest.mark.django_db
def test_failed_key_request_log_has_no_key(client, caplog):
    raw = ApiKeyFactory().raw_key
    wrong = raw[:-4] + "AAAA"
    with caplog.at_level(logging.DEBUG):
        client.get("/api/me", **bearer(wrong))
        client.get("/api/me", **bearer(raw))
    assert wrong.split("_", 2)[2] not in caplog.text and raw.split("_", 2)[2] not in caplog.text


def test_root_handlers_carry_the_filter():
    """The project's LOGGING installs the filter on the root console handler."""
    handlers = settings.LOGGING["handlers"]
    filters = settings.LOGGING.get("filters", {})
    redacting = {
        name
        for name, conf in filters.items()
        if conf.get("()") == "rag_project.security.SecretRedactingFilter"
    }
    assert redacting, "LOGGING needs a filter using rag_project.security.SecretRedactingFilter"
    for name in settings.LOGGING["root"]["handlers"]:
        assert redacting & set(handlers[name].get("filters", [])), name
    root_filters = [f for h in logging.getLogger().handlers for f in h.filters]
    assert any(isinstance(f, SecretRedactingFilter) for f in root_filters)
