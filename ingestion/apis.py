"""REST API for collections and documents. Reads go through ingestion.selectors (readable collections only);
writes need `request_can_ingest` and a collection from `collections_writable` (reading is not writing).

Scopes per endpoint: passage text (chunk list) needs `search`; document status and metadata (list,
detail) `search` or `ingest`; writes `ingest`; creating a collection `admin` and staff.

Over 400 lines because each endpoint keeps its Input/Output/Filter serializers nested beside its view (the
project's convention); the write checks and input bounds above are shared by all of them.
"""

from __future__ import annotations

import json
import re

from django.core.validators import URLValidator
from django.db import IntegrityError
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.validators import ProhibitSurrogateCharactersValidator
from rest_framework.views import APIView

from accounts.permissions import SCOPES, request_api_key, request_can_ingest, request_has_scope
from ingestion.models import Document, IngestJob
from ingestion.selectors import (
    chunk_list,
    collection_get_readable_or_403,
    collection_get_writable,
    collection_is_writable,
    collection_list,
    document_get_readable_or_404,
    document_list,
    request_readable_collections,
)
from ingestion.services.collections import collection_create
from ingestion.services.documents import (
    document_create,
    document_delete,
    document_reingest,
    document_update,
)
from ingestion.services.jobs import ingest_job_bulk_create
from rag_project.json_input import BoundedJSONParser, json_loads_bounded, json_value_problem
from rag_project.pagination import paginated_response

BULK_MAX_DOCUMENTS = 1000
# Metadata is stored with each document and returned with every passage: bounded in size as well as depth.
MAX_METADATA_BYTES = 16 * 1024
# `source_url` is shown as a link: only web addresses (never javascript:, file:, data:, ftp:).
URL_SCHEMES = ["http", "https"]


def _require_ingest(request) -> None:
    if not request_can_ingest(request):
        raise exceptions.PermissionDenied(
            "Adding or changing documents needs the 'ingest' scope or a staff account."
        )


def _require_scope(request, *scopes: str) -> None:
    """One of `scopes` (reading passage text needs `search`; document status also `ingest`, to poll)."""
    if not any(request_has_scope(request, scope) for scope in scopes):
        names = " or ".join(f"'{scope}'" for scope in scopes)
        raise exceptions.PermissionDenied(f"This API key lacks the {names} scope.")


def _writable_collection(request, slug: str):
    _require_ingest(request)
    collection = collection_get_writable(slug, request.user, request_api_key(request))
    if collection is None:
        # The same answer whether the collection is missing, unreadable or only readable: reading is not
        # writing, and existence is not leaked.
        raise exceptions.PermissionDenied(f"You cannot add documents to the collection '{slug}'.")
    return collection


def _writable_document(request, document_id: int) -> Document:
    """The document, if the caller may change it: 404 when unreadable, 403 when readable only."""
    document = _readable_document(request, document_id)
    _require_ingest(request)
    if not collection_is_writable(document.collection_id, request.user, request_api_key(request)):
        raise exceptions.PermissionDenied(
            f"You may read but not change documents of the collection '{document.collection.slug}'."
        )
    return document


_SURROGATE = re.compile(r"[\ud800-\udfff]")


class _SurrogatesRefused:
    """DRF's check that a string holds no surrogate code point (same message and code), as one regular
    expression search: DRF's own walks the string a character at a time in Python, which was most of the
    bulk API's validation time for 1,000 documents (BENCHMARKS.md, issue 15)."""

    message = ProhibitSurrogateCharactersValidator.message
    code = ProhibitSurrogateCharactersValidator.code

    def __call__(self, value):
        found = _SURROGATE.search(str(value))
        if found:
            raise serializers.ValidationError(
                self.message.format(code_point=ord(found.group())), code=self.code
            )


