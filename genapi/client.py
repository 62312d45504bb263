"""The Generative APIs client: one pooled httpx client per process, retries, a limiter, one error taxonomy."""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import os
import pathlib
import random
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from genapi.config import SCALEWAY_API, GenAPIConfig
from genapi.errors import (
    BadResponseError,
    GenAPIError,
    InvalidRequestError,
    ProviderUnavailableError,
    RateLimitedError,
    error_from_response,
    error_from_stream_event,
)
from genapi.limiter import Limiter, estimate_tokens, server_wait_hint
from genapi.sse import iter_sse
from genapi.types import EmbeddingsResult, RerankHit, Usage
from genapi.usage import UsageRecord, emit

log = logging.getLogger("genapi")

USER_AGENT = "citable-genapi/0.1"


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _text_of(content: Any) -> str:
    """Text of a chat/responses message content (string or list of parts), for token estimates."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text_of(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return ""


def _decode_base64_vector(data: str) -> list[float]:
    raw = base64.b64decode(data)
    try:
        import numpy as np

        return np.frombuffer(raw, dtype="<f4").astype(float).tolist()
    except ImportError:  # pragma: no cover - numpy is normally present
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))


class GenAPIClient:
    """Speaks the Scaleway Generative APIs contract (and any OpenAI-compatible server).

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
        self._limiter: Limiter | None = None

    def __repr__(self) -> str:
        return f"GenAPIClient(base_url={self.config.base_url!r})"

    # -- plumbing ---------------------------------------------------------------------------------

    def _state(self) -> tuple[httpx.Client, Limiter]:
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    # A forked child must not share the parent's sockets or lock states.
                    self._http = self._build_http()
                    self._limiter = Limiter(self.config.rpm, self.config.tpm, self.config.concurrency)
                    self._pid = pid
        return self._http, self._limiter  # type: ignore[return-value]

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

    def __enter__(self) -> GenAPIClient:
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
        est_tokens: int = 0,
        json_body: Any = None,
        files: Any = None,
        data: Any = None,
        params: Any = None,
        stream: bool = False,
    ) -> tuple[httpx.Response, int, Limiter | None]:
        """Send with retries. For streams the caller owns the response and must ``limiter.release()``."""
        attempt = 0
        while True:
            http, limiter = self._state()
            limiter.acquire(est_tokens)
            keep_slot = False
            error: GenAPIError
            try:
                request = http.build_request(
                    method, path, json=json_body, files=files, data=data, params=params
                )
                response = http.send(request, stream=stream)
                if response.status_code < 400:
                    keep_slot = stream
                    return response, attempt, (limiter if stream else None)
                content = response.read()
                response.close()
                hint = server_wait_hint(response.headers) if response.status_code in (429, 503) else None
                error = error_from_response(response.status_code, content, retry_after=hint)
            except httpx.TimeoutException as exc:
                error = ProviderUnavailableError(f"timeout talking to the provider ({type(exc).__name__})")
            except httpx.TransportError as exc:
                error = ProviderUnavailableError(
                    f"network error talking to the provider ({type(exc).__name__})"
                )
            finally:
                if not keep_slot:
                    limiter.release()
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
            raise BadResponseError(
                f"provider answered {response.status_code} with a body that is not JSON",
                status=response.status_code,
                body=response.text[:500],
            ) from exc

    def _call_json(
        self, method: str, path: str, *, endpoint: str, model: str | None, est_tokens: int = 0, **kw: Any
    ) -> tuple[Any, int, float]:
        t0 = time.perf_counter()
        response, retries, _ = self._send(method, path, endpoint=endpoint, est_tokens=est_tokens, **kw)
        body = self._json(response)
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
        response, retries, limiter = self._send(
            "POST", path, endpoint=endpoint, est_tokens=est_tokens, json_body=body, stream=True
        )
        ctype = response.headers.get("content-type", "")
        if "text/event-stream" not in ctype:
            # Some servers ignore stream=true and answer with one JSON body.
            try:
                content = response.read()
            finally:
                response.close()
                limiter.release()  # type: ignore[union-attr]
            try:
                payload = json.loads(content)
            except ValueError as exc:
                raise BadResponseError("stream requested, got a non-JSON, non-SSE body") from exc
            return iter([payload])
        return self._iter_stream(
            response, limiter, t0, retries, endpoint, model, est_tokens, hide_usage_chunk
        )

    def _iter_stream(self, response, limiter, t0, retries, endpoint, model, est_tokens, hide_usage_chunk):
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
                        raise BadResponseError(f"malformed event in the stream: {data[:200]!r}") from exc
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
            limiter.release()
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

    # -- endpoints --------------------------------------------------------------------------------

    def models_list(self) -> list[dict[str, Any]]:
        path = "models"
        cfg = self.config
        if cfg.project_id and cfg.base_url.rstrip("/") == f"{SCALEWAY_API}/{cfg.project_id}/v1":
            path = f"{SCALEWAY_API}/v1/models"  # the contract serves models unscoped only
        body, retries, ms = self._call_json("GET", path, endpoint="models", model=None)
        self._emit(None, "models", None, ms, retries)
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise BadResponseError("models list without data")
        return data

    def _embed_batches(self, inputs: list[str]) -> Iterator[tuple[int, list[str], int]]:
        size = max(1, min(self.config.embed_batch_size, 2048))
        budget = max(1, self.config.embed_token_budget)
        start, batch, tokens = 0, [], 0
        for i, text in enumerate(inputs):
            t = estimate_tokens(text)
            if batch and (len(batch) >= size or tokens + t > budget):
                yield start, batch, tokens
                start, batch, tokens = i, [], 0
            batch.append(text)
            tokens += t
        if batch:
            yield start, batch, tokens

    def embeddings_create(
        self,
        model: str,
        input: list[str] | str,
        *,
        dimensions: int | None = None,
        encoding_format: str = "float",
    ) -> EmbeddingsResult:
        inputs = [input] if isinstance(input, str) else list(input)
        vectors: list[list[float]] = []
        usage = Usage()
        model_name = model
        calls = 0
        for _, batch, est in self._embed_batches(inputs):
            body = _drop_none(
                {"model": model, "input": batch, "encoding_format": encoding_format, "dimensions": dimensions}
            )
            data, retries, ms = self._call_json(
                "POST", "embeddings", endpoint="embeddings", model=model, est_tokens=est, json_body=body
            )
            calls += 1
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list) or len(items) != len(batch):
                got = len(items) if isinstance(items, list) else "no"
                raise BadResponseError(f"embeddings: sent {len(batch)} inputs, got {got} vectors")
            items = sorted(items, key=lambda d: d.get("index", 0))
            for item in items:
                emb = item.get("embedding")
                if isinstance(emb, str):
                    emb = _decode_base64_vector(emb)
                if not isinstance(emb, list):
                    raise BadResponseError("embeddings: item without a vector")
                vectors.append(emb)
            u = data.get("usage") or {}
            usage.prompt_tokens += int(u.get("prompt_tokens") or est)
            usage.total_tokens += int(u.get("total_tokens") or u.get("prompt_tokens") or est)
            model_name = data.get("model") or model
            self._emit(model, "embeddings", u or {"prompt_tokens": est}, ms, retries)
        return EmbeddingsResult(vectors=vectors, model=model_name, usage=usage, calls=calls)

    def rerank(
        self, query: str, documents: list[str], *, model: str, top_n: int | None = None
    ) -> list[RerankHit]:
        documents = list(documents)
        if not documents:
            return []
        size = max(1, min(self.config.rerank_batch_size, 1000))
        hits: list[RerankHit] = []
        for offset in range(0, len(documents), size):
            part = documents[offset : offset + size]
            part_top = min(top_n, len(part)) if top_n is not None else None
            body = _drop_none({"model": model, "query": query, "documents": part, "top_n": part_top})
            est = estimate_tokens(query) * len(part) + sum(estimate_tokens(d) for d in part)
            data, retries, ms = self._call_json(
                "POST", "rerank", endpoint="rerank", model=model, est_tokens=est, json_body=body
            )
            results = None
            if isinstance(data, dict):
                results = data.get("results", data.get("data"))
            elif isinstance(data, list):
                results = data
            if not isinstance(results, list):
                raise BadResponseError("rerank: no results in the answer")
            for r in results:
                try:
                    idx = int(r["index"])
                    score = float(r["relevance_score"] if "relevance_score" in r else r["score"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise BadResponseError(f"rerank: unreadable result {r!r}"[:300]) from exc
                if not 0 <= idx < len(part):
                    raise BadResponseError(f"rerank: index {idx} out of range")
                doc = r.get("document")
                if isinstance(doc, dict):
                    doc = doc.get("text")
                hits.append(RerankHit(index=offset + idx, relevance_score=score, document=doc))
            usage = data.get("usage") if isinstance(data, dict) else None
            self._emit(model, "rerank", usage or {"prompt_tokens": est}, ms, retries)
        hits.sort(key=lambda h: (-h.relevance_score, h.index))
        return hits[:top_n] if top_n is not None else hits

    def chat_completions_create(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        stream: bool = False,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        reasoning_effort: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stream_options: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        hide_usage = False
        if stream and stream_options is None:
            # Ask for usage so the usage hook sees real numbers, but keep the extra chunk from the caller.
            stream_options, hide_usage = {"include_usage": True}, True
        body = _drop_none(
            {
                "model": model,
                "messages": messages,
                "stream": True if stream else None,
                "stream_options": stream_options if stream else None,
                "tools": tools,
                "response_format": response_format,
                "reasoning_effort": reasoning_effort,
                "temperature": temperature,
                "max_tokens": max_tokens,
            }
        )
        body.update(_drop_none(extra))
        est = sum(estimate_tokens(_text_of(m.get("content"))) for m in messages) + (max_tokens or 0)
        if stream:
            return self._stream(
                "chat/completions",
                body,
                endpoint="chat/completions",
                model=model,
                est_tokens=est,
                hide_usage_chunk=hide_usage,
            )
        data, retries, ms = self._call_json(
            "POST",
            "chat/completions",
            endpoint="chat/completions",
            model=model,
            est_tokens=est,
            json_body=body,
        )
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise BadResponseError("chat completion without choices")
        self._emit(model, "chat/completions", data.get("usage"), ms, retries, est)
        return data

    @staticmethod
    def _responses_input(input: Any) -> list[dict[str, Any]]:
        if isinstance(input, str):
            return [{"role": "user", "content": [{"type": "input_text", "text": input}]}]
        items = []
        for item in input:
            if isinstance(item, dict) and isinstance(item.get("content"), str):
                item = {**item, "content": [{"type": "input_text", "text": item["content"]}]}
            items.append(item)
        return items

    def responses_create(
        self,
        *,
        model: str,
        input: str | list[dict[str, Any]],
        instructions: str | None = None,
        stream: bool = False,
        tools: list[dict[str, Any]] | None = None,
        text: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        items = self._responses_input(input)
        if text and (text.get("format") or {}).get("type") == "text":
            # Plain text is the default, and the contract's format schema demands name+schema for any type.
            text = {k: v for k, v in text.items() if k != "format"} or None
        body = _drop_none(
            {
                "model": model,
                "input": items,
                "instructions": instructions,
                "stream": True if stream else None,
                "tools": tools,
                "text": text,
            }
        )
        body.update(_drop_none(extra))
        est = sum(estimate_tokens(_text_of(i.get("content"))) for i in items if isinstance(i, dict))
        est += estimate_tokens(instructions or "") + int(extra.get("max_output_tokens") or 0)
        if stream:
            return self._stream("responses", body, endpoint="responses", model=model, est_tokens=est)
        data, retries, ms = self._call_json(
            "POST", "responses", endpoint="responses", model=model, est_tokens=est, json_body=body
        )
        if not isinstance(data, dict) or "output" not in data:
            raise BadResponseError("response without output")
        if data.get("status") == "failed" and data.get("error"):
            raise error_from_stream_event({"type": "response.failed", "response": data})
        self._emit(model, "responses", data.get("usage"), ms, retries, est)
        return data

    @staticmethod
    def output_text(response: dict[str, Any]) -> str:
        """Concatenated ``output_text`` of a Responses API answer."""
        from genapi.completions import responses_output_text  # completions builds on this module

        return responses_output_text(response)

    def audio_transcriptions_create(
        self,
        file: bytes | pathlib.Path | str,
        *,
        filename: str,
        model: str,
        language: str | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
    ) -> str:
        if isinstance(file, (str, pathlib.Path)):
            path = pathlib.Path(file)
            size = path.stat().st_size
            if size > self.config.max_audio_bytes:
                raise InvalidRequestError(self._too_big(size), code="file_too_large")
            content = path.read_bytes()
        else:
            content = bytes(file)
        if len(content) > self.config.max_audio_bytes:
            raise InvalidRequestError(self._too_big(len(content)), code="file_too_large")
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        form = _drop_none(
            {
                "model": model,
                "language": language,
                "prompt": prompt,
                "response_format": "json",
                "temperature": None if temperature is None else str(temperature),
            }
        )
        data, retries, ms = self._call_json(
            "POST",
            "audio/transcriptions",
            endpoint="audio/transcriptions",
            model=model,
            files={"file": (filename, content, mime)},
            data=form,
        )
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise BadResponseError("transcription without text")
        self._emit(model, "audio/transcriptions", None, ms, retries, 0, estimate_tokens(data["text"]))
        return data["text"]

    def _too_big(self, size: int) -> str:
        limit = self.config.max_audio_bytes
        return f"audio file is {size / 1e6:.1f} MB; the provider accepts at most {limit / 2**20:.0f} MB"

    def batches_create(
        self,
        *,
        input_file_id: str,
        endpoint: str,
        completion_window: str = "24h",
        output_expires_after: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        body = _drop_none(
            {
                "input_file_id": input_file_id,
                "endpoint": endpoint,
                "completion_window": completion_window,
                "output_expires_after": output_expires_after,
            }
        )
        body.update(_drop_none(extra))
        data, retries, ms = self._call_json("POST", "batches", endpoint="batches", model=None, json_body=body)
        self._emit(data.get("model"), "batches", None, ms, retries)
        return data

    def batches_get(self, batch_id: str) -> dict[str, Any]:
        data, retries, ms = self._call_json("GET", f"batches/{batch_id}", endpoint="batches", model=None)
        self._emit(data.get("model"), "batches", None, ms, retries)
        return data

    def batches_list(self, *, after: str | None = None, limit: int | None = None) -> dict[str, Any]:
        params = _drop_none({"after": after, "limit": limit})
        data, retries, ms = self._call_json("GET", "batches", endpoint="batches", model=None, params=params)
        self._emit(None, "batches", None, ms, retries)
        return data

    def batches_cancel(self, batch_id: str) -> dict[str, Any]:
        data, retries, ms = self._call_json(
            "POST", f"batches/{batch_id}/cancel", endpoint="batches", model=None
        )
        self._emit(data.get("model"), "batches", None, ms, retries)
        return data


_client: GenAPIClient | None = None
_client_lock = threading.Lock()


def get_client() -> GenAPIClient:
    """The process-wide client, built from the environment on first use (pool is re-made after fork)."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = GenAPIClient(GenAPIConfig.from_env())
    return _client


def reset_client() -> None:
    """Forget the process-wide client (tests change the environment between cases)."""
    global _client
    with _client_lock:
        old, _client = _client, None
    if old is not None:
        old.close()
