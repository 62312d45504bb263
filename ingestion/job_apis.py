"""REST API for ingest jobs (a bulk upload followed and stopped as one) and for cancelling one document.

Reading a job (its counts, tokens, rate and time left; never passage text) needs the `search` or `ingest`
scope and a readable collection, like a document's status; an unreadable job is the 404 of a missing one.
Cancelling needs what every write needs: the `ingest` scope and a writable collection (403 when the job or
document is readable only).
"""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.permissions import request_api_key
from ingestion.apis import (
    DocumentOutputSerializer,
    _require_ingest,
    _require_scope,
    _writable_document,
    ingest_job_url,
)
from ingestion.models import Document, IngestJob
from ingestion.progress import JobState, ingest_job_progress
from ingestion.selectors import (
    collection_get_readable_or_403,
    collection_is_writable,
    ingest_job_get_readable_or_404,
    ingest_job_list,
)
from ingestion.services.jobs import NothingToCancel, document_cancel, ingest_job_cancel


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "Nothing to cancel."


# One field per document state, built from the model so a new state shows up here and in the schema.
JobCountsSerializer = type(
    "IngestJobCountsSerializer",
    (serializers.Serializer,),
    {state: serializers.IntegerField() for state in Document.Status.values},
)


class IngestJobOutputSerializer(serializers.Serializer):
    """A job and its progress; reads the dict `ingest_job_data` builds."""

    id = serializers.IntegerField()
    url = serializers.URLField()
    collection = serializers.SlugField()
    created_by = serializers.CharField(allow_null=True, help_text="Username of who uploaded.")
    source = serializers.ChoiceField(choices=IngestJob.Source.choices)
    submitted = serializers.IntegerField(help_text="Documents sent, duplicates of unchanged ones included.")
    created_at = serializers.DateTimeField()
    state = serializers.ChoiceField(
        choices=JobState.values,
        help_text="`running` while a document is queued or processing; `cancelled` once cancelled.",
    )
    counts = JobCountsSerializer(help_text="The job's documents by state.")
    total = serializers.IntegerField(help_text="Documents linked to the job.")
    done = serializers.IntegerField(help_text="Documents ready, failed or cancelled.")
    pending = serializers.IntegerField(help_text="Documents queued or processing.")
    tokens_used = serializers.IntegerField(help_text="Embedding tokens the provider counted for them.")
    documents_per_second = serializers.FloatField(
        allow_null=True, help_text="Finished documents per second since the job was created."
    )
    elapsed_seconds = serializers.FloatField()
    eta_seconds = serializers.FloatField(
        allow_null=True, help_text="Estimated seconds left at that rate; null before the first finishes."
    )
    finished_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)
    cancelled_by = serializers.CharField(allow_null=True)


def ingest_job_data(request, job: IngestJob) -> dict:
    """What `IngestJobOutputSerializer` shows: the job's own fields and its progress now."""
    return {
        **asdict(ingest_job_progress(job)),
        "id": job.pk,
        "url": ingest_job_url(request, job),
        "collection": job.collection.slug,
        "created_by": job.created_by.get_username() if job.created_by else None,
        "source": job.source,
        "submitted": job.submitted,
        "created_at": job.created_at,
        "cancelled_at": job.cancelled_at,
        "cancelled_by": job.cancelled_by.get_username() if job.cancelled_by else None,
    }


def _job_response(request, job: IngestJob, code: int = status.HTTP_200_OK) -> Response:
    return Response(IngestJobOutputSerializer(ingest_job_data(request, job)).data, status=code)


class IngestJobListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        # Any text: an unknown or malformed slug is the same 403 as an unreadable one.
        collection = serializers.CharField(required=False, allow_blank=True, help_text="Collection slug")

    @extend_schema(
        summary="Ingest jobs of the collections the caller may read, newest first",
        parameters=[FilterSerializer, OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=IngestJobOutputSerializer(many=True),
    )
    def get(self, request):
        _require_scope(request, "search", "ingest")  # counts and states, no passage text
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        slug = filters.validated_data.get("collection")
        api_key = request_api_key(request)
        collection = collection_get_readable_or_403(slug, request.user, api_key) if slug else None
        jobs = ingest_job_list(request.user, api_key, collection=collection)
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(jobs, request, view=self)
        data = IngestJobOutputSerializer([ingest_job_data(request, job) for job in page], many=True).data
        return paginator.get_paginated_response(data)


class IngestJobDetailApi(APIView):
    @extend_schema(
        summary="An ingest job: documents by state, tokens used, rate and estimated time left",
        responses=IngestJobOutputSerializer,
    )
    def get(self, request, job_id: int):
        _require_scope(request, "search", "ingest")
        job = ingest_job_get_readable_or_404(job_id, request.user, request_api_key(request))
        return _job_response(request, job)


class IngestJobCancelApi(APIView):
    @extend_schema(
        summary="Cancel an ingest job",
        description="Every document of the job still queued or processing ends `cancelled`, without "
        "passages (none of it is searchable); finished documents stay as they are. Cancelling a cancelled "
        "job again changes nothing; a finished job is a 409.",
        request=None,
        responses={200: IngestJobOutputSerializer, 409: OpenApiResponse(description="The job has finished.")},
    )
    def post(self, request, job_id: int):
        api_key = request_api_key(request)
        job = ingest_job_get_readable_or_404(job_id, request.user, api_key)
        _require_ingest(request)
        if not collection_is_writable(job.collection_id, request.user, api_key):
            raise exceptions.PermissionDenied(
                f"You may read but not change documents of the collection '{job.collection.slug}'."
            )
        try:
            ingest_job_cancel(job, cancelled_by=request.user)
        except NothingToCancel as exc:
            raise Conflict(str(exc)) from exc
        job.refresh_from_db()
        return _job_response(request, job)


class DocumentCancelApi(APIView):
    @extend_schema(
        summary="Cancel a document's ingestion",
        description="A queued or processing document ends `cancelled`, without passages. Cancelling it "
        "again changes nothing; a ready or failed document is a 409. Re-ingest or upload it again to "
        "queue it anew.",
        request=None,
        responses={
            200: DocumentOutputSerializer,
            409: OpenApiResponse(description="The document is ready or failed."),
        },
    )
    def post(self, request, document_id: int):
        document = _writable_document(request, document_id)
        try:
            document = document_cancel(document, cancelled_by=request.user)
        except NothingToCancel as exc:
            raise Conflict(str(exc)) from exc
        return Response(DocumentOutputSerializer(document).data)