class TextField(serializers.CharField):
    """A CharField whose surrogate check costs one regular-expression search (for long texts)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators = [
            _SurrogatesRefused() if isinstance(v, ProhibitSurrogateCharactersValidator) else v
            for v in self.validators
        ]


def metadata_check(value):
    """Metadata as stored: a JSON object (multipart sends it as a JSON string), bounded in depth and size,
    with nothing PostgreSQL's jsonb refuses (NUL, unpaired surrogates, non-finite numbers)."""
    if isinstance(value, str):
        try:
            value = json_loads_bounded(value) if value.strip() else {}
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
    if not isinstance(value, dict):
        raise serializers.ValidationError("Metadata must be a JSON object.")
    problem = json_value_problem(value)
    if problem:
        where, why = problem
        raise serializers.ValidationError(f"{where}: {why}" if where else why)
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise serializers.ValidationError(
            f"Metadata is {size} bytes; at most {MAX_METADATA_BYTES} are accepted."
        )
    return value


def source_url_field() -> serializers.URLField:
    return serializers.URLField(
        max_length=2000, required=False, allow_blank=True, default="", validators=[URLValidator(URL_SCHEMES)]
    )


def ingest_job_url(request, job: IngestJob) -> str:
    return request.build_absolute_uri(reverse("api-ingest-job-detail", args=[job.pk]))


def _readable_document(request, document_id: int) -> Document:
    return document_get_readable_or_404(document_id, request.user, request_api_key(request))


class DocumentOutputSerializer(serializers.ModelSerializer):
    collection = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    has_file = serializers.SerializerMethodField()
    chunk_count = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = [
            "id",
            "collection",
            "title",
            "source_url",
            "mime_type",
            "size_bytes",
            "content_sha256",
            "metadata",
            "status",
            "error",
            "chunks_total",
            "chunks_embedded",
            "chunk_count",
            "embedding_tokens",
            "job",
            "has_file",
            "created_at",
            "updated_at",
        ]

    def get_has_file(self, obj) -> bool:
        return bool(obj.file)

    def get_chunk_count(self, obj) -> int:
        count = getattr(obj, "chunk_count", None)
        return obj.chunks_total if count is None else count


class MeApi(APIView):
    """`GET /api/me`: who the caller is, what the key may do and which collections it reads."""

    class OutputSerializer(serializers.Serializer):
        class CollectionSerializer(serializers.Serializer):
            slug = serializers.CharField()
            name = serializers.CharField()

        username = serializers.CharField()
        api_key = serializers.CharField(
            allow_null=True, help_text="The key's public prefix, if one was used."
        )
        scopes = serializers.ListField(child=serializers.CharField())
        collections = CollectionSerializer(many=True)

    @extend_schema(responses=OutputSerializer, summary="The caller, its scopes and readable collections")
    def get(self, request):
        api_key = request_api_key(request)
        data = {
            "username": request.user.get_username(),
            "api_key": api_key.prefix if api_key else None,
            "scopes": [scope for scope in SCOPES if request_has_scope(request, scope)],
            "collections": request_readable_collections(request).order_by("slug"),
        }
        return Response(self.OutputSerializer(data).data)


class CollectionListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(max_length=100)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        is_public = serializers.BooleanField(required=False, default=False)

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        slug = serializers.SlugField()
        description = serializers.CharField()
        is_public = serializers.BooleanField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        summary="Collections the caller may read",
        responses=OutputSerializer(many=True),
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
    )
    def get(self, request):
        collections = collection_list(request.user, request_api_key(request))
        return paginated_response(request, self, collections, self.OutputSerializer)

    @extend_schema(
        summary="Create a collection (staff)", request=InputSerializer, responses={201: OutputSerializer}
    )
    def post(self, request):
        if not (request.user.is_staff and request_has_scope(request, "admin")):
            raise exceptions.PermissionDenied("Only staff can create collections.")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            collection = collection_create(**data.validated_data, created_by=request.user)
        except IntegrityError as exc:
            raise exceptions.ValidationError({"slug": ["A collection with this slug exists."]}) from exc
        return Response(self.OutputSerializer(collection).data, status=status.HTTP_201_CREATED)


