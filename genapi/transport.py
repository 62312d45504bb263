"""The client's transport: one pooled httpx client per process, retries with backoff, the limiter, streams,
one error taxonomy and the usage hook. The endpoint families (`genapi.endpoints_*`) build on it."""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from genapi.budget import budget_key, budget_open
from genapi.config import GenAPIConfig
from genapi.errors import (
    BadResponseError,
    GenAPIError,
    MalformedResponseError,
    ProviderUnavailableError,
    RateLimitedError,
    error_from_response,
    error_from_stream_event,
)
from genapi.limiter import Limiter, SharedLimiter, server_wait_hint
from genapi.sse import iter_sse
from genapi.usage import AttemptRecord, UsageRecord, emit, emit_attempt

log = logging.getLogger("genapi")

USER_AGENT = "citable-genapi/0.1"


def drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


class Transport:
    """Sends requests to a Generative APIs server (Scaleway, any OpenAI-compatible server, the stand-in).

    Thread-safe. After ``fork()`` the child builds its own connection pool and limiter on first use.
    ``sleep`` is the function used between retries (injectable for tests); ``event_hooks`` and ``transport``
    go to the underlying ``httpx.Client``.
    """

    def __init__(
        self,
        config: GenAPIConfig | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
        event_hooks: dict[str, list[Callable]] | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or GenAPIConfig.from_env()
        self._sleep = sleep if sleep is not None else time.sleep
        self._event_hooks = event_hooks
        self._transport = transport
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._http: httpx.Client | None = None
        self._limiter: Limiter | SharedLimiter | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.config.base_url!r})"

    # -- plumbing ---------------------------------------------------------------------------------

    def _state(self) -> tuple[httpx.Client, Limiter | SharedLimiter]:
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    # A forked child must not share the parent's sockets or lock states.
                    self._http = self._build_http()
                    self._limiter = self._build_limiter()
                    self._pid = pid
        return self._http, self._limiter  # type: ignore[return-value]

    def _build_limiter(self) -> Limiter | SharedLimiter:
        cfg = self.config
        if not cfg.budget_url:
            return Limiter(cfg.rpm, cfg.tpm, cfg.concurrency)
        return SharedLimiter(
            budget_open(cfg.budget_url),
            budget_key(cfg.budget_prefix, cfg.base_url),
            rpm=max(1, round(cfg.rpm * (1 - cfg.budget_margin))),
            tpm=max(1, round(cfg.tpm * (1 - cfg.budget_margin))),
            concurrency=cfg.concurrency,
            # A slot outlives any request (retries are new requests) unless its process died.
            lease_seconds=cfg.connect_timeout + cfg.read_timeout + 30,
            sleep=self._sleep,
        )

    def _build_http(self) -> httpx.Client:
        cfg = self.config
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if cfg.api_key:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        kwargs: dict[str, Any] = {}
        if self._event_hooks:
            kwargs["event_hooks"] = self._event_hooks
        if self._transport is not None:
            kwargs["transport"] = self._transport
        return httpx.Client(
            base_url=cfg.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(
                connect=cfg.connect_timeout,
                read=cfg.read_timeout,
                write=cfg.read_timeout,
                pool=cfg.read_timeout,
            ),
            limits=httpx.Limits(
                max_connections=cfg.concurrency,
                max_keepalive_connections=cfg.concurrency,
                keepalive_expiry=30,
            ),
            follow_redirects=False,
            **kwargs,
        )

    def close(self) -> None:
        with self._lock:
            if self._http is not None and self._pid == os.getpid():
                self._http.close()
            self._http, self._limiter, self._pid = None, None, None

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _backoff(self, attempt: int) -> float:
        # Exponential backoff with full jitter: spreads the retries of many workers apart.
        return self._rng.uniform(0, min(self.config.backoff_max, self.config.backoff_base * 2**attempt))

    def _send(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        model: str | None = None,
        est_tokens: int = 0,
        json_body: Any = None,
        files: Any = None,
        data: Any = None,
        params: Any = None,
        stream: bool = False,
    ) -> tuple[httpx.Response, int, Callable[[], None] | None]:
        """Send with retries. For streams the caller owns the response and must call the returned
        release function when it is done."""
        attempt = 0
        while True:
            http, limiter = self._state()
            ticket = limiter.acquire(est_tokens)
            keep_slot = False
            error: GenAPIError
            sent = time.perf_counter()
            outcome = "network"
            try:
                request = http.build_request(
                    method, path, json=json_body, files=files, data=data, params=params
                )
                response = http.send(request, stream=stream)
                outcome = str(response.status_code)
                if response.status_code < 400:
                    keep_slot = stream
                    return response, attempt, (functools.partial(limiter.release, ticket) if stream else None)
                content = response.read()
                response.close()
                hint = server_wait_hint(response.headers) if response.status_code in (429, 503) else None
                error = error_from_response(response.status_code, content, retry_after=hint)
            except httpx.TimeoutException as exc:
                outcome = "timeout"
                error = ProviderUnavailableError(f"timeout talking to the provider ({type(exc).__name__})")
            except httpx.TransportError as exc:
                error = ProviderUnavailableError(
                    f"network error talking to the provider ({type(exc).__name__})"
                )
            finally:
                if not keep_slot:
                    limiter.release(ticket)
                emit_attempt(AttemptRecord(model, endpoint, outcome, (time.perf_counter() - sent) * 1000))
            if not error.retryable or attempt >= self.config.max_retries:
                if attempt:
                    error.message = f"{error.message} (after {attempt} retries)"
                raise error
            if error.retry_after is not None:
                if error.retry_after > self.config.max_retry_wait:
                    raise error
                wait = error.retry_after + self._rng.uniform(0, min(1.0, 0.1 * error.retry_after + 0.05))
                if isinstance(error, RateLimitedError):
                    limiter.pause(error.retry_after)
            else:
                wait = self._backoff(attempt)
            log.warning(
                "genapi %s %s: %s %s; retry %d/%d in %.2fs",
                method,
                endpoint,
                type(error).__name__,
                error.status,
                attempt + 1,
                self.config.max_retries,
                wait,
            )
            self._sleep(wait)
            attempt += 1

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedResponseError(
                f"provider answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
                body=response.text[:500],
            ) from exc

    def _call_json(
        self, method: str, path: str, *, endpoint: str, model: str | None, est_tokens: int = 0, **kw: Any
    ) -> tuple[Any, int, float]:
        t0 = time.perf_counter()
        malformed = 0
        while True:
            response, retries, _ = self._send(
                method, path, endpoint=endpoint, model=model, est_tokens=est_tokens, **kw
            )
            try:
                body = self._json(response)
                break
            except MalformedResponseError as error:
                # A 2xx cut short is as transient as a dropped connection: same backoff, same retry cap.
                if malformed >= self.config.max_retries:
                    error.message = f"{error.message} (after {malformed} retries)"
                    raise
                wait = self._backoff(malformed)
                log.warning(
                    "genapi %s %s: %s; retry %d/%d in %.2fs",
                    method,
                    endpoint,
                    error.message,
                    malformed + 1,
                    self.config.max_retries,
                    wait,
                )
                self._sleep(wait)
                malformed += 1
        retries += malformed
        if not isinstance(body, (dict, list)):
            raise BadResponseError(
                "provider answered with an unexpected JSON value", status=response.status_code
            )
        if isinstance(body, dict) and (
            body.get("object") == "error" or (body.get("error") and len(body) <= 4)
        ):
            raise error_from_stream_event(body)
        return body, retries, (time.perf_counter() - t0) * 1000

    def _stream(
        self,
        path: str,
        body: dict[str, Any],
        *,
        endpoint: str,
        model: str | None,
        est_tokens: int,
        hide_usage_chunk: bool = False,
    ) -> Iterator[dict[str, Any]]:
        t0 = time.perf_counter()
        response, retries, release = self._send(
            "POST", path, endpoint=endpoint, model=model, est_tokens=est_tokens, json_body=body, stream=True
        )
        ctype = response.headers.get("content-type", "")
        if "text/event-stream" not in ctype:
            # Some servers ignore stream=true and answer with one JSON body.
            try:
                content = response.read()
            finally:
                response.close()
                release()  # type: ignore[misc]
            try:
                payload = json.loads(content)
            except ValueError as exc:
                raise BadResponseError("stream requested, got a non-JSON, non-SSE body") from exc
            return iter([payload])
        return self._iter_stream(
            response, release, t0, retries, endpoint, model, est_tokens, hide_usage_chunk
        )

    def _iter_stream(self, response, release, t0, retries, endpoint, model, est_tokens, hide_usage_chunk):
        input_tokens, output_tokens, n_chunks = None, None, 0
        finished = False
        ok = False
        try:
            try:
                for event_name, data in iter_sse(response.iter_lines()):
                    if data.strip() == "[DONE]":
                        finished = True
                        break
                    try:
                        obj = json.loads(data)
                    except ValueError as exc:
                        raise MalformedResponseError(
                            f"malformed event in the stream: {data[:200]!r}"
                        ) from exc
                    if not isinstance(obj, dict):
                        raise BadResponseError("unexpected event in the stream")
                    etype = obj.get("type")
                    if (
                        event_name == "error"
                        or etype in ("error", "response.failed")
                        or obj.get("object") == "error"
                        or (obj.get("error") and "choices" not in obj and "response" not in obj)
                    ):
                        raise error_from_stream_event(obj)
                    n_chunks += 1
                    usage = obj.get("usage")
                    if etype in ("response.completed", "response.incomplete"):
                        finished = True
                        usage = (obj.get("response") or {}).get("usage")
                    if isinstance(usage, dict):
                        input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
                        output_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
                    for choice in obj.get("choices") or []:
                        if choice.get("finish_reason"):
                            finished = True
                    if hide_usage_chunk and usage and not obj.get("choices") and "choices" in obj:
                        continue
                    yield obj
            except httpx.TransportError as exc:
                raise ProviderUnavailableError(f"stream interrupted ({type(exc).__name__})") from exc
            if not finished:
                raise ProviderUnavailableError("stream ended before completion")
            ok = True
        finally:
            response.close()
            release()
            if ok:
                emit(
                    UsageRecord(
                        model=model,
                        endpoint=endpoint,
                        input_tokens=int(input_tokens if input_tokens is not None else est_tokens),
                        output_tokens=int(output_tokens if output_tokens is not None else n_chunks),
                        latency_ms=(time.perf_counter() - t0) * 1000,
                        retries=retries,
                    )
                )

    @staticmethod
    def _emit(
        model, endpoint, usage: Any, latency_ms: float, retries: int, est_in: int = 0, est_out: int = 0
    ):
        usage = usage if isinstance(usage, dict) else {}
        input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
        output_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
        if input_tokens is None and usage.get("total_tokens") is not None and output_tokens is None:
            input_tokens = usage["total_tokens"]
        emit(
            UsageRecord(
                model=model,
                endpoint=endpoint,
                input_tokens=int(input_tokens if input_tokens is not None else est_in),
                output_tokens=int(output_tokens if output_tokens is not None else est_out),
                latency_ms=latency_ms,
                retries=retries,
            )
        )
