"""Errors, retries, rate-limit headers, the client-side limiter and broken streams, against the stand-in."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from genapi import (
    AuthenticationError,
    BadResponseError,
    ContextTooLongError,
    GenAPIClient,
    GenAPIConfig,
    InvalidRequestError,
    MalformedResponseError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from genapi.testing import free_port, local_server
from tests.genapi.conftest import Sleeps

EMBED = "all-minilm-l6-v2"
CHAT = "llama-3.1-8b-instruct"
MESSAGES = [
    {"role": "system", "content": "[1] Doc\nThe sky is blue because of Rayleigh scattering. Grass is green."},
    {"role": "user", "content": "Why is the sky blue?"},
]


def openai_error(message, type="invalid_request_error", code=None):
    return {"error": {"message": message, "type": type, "code": code}}


def vllm_error(message, type, code):
    return {"object": "error", "message": message, "type": type, "param": None, "code": code}


CONTEXT_MSG = "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens."
MISSING_MODEL = "The model `foo` does not exist."
ERROR_CASES = [
    (401, openai_error("Invalid API key", code="invalid_api_key"), AuthenticationError),
    (
        403,
        {"error": "forbidden", "status": 403, "message": "Project may not use this model"},
        PermissionDeniedError,
    ),
    (429, openai_error("Rate limit reached", "rate_limit_error", "rate_limit_exceeded"), RateLimitedError),
    (400, vllm_error(CONTEXT_MSG, "BadRequestError", 400), ContextTooLongError),
    (400, openai_error("Input too long", code="context_length_exceeded"), ContextTooLongError),
    (404, openai_error(MISSING_MODEL), ModelNotFoundError),
    (404, vllm_error(MISSING_MODEL, "NotFoundError", 404), ModelNotFoundError),
    (
        422,
        {"detail": [{"loc": ["body", "input"], "msg": "field required", "type": "missing"}]},
        InvalidRequestError,
    ),
    (400, openai_error("temperature must be <= 2"), InvalidRequestError),
    (
        503,
        {"error": "service_unavailable", "status": 503, "message": "Model is overloaded"},
        ProviderUnavailableError,
    ),
    (500, None, ProviderUnavailableError),
    (502, "<html>Bad gateway</html>", ProviderUnavailableError),
]


@pytest.mark.parametrize(("status", "body", "expected"), ERROR_CASES)
def test_every_error_shape_maps_to_the_taxonomy(make_client, standin, status, body, expected):
    client = make_client(max_retries=0)
    spec = {"status": status, "body": body}
    if isinstance(body, str):
        spec = {"status": status, "raw": body}
    standin.set_knobs(fail_next=spec)
    with pytest.raises(expected) as info:
        client.embeddings_create(EMBED, ["hello"])
    err = info.value
    assert err.status == status and err.message
    assert err.retryable is (expected in (RateLimitedError, ProviderUnavailableError))
    if status == 422:
        assert "body.input" in err.message and "field required" in err.message


def test_context_too_long_from_the_stand_in(client):
    huge = [{"role": "user", "content": "word " * 600_000}]
    with pytest.raises(ContextTooLongError) as info:
        client.chat_completions_create(model=CHAT, messages=huge)
    assert info.value.status == 400


def test_network_error_is_provider_unavailable():
    client = GenAPIClient(
        GenAPIConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=1, backoff_base=0.01),
        sleep=Sleeps(),
    )
    with pytest.raises(ProviderUnavailableError) as info:
        client.models_list()
    assert info.value.retryable and info.value.status is None and "1 retries" in info.value.message


def test_retries_5xx_then_succeeds(make_client, standin, usage_records):
    sleeps = Sleeps()
    client = make_client(sleep=sleeps, max_retries=3)
    standin.set_knobs(fail_next={"count": 2, "status": 503})
    assert client.embeddings_create(EMBED, ["hello"]).vectors
    assert standin.count("embeddings") == 3 and len(sleeps) == 2
    assert usage_records[-1].retries == 2


def test_retry_cap(make_client, standin):
    client = make_client(sleep=Sleeps(), max_retries=2)
    standin.set_knobs(fail_next={"count": 10, "status": 500})
    with pytest.raises(ProviderUnavailableError):
        client.embeddings_create(EMBED, ["hello"])
    assert standin.count("embeddings") == 3


def test_non_retryable_errors_are_not_retried(make_client, standin):
    client = make_client(sleep=Sleeps(), max_retries=5)
    standin.set_knobs(fail_next={"count": 3, "status": 400})
    with pytest.raises(InvalidRequestError):
        client.embeddings_create(EMBED, ["hello"])
    assert standin.count("embeddings") == 1


@pytest.mark.parametrize(
    ("headers", "at_least"),
    [
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-remaining-requests": "0"}, 1.0),
        ({"x-ratelimit-reset-tokens": "750ms", "x-ratelimit-remaining-tokens": "0"}, 0.75),
        ({"Retry-After": "1"}, 1.0),
    ],
)
def test_429_waits_what_the_provider_asks(make_client, standin, headers, at_least):
    sleeps = Sleeps()
    client = make_client(sleep=sleeps, max_retries=2)
    standin.set_knobs(fail_next={"status": 429, "headers": headers})
    started = time.monotonic()
    assert client.embeddings_create(EMBED, ["hello"]).vectors
    assert sleeps and sleeps[0] >= at_least
    assert time.monotonic() - started >= at_least
    assert standin.count("embeddings") == 2


def test_429_asking_for_too_long_a_wait_is_raised_at_once(make_client, standin):
    sleeps = Sleeps()
    client = make_client(sleep=sleeps, max_retries=5, max_retry_wait=10)
    standin.set_knobs(fail_next={"status": 429, "headers": {"x-ratelimit-reset-requests": "1m30s"}})
    with pytest.raises(RateLimitedError) as info:
        client.embeddings_create(EMBED, ["hello"])
    assert info.value.retry_after == 90 and sleeps == []


def test_enforced_rpm_returns_real_headers(make_client, standin):
    standin.set_knobs(rpm=60, rate_window_s=1.0)  # one request per second, burst of one
    client = make_client(max_retries=0)
    client.models_list()
    with pytest.raises(RateLimitedError) as info:
        client.models_list()
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= 1.0


def test_rate_limit_headers_on_the_wire(standin):
    import httpx

    standin.set_knobs(rpm=60, tpm=6000)
    ok = httpx.get(f"{standin.base_url}/models")
    limited = httpx.get(f"{standin.base_url}/models")
    assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-requests"] == "60"
    assert limited.status_code == 429
    for name in ("limit", "remaining", "reset"):
        assert (
            f"x-ratelimit-{name}-requests" in limited.headers
            and f"x-ratelimit-{name}-tokens" in limited.headers
        )
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert (
        limited.headers["x-ratelimit-reset-requests"].endswith("ms")
        and int(limited.headers["retry-after"]) >= 1
    )


def _hammer(client: GenAPIClient, n: int, text: str = "hello world"):
    def one(_):
        return client.embeddings_create(EMBED, [text])

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(n)))


def test_limiter_keeps_under_enforced_rpm(make_client, standin):
    standin.set_knobs(rpm=1200, rate_window_s=1.0)  # 20 a second
    unlimited = make_client(rpm=1_000_000, max_retries=0)
    with pytest.raises(RateLimitedError):
        _hammer(unlimited, 60)
    time.sleep(1.1)
    standin.reset_stats()
    limited = make_client(rpm=1200, concurrency=8, sleep=Sleeps())
    results = _hammer(limited, 50)
    assert len(results) == 50
    stats = standin.stats()
    assert stats["statuses"].get("429", 0) <= 2, stats


def test_limiter_keeps_under_enforced_tpm(make_client, standin):
    standin.set_knobs(tpm=60_000, rate_window_s=1.0)  # 1,000 tokens a second
    text = "token " * 66  # ~99 estimated tokens per request
    limited = make_client(tpm=60_000, concurrency=8, sleep=Sleeps())
    results = _hammer(limited, 25, text)
    assert len(results) == 25
    stats = standin.stats()
    assert stats["statuses"].get("429", 0) <= 2, stats


def test_concurrency_knob(make_client, standin):
    standin.set_knobs(concurrency=1, latency_ms=200)
    client = make_client(max_retries=0)
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(client.models_list) for _ in range(3)]
        outcomes = [f.exception() for f in futures]
    assert any(isinstance(e, RateLimitedError) for e in outcomes)
    standin.set_knobs(concurrency=0, latency_ms=0)
    polite = make_client(concurrency=1)
    with ThreadPoolExecutor(max_workers=3) as pool:
        assert all(pool.map(lambda _: polite.models_list(), range(3)))


def test_error_event_inside_a_200_chat_stream(client, standin):
    standin.set_knobs(
        fail_next={
            "in_stream": True,
            "endpoint": "chat/completions",
            "body": {"error": {"message": "Engine crashed", "type": "server_error", "code": 500}},
        }
    )
    seen = []
    with pytest.raises(ProviderUnavailableError, match="Engine crashed"):
        for chunk in client.chat_completions_create(model=CHAT, messages=MESSAGES, stream=True):
            seen.append(chunk)
    assert seen  # some content arrived before the error


def test_error_event_inside_a_200_responses_stream(client, standin):
    standin.set_knobs(
        fail_next={
            "in_stream": True,
            "endpoint": "responses",
            "body": {
                "type": "error",
                "code": "context_length_exceeded",
                "message": "Too many tokens in input",
            },
        }
    )
    with pytest.raises(ContextTooLongError):
        list(client.responses_create(model="gpt-oss-120b", input="Why is the sky blue?", stream=True))


def test_vllm_error_object_inside_a_stream(client, standin):
    standin.set_knobs(
        fail_next={
            "in_stream": True,
            "endpoint": "chat/completions",
            "body": {"object": "error", "message": "rate limited", "type": "RateLimitError", "code": 429},
        }
    )
    with pytest.raises(RateLimitedError):
        list(client.chat_completions_create(model=CHAT, messages=MESSAGES, stream=True))


def test_stream_cut_halfway(client, standin):
    standin.set_knobs(stream_cut_rate=1.0)
    with pytest.raises(ProviderUnavailableError):
        list(client.chat_completions_create(model=CHAT, messages=MESSAGES, stream=True))
    with pytest.raises(ProviderUnavailableError):
        list(client.responses_create(model="gpt-oss-120b", input="Why is the sky blue?", stream=True))
    standin.set_knobs(stream_cut_rate=0.0)
    assert list(client.chat_completions_create(model=CHAT, messages=MESSAGES, stream=True))


def test_stream_start_is_retried(make_client, standin):
    client = make_client(sleep=Sleeps())
    standin.set_knobs(fail_next={"status": 503, "endpoint": "chat/completions"})
    assert list(client.chat_completions_create(model=CHAT, messages=MESSAGES, stream=True))
    assert standin.count("chat/completions") == 2


def test_error_rate_is_absorbed_by_retries(make_client, standin):
    standin.set_knobs(error_rate=0.3, seed=7)
    client = make_client(sleep=Sleeps(), max_retries=8)
    for _ in range(10):
        assert client.embeddings_create(EMBED, ["x"]).vectors
    stats = standin.stats()
    assert stats["statuses"].get("500", 0) + stats["statuses"].get("503", 0) > 0


def test_malformed_body_is_bad_response(make_client, standin):
    client = make_client(max_retries=0)
    standin.set_knobs(fail_next={"status": 200, "raw": '{"object": "list", "data": ['})
    with pytest.raises(BadResponseError):
        client.embeddings_create(EMBED, ["x"])


def test_a_malformed_200_is_transient_and_retried(make_client, standin):
    """A 2xx cut in half (wave 1's chaos run failed 50 documents for good on it) is retried like a 5xx."""
    sleeps = Sleeps()
    client = make_client(sleep=sleeps)
    standin.set_knobs(
        fail_next={"count": 2, "status": 200, "raw": '{"object": "list", "data": [', "endpoint": "embeddings"}
    )
    assert client.embeddings_create(EMBED, ["x"]).vectors
    assert standin.count("embeddings") == 3 and len(sleeps) == 2


def test_a_malformed_200_that_persists_is_a_retryable_error(make_client, standin):
    client = make_client(sleep=Sleeps(), max_retries=2)
    standin.set_knobs(fail_next={"count": 5, "status": 200, "raw": "<html>", "endpoint": "embeddings"})
    with pytest.raises(MalformedResponseError, match="not JSON.*after 2 retries") as info:
        client.embeddings_create(EMBED, ["x"])
    assert info.value.retryable and standin.count("embeddings") == 3


def test_the_key_is_never_in_errors_or_logs(caplog):
    with local_server(api_key="right") as srv:
        client = GenAPIClient(
            GenAPIConfig(base_url=srv.base_url, api_key="sk-very-secret", max_retries=1, backoff_base=0.01)
        )
        srv.set_knobs(fail_next={"status": 503})
        with caplog.at_level("DEBUG"):
            with pytest.raises(AuthenticationError) as info:
                client.models_list()
        assert "sk-very-secret" not in caplog.text and "sk-very-secret" not in repr(info.value)
        assert "sk-very-secret" not in repr(client.config)
        client.close()