class DocumentListCreateApi(APIView):
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        collection = serializers.SlugField()
        title = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
        file = serializers.FileField(required=False)
        text = TextField(required=False, allow_blank=True, trim_whitespace=False)
        metadata = serializers.JSONField(required=False, default=dict)
        source_url = source_url_field()

        def validate_metadata(self, value):
            return metadata_check(value)

        def validate(self, attrs):
            if ("file" in attrs) == ("text" in attrs):
                raise serializers.ValidationError("Send either a file (multipart) or text (JSON).")
            return attrs

    class FilterSerializer(serializers.Serializer):
        # Any text: an unknown or malformed slug is the same 403 as an unreadable one.
        collection = serializers.CharField(required=False, allow_blank=True, help_text="Collection slug")
        status = serializers.ChoiceField(
            choices=Document.Status.values,
            required=False,
            allow_blank=True,
            error_messages={"invalid_choice": f"One of {', '.join(Document.Status.values)}."},
        )
        job = serializers.IntegerField(required=False, min_value=1, help_text="Ingest job id")

    @extend_schema(
        summary="Documents the caller may read",
        parameters=[FilterSerializer, OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=DocumentOutputSerializer(many=True),
    )
    def get(self, request):
        _require_scope(request, "search", "ingest")  # status and metadata, no passage text
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        slug = filters.validated_data.get("collection")
        api_key = request_api_key(request)
        # Naming a collection the caller cannot read is a 403, never an empty list that hints at it.
        collection = collection_get_readable_or_403(slug, request.user, api_key) if slug else None
        documents = document_list(
            request.user,
            api_key,
            collection=collection,
            status=filters.validated_data.get("status") or None,
            job_id=filters.validated_data.get("job"),
        )
        return paginated_response(request, self, documents, DocumentOutputSerializer)

    @extend_schema(
        summary="Add a document (multipart file or JSON text)",
        description="201 with the new document, or 200 with the existing one when the same content is "
        "already "
        "in the collection. Ingestion runs in the background: poll the document's status.",
        request={"multipart/form-data": InputSerializer, "application/json": InputSerializer},
        responses={201: DocumentOutputSerializer, 200: DocumentOutputSerializer},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        collection = _writable_collection(request, values["collection"])
        upload = values.get("file")
        document, created = document_create(
            collection=collection,
            title=values.get("title") or "",
            file=upload,
            filename=getattr(upload, "name", None),
            text=values.get("text"),
            metadata=values.get("metadata") or {},
            source_url=values.get("source_url") or "",
            created_by=request.user,
        )
        return Response(
            DocumentOutputSerializer(document).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class DocumentBulkCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        class ItemSerializer(serializers.Serializer):
            title = TextField(max_length=500, required=False, allow_blank=True, default="")
            text = TextField(allow_blank=True, trim_whitespace=False)
            metadata = serializers.DictField(required=False, default=dict)
            source_url = source_url_field()

            def validate_metadata(self, value):
                return metadata_check(value)

        collection = serializers.SlugField()
        documents = ItemSerializer(many=True, allow_empty=False, max_length=BULK_MAX_DOCUMENTS)

    class OutputSerializer(serializers.Serializer):
        documents = inline_serializer(
            "BulkDocumentStatus",
            fields={"id": serializers.IntegerField(), "status": serializers.CharField()},
            many=True,
        )
        job = inline_serializer(
            "BulkIngestJob",
            fields={
                "id": serializers.IntegerField(),
                "url": serializers.URLField(help_text="Its progress: `GET`; cancel: `POST {url}/cancel`."),
            },
            help_text="The ingest job following these documents (also the `Location` header).",
        )

    @extend_schema(
        summary=f"Add up to {BULK_MAX_DOCUMENTS} text documents at once",
        description="202: the documents are stored and queued as one ingest job (`job`: follow it at "
        "`/api/ingest-jobs/{id}`, cancel it with `POST /api/ingest-jobs/{id}/cancel`); duplicates return "
        "the existing document (a cancelled one is queued again).",
        request=InputSerializer,
        responses={202: OutputSerializer},
    )
    def post(self, request):
        _require_ingest(request)
        documents = request.data.get("documents") if isinstance(request.data, dict) else None
        if isinstance(documents, list) and len(documents) > BULK_MAX_DOCUMENTS:
            raise exceptions.ValidationError(
                {"documents": [f"At most {BULK_MAX_DOCUMENTS} documents per call; got {len(documents)}."]}
            )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        collection = _writable_collection(request, data.validated_data["collection"])
        job, stored = ingest_job_bulk_create(
            collection=collection, documents=data.validated_data["documents"], created_by=request.user
        )
        url = ingest_job_url(request, job)
        body = {
            "documents": [{"id": d.pk, "status": d.status} for d in stored],
            "job": {"id": job.pk, "url": url},
        }
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


class DocumentDetailApi(APIView):
    parser_classes = [BoundedJSONParser, MultiPartParser, FormParser]

    class UpdateSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=500, required=False, allow_blank=True)
        file = serializers.FileField(required=False)
        text = TextField(required=False, allow_blank=True, trim_whitespace=False)
        metadata = serializers.JSONField(required=False)

        validate_metadata = DocumentListCreateApi.InputSerializer.validate_metadata
        validate = DocumentListCreateApi.InputSerializer.validate

    @extend_schema(
        summary="A document: status, progress, error, chunk count", responses=DocumentOutputSerializer
    )
    def get(self, request, document_id: int):
        _require_scope(request, "search", "ingest")  # status and metadata, no passage text
        return Response(DocumentOutputSerializer(_readable_document(request, document_id)).data)

    @extend_schema(
        summary="Replace a document's content (multipart file or JSON text)",
        description="The document is queued again; passages whose text did not change keep their vectors, "
        "so only new or changed passages are embedded. If another document of the collection already has "
        "exactly this content, that document is returned unchanged.",
        request={"multipart/form-data": UpdateSerializer, "application/json": UpdateSerializer},
        responses={202: DocumentOutputSerializer},
    )
    def put(self, request, document_id: int):
        document = _writable_document(request, document_id)
        data = self.UpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        upload = values.get("file")
        document = document_update(
            document,
            file=upload,
            filename=getattr(upload, "name", None),
            text=values.get("text"),
            title=values.get("title") or None,
            metadata=values.get("metadata"),
            updated_by=request.user,
        )
        return Response(DocumentOutputSerializer(document).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Delete a document with its chunks and vectors", responses={204: None})
    def delete(self, request, document_id: int):
        document = _writable_document(request, document_id)
        document_delete(document)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentReingestApi(APIView):
    @extend_schema(
        summary="Parse, chunk and embed a document again",
        request=None,
        responses={202: DocumentOutputSerializer},
    )
    def post(self, request, document_id: int):
        document = _writable_document(request, document_id)
        document = document_reingest(document)
        return Response(DocumentOutputSerializer(document).data, status=status.HTTP_202_ACCEPTED)


class DocumentChunkListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        ordinal = serializers.IntegerField()
        text = serializers.CharField()
        token_count = serializers.IntegerField()
        heading_path = serializers.CharField()
        page = serializers.IntegerField(allow_null=True)
        char_start = serializers.IntegerField()
        char_end = serializers.IntegerField()
        content_sha256 = serializers.CharField()

    @extend_schema(
        summary="A document's passages, in order, with page and character span",
        parameters=[
            OpenApiParameter("limit", OpenApiTypes.INT),
            OpenApiParameter("offset", OpenApiTypes.INT),
        ],
        responses=OutputSerializer(many=True),
    )
    def get(self, request, document_id: int):
        _require_scope(request, "search")  # full passage text, like /api/search and the passage endpoint
        document = _readable_document(request, document_id)
        return paginated_response(request, self, chunk_list(document), self.OutputSerializer)
