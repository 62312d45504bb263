"""OpenAI-compatible endpoint: any OpenAI client can use the knowledge base as a model.

`GET /v1/models` lists `citable` (every collection the key may read) and one `citable-<slug>` per
readable collection. `POST /v1/chat/completions` answers the last user message from the knowledge base
(earlier user/assistant turns are passed as history; client system prompts are ignored because the
answer prompt is ours) in the `chat.completion` / `chat.completion.chunk` shapes. Citations are `[n]`
markers in the text and a `citations` list on the response (and on the final streamed chunk).

Errors use OpenAI's shape, `{"error": {"message", "type", "code", "param"}}`, so SDKs raise their usual
exceptions (401 AuthenticationError, 404 NotFoundError, ...). Bearer-authenticated only, hence no CSRF.

Over 400 lines because the two wire shapes (whole and streamed `chat.completion`) and their request
validation belong together: they are one contract, read side by side.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

import genapi
from accounts.authentication import ApiKeyAuthentication
from accounts.models import ApiKey
from accounts.permissions import request_has_scope
from ingestion.models import Collection
from ingestion.selectors import collections_readable
from search import services
from search.apis import MAX_QUESTION_CHARS

# The same bounds as /api/ask: a question of at most MAX_QUESTION_CHARS, earlier turns of at most
# MAX_TURN_CHARS, and the last MAX_HISTORY_TURNS turns passed on (clients resend the whole conversation,
# so older turns are dropped rather than refused; their size is still bounded by the message limits).
MAX_MESSAGES = 200
MAX_MESSAGE_CHARS = MAX_TURN_CHARS = 20_000
MAX_CONTENT_PARTS = 50
MAX_HISTORY_TURNS = 20
MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool", "function")

MODEL_ALL = "citable"
MODEL_PREFIX = "citable-"
OWNER = "citable"


# ---- errors in OpenAI's shape -------------------------------------------------------------------------


class OpenAIError(exceptions.APIException):
    """An error with OpenAI's `type` and `code` fields."""

    def __init__(
        self, message: str, *, status_code: int, type_: str, code: str | None, param: str | None = None
    ):
        super().__init__(message)
        self.status_code = status_code
        self.type = type_
        self.code_name = code
        self.param = param


def openai_error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def openai_exception_handler(exc, context) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, OpenAIError):
        status_code, type_, code, param = exc.status_code, exc.type, exc.code_name, exc.param
        message = str(exc.detail)
    elif isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        status_code, type_, code, param = 401, "invalid_request_error", "invalid_api_key", None
        message = (
            "Incorrect API key provided."
            if isinstance(exc, exceptions.AuthenticationFailed)
            else "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        )
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, exceptions.PermissionDenied):
        status_code, type_, code, param = 403, "permission_error", "insufficient_permissions", None
        message = str(exc.detail)
    elif isinstance(exc, exceptions.Throttled):
        status_code, type_, code, param = 429, "rate_limit_error", "rate_limit_exceeded", None
        message = str(exc.detail)
        if exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
    elif isinstance(exc, exceptions.ValidationError):
        status_code, type_, code, param = 400, "invalid_request_error", "invalid_request", None
        message = _validation_message(exc.detail)
    elif isinstance(exc, exceptions.APIException):
        status_code, type_, code, param = exc.status_code, "invalid_request_error", exc.default_code, None
        message = str(exc.detail)
    else:
        return None  # a real bug: Django's 500 page/log, not a disguised error body
    return Response(openai_error_body(message, type_, code, param), status=status_code, headers=headers)


def _validation_message(detail: Any, prefix: str = "") -> str:
    if isinstance(detail, dict):
        return "; ".join(_validation_message(v, f"{prefix}{k}: ") for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_validation_message(v, prefix) for v in detail)
    return f"{prefix}{detail}"


def provider_error(exc: genapi.GenAPIError) -> OpenAIError:
    if isinstance(exc, genapi.RateLimitedError):
        return OpenAIError(
            "The model provider is rate limiting requests; retry shortly.",
            status_code=429,
            type_="rate_limit_error",
            code="provider_rate_limited",
        )
    return OpenAIError(
        "The model provider is unavailable; retry shortly.",
        status_code=503,
        type_="server_error",
        code="provider_unavailable",
    )


# ---- shared view base ---------------------------------------------------------------------------------


