"""REST endpoints for conversations (`/api/conversations`) and feedback (`/api/feedback`).

A conversation belongs to the user who started it (through the page or any of their API keys) and nobody
else sees it; its answers are still limited to what the calling key may read at the time of each turn.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import request_api_key, request_has_scope, scope_required
from accounts.throttling import ApiKeyRateThrottle
from ingestion.selectors import chunk_get_readable_or_404
from rag_project.pagination import paginated_response
from search.apis import (
    AskApi,
    EventStreamRenderer,
    _collection_ids,
    _errors,
    ask_respond,
    collections_field,
)
from search.conversations import conversation_create, conversation_get_or_404, conversations_of
from search.feedback import feedback_give, feedback_of, query_log_of_or_none
from search.models import Feedback
from search.selectors import MAX_PK


@extend_schema_serializer(component_name="ConversationTurn")
class TurnOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    question = serializers.CharField()
    search_query = serializers.CharField(help_text="The standalone query searched for this question.")
    rewrite_method = serializers.CharField(help_text="`none`, `terms` or `model` (see /api/ask).")
    answer = serializers.CharField()
    citations = serializers.ListField(child=serializers.DictField(), help_text="As /api/ask's citations.")
    found = serializers.BooleanField()
    error = serializers.CharField(help_text="Why the answer failed; such turns are not used as history.")
    query_id = serializers.IntegerField(source="query_log_id", allow_null=True)
    created_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="Conversation")
class ConversationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    collections = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="ConversationDetail")
class ConversationDetailSerializer(ConversationOutputSerializer):
    turns = TurnOutputSerializer(many=True, source="turns.all")


class ConversationListApi(APIView):
    permission_classes = [scope_required("ask")]
    throttle_classes = [ApiKeyRateThrottle]
    throttle_scope = "ask"

    @extend_schema_serializer(component_name="ConversationCreate")
    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        collections = collections_field()

    @extend_schema(
        operation_id="conversations_list",
        summary="Your conversations",
        description="The caller's conversations, most recently continued first.",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: ConversationOutputSerializer(many=True), **_errors(401, 403)},
    )
    def get(self, request):
        return paginated_response(request, self, conversations_of(request.user), ConversationOutputSerializer)

    @extend_schema(
        operation_id="conversations_create",
        summary="Start a conversation",
        description="Then ask in it with `POST /api/conversations/{id}/ask` (or `/api/ask` with "
        "`conversation_id`). `collections` must be readable by the caller (403 otherwise).",
        request=InputSerializer,
        responses={201: ConversationOutputSerializer, **_errors(400, 401, 403)},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        slugs = serializer.validated_data.get("collections") or []
        if slugs:
            _collection_ids(request, slugs)  # 403 now rather than at the first question
        conversation = conversation_create(
            request.user, title=serializer.validated_data["title"], collections=slugs
        )
        return Response(ConversationOutputSerializer(conversation).data, status=status.HTTP_201_CREATED)


class ConversationDetailApi(APIView):
    permission_classes = [scope_required("ask")]
    throttle_classes = [ApiKeyRateThrottle]
    throttle_scope = "ask"

    @extend_schema(
        operation_id="conversations_retrieve",
        summary="A conversation with its turns",
        responses={200: ConversationDetailSerializer, **_errors(401, 403, 404)},
    )
    def get(self, request, conversation_id: int):
        conversation = conversation_get_or_404(conversation_id, request.user)
        return Response(ConversationDetailSerializer(conversation).data)

    @extend_schema(
        operation_id="conversations_destroy",
        summary="Delete a conversation and its turns",
        responses={204: None, **_errors(401, 403, 404)},
    )
    def delete(self, request, conversation_id: int):
        conversation_get_or_404(conversation_id, request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationAskApi(APIView):
    permission_classes = [scope_required("ask")]
    throttle_classes = [ApiKeyRateThrottle]
    throttle_scope = "ask"
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    @extend_schema_serializer(component_name="ConversationAskRequest")
    class InputSerializer(AskApi.InputSerializer):
        """/api/ask's request without what the conversation brings itself."""

        history = None
        conversation_id = None

    @extend_schema(
        operation_id="conversations_ask",
        summary="Continue a conversation",
        description="Asks the next question of the conversation, as /api/ask does, with the earlier turns "
        "as history: a follow-up is rewritten into a standalone query before retrieval (`search_query`, "
        "`rewrite_method`), and the turn is stored. Streams like /api/ask, after a `turn` event.",
        request=InputSerializer,
        responses={
            (200, "application/json"): AskApi.OutputSerializer,
            (200, "text/event-stream"): OpenApiResponse(OpenApiTypes.STR, description="Server-sent events."),
            **_errors(400, 401, 403, 404, 429, 502),
        },
    )
    def post(self, request, conversation_id: int):
        conversation = conversation_get_or_404(conversation_id, request.user)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return ask_respond(request, serializer.validated_data, conversation, AskApi.OutputSerializer)


