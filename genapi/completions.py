"""Text generation through either provider API, as text and usage rather than wire formats.

`/v1/chat/completions` and `/v1/responses` shape their answers differently (choices and deltas; output items
and typed events). Callers give chat-style messages and get back a `Completion` (text, usage, model) or, when
streaming, `TextChunk`s: text deltas, then the usage and the model name when the provider reports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from genapi.client import GenAPIClient, get_client
from genapi.errors import BadResponseError

APIS = ("chat", "responses")


@dataclass
class TextUsage:
    input_tokens: int = 0
    output_tokens: int = 0

    @classmethod
    def from_wire(cls, raw: Any) -> TextUsage:
        """Either API's usage (`prompt_tokens`/`completion_tokens` or `input_tokens`/`output_tokens`)."""
        raw = raw if isinstance(raw, dict) else {}
        return cls(
            input_tokens=int(raw.get("prompt_tokens", raw.get("input_tokens")) or 0),
            output_tokens=int(raw.get("completion_tokens", raw.get("output_tokens")) or 0),
        )

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


@dataclass
class Completion:
    text: str
    model: str
    usage: TextUsage = field(default_factory=TextUsage)


@dataclass(frozen=True)
class TextChunk:
    """One piece of a stream: a text `delta`, or the `usage` / `model` once the provider says them."""

    delta: str = ""
    usage: TextUsage | None = None
    model: str | None = None


def responses_output_text(response: dict[str, Any]) -> str:
    """Concatenated `output_text` parts of a Responses API answer."""
    if isinstance(response.get("output_text"), str):
        return response["output_text"]
    parts = []
    for item in response.get("output") or []:
        if isinstance(item, dict) and item.get("type") == "message":
            for content in item.get("content") or []:
                if isinstance(content, dict) and content.get("type") == "output_text":
                    parts.append(content.get("text", ""))
    return "".join(parts)


def _check_api(api: str) -> None:
    if api not in APIS:
        raise ValueError(f"api must be one of {APIS}, not {api!r}")


def text_complete(
    *,
    api: str,
    model: str,
    messages: list[dict[str, Any]],
    instructions: str | None = None,
    temperature: float | None = None,
    client: GenAPIClient | None = None,
) -> Completion:
    """The model's answer to chat-style `messages` (after the system `instructions`) through `api`
    ("chat" or "responses"). Raises `GenAPIError` on failure."""
    _check_api(api)
    client = client or get_client()
    if api == "responses":
        response = client.responses_create(
            model=model, input=messages, instructions=instructions, temperature=temperature
        )
        return Completion(
            text=responses_output_text(response),
            model=response.get("model") or model,
            usage=TextUsage.from_wire(response.get("usage")),
        )
    system = [{"role": "system", "content": instructions}] if instructions else []
    response = client.chat_completions_create(
        model=model, messages=[*system, *messages], temperature=temperature
    )
    choice = response["choices"][0] if response["choices"] else {}
    if not isinstance(choice, dict):
        raise BadResponseError("chat completion with an unreadable choice")
    return Completion(
        text=(choice.get("message") or {}).get("content") or "",
        model=response.get("model") or model,
        usage=TextUsage.from_wire(response.get("usage")),
    )


def text_stream(
    *,
    api: str,
    model: str,
    messages: list[dict[str, Any]],
    instructions: str | None = None,
    temperature: float | None = None,
    client: GenAPIClient | None = None,
) -> Iterator[TextChunk]:
    """`text_complete` as a stream of `TextChunk`s. A provider failure, before or during the stream, raises
    `GenAPIError` from the iterator; closing the iterator closes the connection."""
    _check_api(api)
    client = client or get_client()
    system = [{"role": "system", "content": instructions}] if instructions else []
    if api == "responses":
        source = client.responses_create(
            model=model,
            input=messages,
            instructions=instructions,
            temperature=temperature,
            stream=True,
        )
        chunks = _responses_chunks(source)
    else:
        source = client.chat_completions_create(
            model=model,
            messages=[*system, *messages],
            temperature=temperature,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = _chat_chunks(source)
    try:
        yield from chunks
    finally:
        close = getattr(source, "close", None)
        if close:
            close()


def _responses_chunks(events: Iterator[dict[str, Any]]) -> Iterator[TextChunk]:
    for event in events:
        etype = event.get("type")
        if etype == "response.output_text.delta" and event.get("delta"):
            yield TextChunk(delta=event["delta"])
        elif etype in ("response.completed", "response.incomplete"):
            response = event.get("response") or {}
            yield TextChunk(usage=TextUsage.from_wire(response.get("usage")), model=response.get("model"))
        elif event.get("object") == "response" and event.get("output") is not None:
            # A server that ignored stream=true and sent the whole response.
            yield TextChunk(delta=responses_output_text(event))
            yield TextChunk(usage=TextUsage.from_wire(event.get("usage")), model=event.get("model"))


def _chat_chunks(chunks: Iterator[dict[str, Any]]) -> Iterator[TextChunk]:
    model_seen = False
    for chunk in chunks:
        if chunk.get("model") and not model_seen:
            model_seen = True
            yield TextChunk(model=chunk["model"])
        for choice in chunk.get("choices") or []:
            content = (choice.get("delta") or choice.get("message") or {}).get("content")
            if content:
                yield TextChunk(delta=content)
        if isinstance(chunk.get("usage"), dict):
            yield TextChunk(usage=TextUsage.from_wire(chunk["usage"]))