class OpenAIView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes: list = []  # checked in `initial` so every refusal has OpenAI's error shape

    def get_exception_handler(self):
        return openai_exception_handler

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not (request.user and request.user.is_authenticated) or not isinstance(request.auth, ApiKey):
            raise exceptions.NotAuthenticated()
        if not request_has_scope(request, "ask"):
            raise exceptions.PermissionDenied("This API key lacks the 'ask' scope.")

    def readable(self) -> list[Collection]:
        return list(collections_readable(self.request.user, self.request.auth).order_by("slug"))


def model_entry(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER}


class ModelListApi(OpenAIView):
    @extend_schema(
        operation_id="openai_models_list",
        summary="OpenAI-compatible model list: `citable` plus one `citable-<slug>` per readable collection",
        responses={
            200: OpenApiResponse(description="`{object: list, data: [{id, object, created, owned_by}]}`")
        },
        tags=["openai"],
    )
    def get(self, request):
        collections = self.readable()
        created = min((int(c.created_at.timestamp()) for c in collections), default=0)
        data = [model_entry(MODEL_ALL, created)]
        data += [model_entry(f"{MODEL_PREFIX}{c.slug}", int(c.created_at.timestamp())) for c in collections]
        return Response({"object": "list", "data": data})


class ModelDetailApi(OpenAIView):
    @extend_schema(
        operation_id="openai_models_retrieve",
        tags=["openai"],
        responses={200: OpenApiResponse(description="One model")},
    )
    def get(self, request, model_id: str):
        collections = resolve_model(model_id, self.readable())
        created = min((int(c.created_at.timestamp()) for c in collections), default=0)
        return Response(model_entry(model_id, created))


def resolve_model(model_id: str, readable: list[Collection]) -> list[Collection]:
    """The collections a model id stands for; an unknown (or unreadable) model is OpenAI's 404."""
    if model_id == MODEL_ALL:
        return readable
    if model_id.startswith(MODEL_PREFIX):
        slug = model_id[len(MODEL_PREFIX) :]
        found = [c for c in readable if c.slug == slug]
        if found:
            return found
    raise OpenAIError(
        f"The model '{model_id}' does not exist or you do not have access to it.",
        status_code=404,
        type_="invalid_request_error",
        code="model_not_found",
        param="model",
    )


# ---- chat completions ----------------------------------------------------------------------------------


