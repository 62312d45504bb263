"""REST endpoints: `POST /api/search`, `POST /api/ask` (JSON or server-sent events) and
`GET /api/documents/{id}/chunks/{chunk_id}` (a cited passage with its neighbours).

Over 400 lines because each endpoint keeps its Input/Output serializers nested beside its view (the
project's convention) and search and ask share the passage, timings and filter fields defined here.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_api_key, scope_required
from accounts.throttling import ApiKeyRateThrottle
from genapi import GenAPIError
from ingestion.selectors import collection_ids_get_readable_or_403
from search.answer import APIS
from search.selectors import MAX_PK, MODES, passage_with_neighbours
from search.services import answer_compose, answer_stream, error_code, error_message, passages_search
from search.types import SearchFilters

MAX_QUERY_CHARS = 2000
MAX_QUESTION_CHARS = 4000


class Forbidden(exceptions.APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "You may not read this collection."
    default_code = "forbidden"


class ProviderError(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The model provider failed."
    default_code = "provider_error"


def sse_event(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class EventStreamRenderer(BaseRenderer):
    """Lets `Accept: text/event-stream` through content negotiation. Streams are StreamingHttpResponses
    and bypass it; only errors raised before the stream starts are rendered here, as one `error` event."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        if isinstance(data, dict) and "error" in data:
            return sse_event("error", data["error"])
        return sse_event("message", data)


def _json_value_check(value: Any, depth: int = 0) -> None:
    """PostgreSQL's jsonb refuses NUL characters and lone surrogates: reject them as invalid input."""
    if depth > 20:
        raise serializers.ValidationError("Metadata is nested too deeply.")
    if isinstance(value, str):
        if "\x00" in value or any(unicodedata.category(ch) == "Cs" for ch in value):
            raise serializers.ValidationError("Metadata strings may not contain NUL or surrogate characters.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _json_value_check(key, depth + 1)
            _json_value_check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_value_check(item, depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**100:
        raise serializers.ValidationError("Metadata number out of range.")


@extend_schema_serializer(component_name="SearchFilters")
class FiltersSerializer(serializers.Serializer):
    document_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_PK), max_length=1000, required=False,
        help_text="Only passages of these documents.",
    )  # fmt: skip
    metadata = serializers.DictField(
        child=serializers.JSONField(), required=False,
        help_text='Documents whose metadata contains these key/values, e.g. {"team": "billing"} (jsonb @>).',
    )  # fmt: skip
    mime_types = serializers.ListField(
        child=serializers.CharField(max_length=200), max_length=50, required=False,
        help_text='Only documents of these MIME types, e.g. ["application/pdf"].',
    )  # fmt: skip
    mime_type = serializers.CharField(max_length=200, required=False, help_text="One MIME type.")
    created_after = serializers.DateTimeField(
        required=False, help_text="Documents added at or after this time."
    )
    created_before = serializers.DateTimeField(required=False, help_text="Documents added before this time.")

    def validate_metadata(self, value):
        _json_value_check(value)
        return value

    def validate(self, attrs):
        mime_types = list(attrs.pop("mime_types", None) or [])
        if attrs.get("mime_type"):
            mime_types.append(attrs.pop("mime_type"))
        attrs.pop("mime_type", None)
        if mime_types:
            attrs["mime_types"] = mime_types
        return attrs


@extend_schema_serializer(component_name="Passage")
class PassageSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    collection_id = serializers.IntegerField()
    title = serializers.CharField()
    text = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    char_start = serializers.IntegerField(help_text="Start of the passage in the document's text.")
    char_end = serializers.IntegerField()
    ordinal = serializers.IntegerField(help_text="Position of the passage in its document.")
    heading_path = serializers.CharField(allow_blank=True)
    metadata = serializers.DictField(child=serializers.JSONField(), help_text="The document's metadata.")
    mime_type = serializers.CharField(allow_blank=True)
    score = serializers.FloatField(help_text="Rerank relevance when reranked, else the fused (RRF) score.")
    fused_score = serializers.FloatField()
    vector_rank = serializers.IntegerField(allow_null=True)
    fulltext_rank = serializers.IntegerField(allow_null=True)
    rerank_score = serializers.FloatField(allow_null=True)
    highlights = serializers.ListField(
        child=serializers.CharField(), help_text="HTML-escaped fragments, query words in <mark>…</mark>."
    )
    url = serializers.CharField(help_text="Where a reader sees the passage in its document.")


@extend_schema_serializer(component_name="NumberedPassage")
class NumberedPassageSerializer(PassageSerializer):
    n = serializers.IntegerField(help_text="The passage's number: answers cite it as [n].")


