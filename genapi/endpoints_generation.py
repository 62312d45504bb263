"""Chat completions and responses, whole or streamed (the raw wire format; `genapi.completions` turns it
into text and usage)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from genapi.errors import (
    BadResponseError,
    error_from_stream_event,
)
from genapi.limiter import estimate_tokens
from genapi.transport import Transport, drop_none


def _text_of(content: Any) -> str:
    """Text of a chat/responses message content (string or list of parts), for token estimates."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text_of(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return ""


class GenerationEndpoints(Transport):
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
        body = drop_none(
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
        body.update(drop_none(extra))
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
        body = drop_none(
            {
                "model": model,
                "input": items,
                "instructions": instructions,
                "stream": True if stream else None,
                "tools": tools,
                "text": text,
            }
        )
        body.update(drop_none(extra))
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