class MessageSerializer(serializers.Serializer):
    """One chat message: its role and its text (a string, or a list of parts of which text ones count).
    Other OpenAI fields (name, tool_calls, ...) are accepted and ignored."""

    role = serializers.ChoiceField(choices=MESSAGE_ROLES)
    content = serializers.JSONField(required=False, allow_null=True)

    def validate_content(self, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_CONTENT_PARTS:
            raise serializers.ValidationError(f"At most {MAX_CONTENT_PARTS} content parts.")
        if value is not None and not isinstance(value, str | list):
            raise serializers.ValidationError("Content must be a string or a list of parts.")
        if len(message_text(value)) > MAX_MESSAGE_CHARS:
            raise serializers.ValidationError(f"A message may hold at most {MAX_MESSAGE_CHARS} characters.")
        return value


class ChatCompletionsApi(OpenAIView):
    throttle_scope = "ask"

    class InputSerializer(serializers.Serializer):
        model = serializers.CharField(max_length=200)
        messages = MessageSerializer(many=True, allow_empty=False, max_length=MAX_MESSAGES)
        stream = serializers.BooleanField(required=False, default=False)
        stream_options = serializers.DictField(
            child=serializers.BooleanField(), required=False, allow_null=True
        )
        # Extensions: how many passages the answer may use; everything else OpenAI defines is accepted
        # and ignored (temperature, max_tokens, ...) so stock clients work unchanged.
        top_k = serializers.IntegerField(required=False, min_value=1, max_value=50, allow_null=True)

    @extend_schema(
        operation_id="openai_chat_completions_create",
        summary="OpenAI-compatible chat completion answered from the knowledge base, with citations",
        request=InputSerializer,
        responses={
            200: OpenApiResponse(
                description="`chat.completion` (or `chat.completion.chunk` server-sent events ending with "
                "`data: [DONE]` when `stream` is true) with an extra `citations` list"
            ),
            401: OpenApiResponse(description="Bad or missing API key"),
            404: OpenApiResponse(description="Unknown model"),
        },
        tags=["openai"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model_id = data["model"]
        collections = resolve_model(model_id, self.readable())
        if not collections:
            raise exceptions.PermissionDenied("This API key cannot read any collection.")
        question, history = split_messages(data["messages"])
        kwargs = {
            "collection_ids": [c.pk for c in collections],
            "top_k": data.get("top_k"),
            "history": history or None,
            "user": request.user,
            "api_key": request.auth,
            "channel": "openai",
        }
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if data.get("stream"):
            include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
            events = services.answer_stream(question, **kwargs)
            response = StreamingHttpResponse(
                completion_chunks(events, completion_id, created, model_id, request, include_usage),
                content_type="text/event-stream; charset=utf-8",
            )
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # nginx would otherwise hold the stream back
            return response
        try:
            answer = services.answer_compose(question, **kwargs)
        except genapi.GenAPIError as exc:
            raise provider_error(exc) from exc
        return Response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model_id,
                "system_fingerprint": None,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer.text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": openai_usage(answer.usage),
                "citations": [citation_out(c.as_dict(), request) for c in answer.citations],
            }
        )


def message_text(content: Any) -> str:
    """OpenAI content is a string or a list of parts; only text parts carry a question."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def split_messages(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    """The last user message is the question; the user/assistant turns before it become the answer
    service's history, `[{"question", "answer"}]` (system and tool messages are not ours to follow)."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None:
        raise exceptions.ValidationError({"messages": ["At least one message with role 'user' is required."]})
    question = message_text(messages[last_user].get("content")).strip()
    if not question:
        raise exceptions.ValidationError({"messages": ["The last user message has no text."]})
    if len(question) > MAX_QUESTION_CHARS:
        raise exceptions.ValidationError(
            {"messages": [f"The question (the last user message) may hold at most {MAX_QUESTION_CHARS} "
                          f"characters; it has {len(question)}."]}
        )  # fmt: skip
    history: list[dict[str, str]] = []
    for message in messages[:last_user]:
        text = message_text(message.get("content")).strip()
        if not text:
            continue
        if message.get("role") == "user":
            history.append({"question": text, "answer": ""})
        elif message.get("role") == "assistant" and history and not history[-1]["answer"]:
            history[-1]["answer"] = text
    for turn in history:
        turn["question"] = turn["question"][:MAX_QUESTION_CHARS]
    return question, history[-MAX_HISTORY_TURNS:]


def openai_usage(usage: dict[str, int] | None) -> dict[str, int]:
    usage = usage or {}
    prompt = int(usage.get("input_tokens", usage.get("prompt_tokens", 0)) or 0)
    completion = int(usage.get("output_tokens", usage.get("completion_tokens", 0)) or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def citation_out(citation: dict[str, Any], request) -> dict[str, Any]:
    """A citation for an outside client: the passage link is absolute so it works from anywhere."""
    out = dict(citation)
    if out.get("url"):
        out["url"] = request.build_absolute_uri(out["url"])
    return out


def _sse(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def completion_chunks(
    events: Iterator[tuple[str, dict[str, Any]]],
    completion_id: str,
    created: int,
    model_id: str,
    request,
    include_usage: bool,
) -> Iterator[bytes]:
    """Translate the answer's events (sources, delta, citations, usage, done, error) into OpenAI chunks."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model_id,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            **extra,
        }

    citations: list[dict[str, Any]] = []
    usage: dict[str, int] = {}
    yield _sse(chunk({"role": "assistant", "content": ""}))
    try:
        for name, payload in events:
            if name == "delta":
                text = (payload or {}).get("text", "")
                if text:
                    yield _sse(chunk({"content": text}))
            elif name == "citations":
                items = payload if isinstance(payload, list) else (payload or {}).get("citations", [])
                citations = [citation_out(c, request) for c in items]
            elif name == "usage":
                usage = payload or {}
            elif name == "error":
                payload = payload or {}
                message = payload.get("message") or "The model provider is unavailable; retry shortly."
                yield _sse(
                    openai_error_body(message, "server_error", payload.get("code") or "provider_unavailable")
                )
                yield _sse("[DONE]")
                return
    except genapi.GenAPIError as exc:
        error = provider_error(exc)
        yield _sse(openai_error_body(str(error.detail), error.type, error.code_name))
        yield _sse("[DONE]")
        return
    yield _sse(chunk({}, "stop", citations=citations))
    if include_usage:
        final = chunk({}, None, usage=openai_usage(usage))
        final["choices"] = []
        yield _sse(final)
    yield _sse("[DONE]")