class _AskOrSearch(BasePermission):
    message = "This API key lacks the 'search' and 'ask' scopes."

    def has_permission(self, request, view):
        return request_has_scope(request, "ask") or request_has_scope(request, "search")


@extend_schema_serializer(component_name="Feedback")
class FeedbackOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    query_id = serializers.IntegerField(source="query_log_id")
    query = serializers.CharField(source="query_log.query")
    rating = serializers.SerializerMethodField()
    comment = serializers.CharField()
    expected_chunk_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_rating(self, obj: Feedback) -> str:
        return "up" if obj.rating > 0 else "down"


class FeedbackApi(APIView):
    permission_classes = [_AskOrSearch]
    throttle_classes = [ApiKeyRateThrottle]
    throttle_scope = "search"

    @extend_schema_serializer(component_name="FeedbackRequest")
    class InputSerializer(serializers.Serializer):
        query_id = serializers.IntegerField(
            min_value=1, max_value=MAX_PK, help_text="`query_id` of your answer or search."
        )
        rating = serializers.ChoiceField(choices=["up", "down"])
        comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
        expected_chunk_id = serializers.IntegerField(
            min_value=1, max_value=MAX_PK, required=False, allow_null=True,
            help_text="The passage you expected (`chunk_id`); it must be one you may read.",
        )  # fmt: skip

    @extend_schema(
        operation_id="feedback_list",
        summary="Your feedback",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: FeedbackOutputSerializer(many=True), **_errors(401, 403)},
    )
    def get(self, request):
        return paginated_response(request, self, feedback_of(request.user), FeedbackOutputSerializer)

    @extend_schema(
        operation_id="feedback_create",
        summary="Thumbs up or down on an answer or a search",
        description="One opinion per person per answer: sending it again changes it (200 instead of 201). "
        "404 when the query is not yours. `manage.py evaluate --from-feedback` scores retrieval on it.",
        request=InputSerializer,
        responses={
            201: FeedbackOutputSerializer,
            200: FeedbackOutputSerializer,
            **_errors(400, 401, 403, 404, 429),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        query_log = query_log_of_or_none(data["query_id"], request.user)
        if query_log is None:
            raise exceptions.NotFound("No such answer or search of yours.")
        expected = None
        if data.get("expected_chunk_id"):
            try:
                expected = chunk_get_readable_or_404(
                    data["expected_chunk_id"], request.user, request_api_key(request)
                )
            except Http404 as exc:
                raise exceptions.ValidationError(
                    {"expected_chunk_id": "No such passage, or not one you may read."}
                ) from exc
        feedback, created = feedback_give(
            query_log,
            request.user,
            rating=1 if data["rating"] == "up" else -1,
            comment=data["comment"],
            expected_chunk=expected,
        )
        return Response(
            FeedbackOutputSerializer(feedback).data, status=status.HTTP_201_CREATED if created else 200
        )