@extend_schema_serializer(component_name="Citation")
class CitationSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    document_id = serializers.IntegerField()
    chunk_id = serializers.IntegerField()
    title = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    char_start = serializers.IntegerField()
    char_end = serializers.IntegerField()
    snippet = serializers.CharField()
    url = serializers.CharField()
    supported = serializers.BooleanField(
        allow_null=True,
        help_text="False when a sentence citing this passage is not supported by it (the citation check); "
        "null when the check is off.",
    )
    score = serializers.FloatField(
        allow_null=True, help_text="The lowest support score (0-1) of the sentences citing this passage."
    )


@extend_schema_serializer(component_name="CitationCheck")
class CitationCheckSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="The cited passage's number.")
    marker = serializers.IntegerField(help_text="Which marker of the answer (0-based, in order).")
    claim = serializers.CharField(help_text="The words the marker cites for (its clause or sentence).")
    score = serializers.FloatField(help_text="Support score, 0-1 (1.0 or 0.0 when the model judged).")
    supported = serializers.BooleanField()
    method = serializers.ChoiceField(choices=["lexical", "model"])
    dropped = serializers.BooleanField(help_text="Removed from the answer (RAG_CITATION_DROP_UNSUPPORTED).")


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    class ErrorBodySerializer(serializers.Serializer):
        code = serializers.CharField()
        message = serializers.CharField()
        details = serializers.JSONField(required=False)

    error = ErrorBodySerializer()


@extend_schema_serializer(component_name="AskTurn")
class TurnSerializer(serializers.Serializer):
    question = serializers.CharField(max_length=MAX_QUESTION_CHARS)
    answer = serializers.CharField(max_length=20000, allow_blank=True, required=False, default="")


def _errors(*codes: int) -> dict:
    descriptions = {
        400: "Invalid request.",
        401: "Not authenticated, or an invalid, expired or revoked API key.",
        403: "Missing scope, or a collection the caller may not read (code `forbidden`).",
        404: "Not found, or not readable by the caller.",
        429: "Too many requests for this key.",
        502: "The model provider failed.",
    }
    return {c: OpenApiResponse(ErrorSerializer, description=descriptions[c]) for c in codes}


def _collection_ids(request, slugs: list[str] | None) -> list[int]:
    try:
        return collection_ids_get_readable_or_403(slugs, request.user, request_api_key(request))
    except PermissionDenied as exc:
        raise Forbidden(str(exc) or None) from exc


def timings_field() -> serializers.DictField:
    """Milliseconds per stage, so a slow request explains itself."""
    return serializers.DictField(
        child=serializers.FloatField(),
        help_text="Milliseconds per stage: `embed` (query embedding, overlapping `fulltext`), `vector`, "
        "`fulltext`, `fuse`, `load`, `rerank`, `highlight` (ask adds `rewrite` and `answer`), and `total`. "
        "Without rerank the returned passages and their highlights are read at once: `load` covers both.",
    )


def rerank_tokens_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        help_text="Rerank tokens this request was billed (0 when not reranked or answered from the cache)."
    )


def collections_field() -> serializers.ListField:
    """The `collections` request field shared by search and ask."""
    return serializers.ListField(
        child=serializers.SlugField(max_length=100),
        max_length=100,
        required=False,
        help_text="Collection slugs; default: every collection the caller may read.",
    )


class SearchApi(APIView):
    permission_classes = [scope_required("search")]
    throttle_classes = [ApiKeyRateThrottle]
    throttle_scope = "search"

    @extend_schema_serializer(component_name="SearchRequest")
    class InputSerializer(serializers.Serializer):
        query = serializers.CharField(max_length=MAX_QUERY_CHARS)
        collections = collections_field()
        filters = FiltersSerializer(required=False)
        mode = serializers.ChoiceField(choices=MODES, default="hybrid")
        top_k = serializers.IntegerField(min_value=1, max_value=100, required=False)
        rerank = serializers.BooleanField(default=True)

    @extend_schema_serializer(component_name="SearchResponse")
    class OutputSerializer(serializers.Serializer):
        query_id = serializers.IntegerField(
            allow_null=True, help_text="This search's record; send feedback on it to /api/feedback."
        )
        results = PassageSerializer(many=True)
        reranked = serializers.BooleanField(help_text="False when reranking was off or the reranker failed.")
        mode = serializers.CharField()
        took_ms = serializers.IntegerField()
        timings = timings_field()
        rerank_tokens = rerank_tokens_field()

    @extend_schema(
        operation_id="search",
        summary="Find passages",
        description="Hybrid (vector + full-text, fused by reciprocal rank), vector or full-text search over "
        "the collections the caller may read, reranked. Filters apply inside the search.",
        request=InputSerializer,
        responses={200: OutputSerializer, **_errors(400, 401, 403, 429)},
        examples=[
            OpenApiExample("search", value={"query": "rotate signing keys", "top_k": 5}, request_only=True)
        ],
    )
    def post(self, request):
        data = self._validated(request)
        collection_ids = _collection_ids(request, data.get("collections"))
        try:
            result = passages_search(
                data["query"],
                collection_ids=collection_ids,
                filters=SearchFilters.from_value(data.get("filters")),
                mode=data["mode"],
                top_k=data.get("top_k") or settings.RAG_TOP_K,
                rerank=data["rerank"],
                user=request.user,
                api_key=request_api_key(request),
            )
        except GenAPIError as exc:  # vector mode with the embeddings endpoint down
            raise ProviderError(error_message(exc), code=error_code(exc)) from exc
        body = {
            "query_id": result.query_log_id,
            "results": [p.as_dict() for p in result.passages],
            "reranked": result.reranked,
            "mode": result.mode,
            "took_ms": result.took_ms,
            "timings": result.timings,
            "rerank_tokens": result.rerank_tokens,
        }
        # Built in the OutputSerializer's shape (the schema documents it; tests/search/test_api.py checks
        # the two agree): rendering 8-100 passages field by field through it cost more than the search's
        # fuse and load stages together.
        return Response(body)

    def _validated(self, request) -> dict:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class AskApi(APIView):
    permission_classes = [scope_required("ask")]
    throttle_classes = [ApiKeyRateThrottle]
    throttle_scope = "ask"
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema_serializer(component_name="AskRequest")
    class InputSerializer(serializers.Serializer):
        question = serializers.CharField(max_length=MAX_QUESTION_CHARS)
        collections = collections_field()
        filters = FiltersSerializer(required=False)
        top_k = serializers.IntegerField(min_value=1, max_value=50, required=False)
        api = serializers.ChoiceField(
            choices=APIS, required=False, help_text="Provider API; default from the RAG_ANSWER_API setting."
        )
        history = TurnSerializer(
            many=True, max_length=20, required=False,
            help_text="Earlier turns, oldest first. The search also uses the last question's key terms.",
        )  # fmt: skip
        stream = serializers.BooleanField(
            default=False, help_text="Answer as server-sent events (also with `Accept: text/event-stream`)."
        )
        conversation_id = serializers.IntegerField(
            min_value=1, max_value=MAX_PK, required=False,
            help_text="Continue this conversation of yours (see /api/conversations): its earlier turns are "
            "the history and this turn is stored. Not together with `history`.",
        )  # fmt: skip

        def validate(self, attrs):
            if attrs.get("conversation_id") and attrs.get("history"):
                raise serializers.ValidationError(
                    {"history": "A conversation brings its own history; send one or the other."}
                )
            return attrs

    @extend_schema_serializer(component_name="AskResponse")
    class OutputSerializer(serializers.Serializer):
        class UsageSerializer(serializers.Serializer):
            input_tokens = serializers.IntegerField()
            output_tokens = serializers.IntegerField()

        query_id = serializers.IntegerField(
            allow_null=True, help_text="This answer's record; send feedback on it to /api/feedback."
        )
        turn_id = serializers.IntegerField(
            required=False, help_text="With `conversation_id`: the stored turn of the conversation."
        )
        answer = serializers.CharField(help_text="The answer; [n] cites passages[n-1].")
        citations = CitationSerializer(many=True, help_text="Only the passages the answer cites.")
        citation_checks = CitationCheckSerializer(
            many=True, help_text="Each marker checked against the passage it cites."
        )
        passages = NumberedPassageSerializer(
            many=True, help_text="The numbered passages the model was given."
        )
        model = serializers.CharField(allow_blank=True)
        api = serializers.CharField()
        usage = UsageSerializer()
        reranked = serializers.BooleanField()
        found = serializers.BooleanField(help_text="False when the knowledge base held nothing relevant.")
        search_query = serializers.CharField(
            allow_blank=True, help_text="What was searched: a follow-up is rewritten into a standalone query."
        )
        rewrite_method = serializers.ChoiceField(
            choices=["none", "terms", "model"],
            help_text="How `search_query` was made: `none` (asked as is), `terms` (the previous question's "
            "key terms added) or `model` (rewritten by the chat model).",
        )
        took_ms = serializers.IntegerField()
        timings = timings_field()
        rerank_tokens = rerank_tokens_field()

    @extend_schema(
        operation_id="ask",
        summary="Answer a question with citations",
        description="Retrieves passages like /api/search and answers from them only, citing [n]. With "
        '`"stream": true` or `Accept: text/event-stream` the answer arrives as server-sent events: '
        "`sources`, `delta` ({text}), `citations` ({citations, checks}: each marker checked against its "
        "passage), `usage`, `done` (the checked `answer`, with `query_id`), or `error` ({code, message}) "
        "if something fails after the stream started. With `conversation_id` a `turn` event "
        "({id, conversation_id}) comes first.",
        request=InputSerializer,
        responses={
            (200, "application/json"): OutputSerializer,
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description="Server-sent events."),
            **_errors(400, 401, 403, 429, 502),
        },
        examples=[
            OpenApiExample("ask", value={"question": "How do I rotate signing keys?"}, request_only=True),
        ],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        conversation = None
        if data.get("conversation_id"):
            from search.conversations import conversation_get_or_404

            conversation = conversation_get_or_404(data["conversation_id"], request.user)
        return ask_respond(request, data, conversation, self.OutputSerializer)


def ask_respond(request, data: dict, conversation, output_serializer) -> Response | StreamingHttpResponse:
    """Answer a validated ask request, one-off or as the next turn of `conversation`, as JSON or SSE."""
    from search.conversations import conversation_answer, conversation_answer_stream

    slugs = data.get("collections") or (conversation.collections if conversation else None) or None
    collection_ids = _collection_ids(request, slugs)
    kwargs = dict(
        collection_ids=collection_ids,
        filters=SearchFilters.from_value(data.get("filters")),
        top_k=data.get("top_k"),
        api=data.get("api"),
        user=request.user,
        api_key=request_api_key(request),
    )
    if conversation is None:
        kwargs["history"] = [dict(turn) for turn in data.get("history") or []] or None
    accept = request.headers.get("Accept", "")
    if data.get("stream") or "text/event-stream" in accept:
        if conversation is None:
            events = answer_stream(data["question"], **kwargs)
        else:
            events = conversation_answer_stream(conversation, data["question"], **kwargs)
        response = StreamingHttpResponse(
            (sse_event(name, payload) for name, payload in events), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event through at once
        return response
    turn = None
    try:
        if conversation is None:
            answer = answer_compose(data["question"], **kwargs)
        else:
            turn, answer = conversation_answer(conversation, data["question"], **kwargs)
    except GenAPIError as exc:
        raise ProviderError(error_message(exc), code=error_code(exc)) from exc
    body = answer.as_dict()
    body["passages"] = [{"n": n, **p} for n, p in enumerate(body["passages"], start=1)]
    if turn is not None:
        body["turn_id"] = turn.pk
    return Response(output_serializer(body).data)


class PassageApi(APIView):
    permission_classes = [scope_required("search")]
    throttle_classes = [ApiKeyRateThrottle]
    throttle_scope = "search"

    class FilterSerializer(serializers.Serializer):
        """The query parameters."""

        before = serializers.IntegerField(
            min_value=0, max_value=10, default=2, help_text="Passages before (0-10, default 2)."
        )
        after = serializers.IntegerField(
            min_value=0, max_value=10, default=2, help_text="Passages after (0-10, default 2)."
        )

    @extend_schema_serializer(component_name="PassageWithNeighbours")
    class OutputSerializer(serializers.Serializer):
        passage = PassageSerializer()
        before = PassageSerializer(many=True, help_text="Preceding passages of the document, in order.")
        after = PassageSerializer(many=True, help_text="Following passages of the document, in order.")

    @extend_schema(
        operation_id="document_chunk_retrieve",
        summary="A passage with its neighbours",
        description="The passage a citation points at, with the passages around it. 404 when it does not "
        "exist or the caller may not read it.",
        parameters=[FilterSerializer],
        responses={200: OutputSerializer, **_errors(400, 401, 403, 404, 429)},
    )
    def get(self, request, document_id: int, chunk_id: int):
        # An empty value (`?before=`) means the default, as a missing one does.
        params = {name: value for name, value in request.query_params.items() if value != ""}
        filters = self.FilterSerializer(data=params)
        filters.is_valid(raise_exception=True)
        before, after = filters.validated_data["before"], filters.validated_data["after"]
        readable = _collection_ids(request, None)
        context = passage_with_neighbours(chunk_id, readable, before, after, document_id=document_id)
        if context is None:
            raise exceptions.NotFound("No such passage.")
        return Response(self.OutputSerializer(context.as_dict()).data)
