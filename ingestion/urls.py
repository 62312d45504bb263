"""REST routes under /api/ (names start with `api-`; the page's routes are search/page_urls.py)."""

from django.urls import path

from ingestion import apis, job_apis

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="api-me"),
    path("collections", apis.CollectionListCreateApi.as_view(), name="api-collection-list"),
    path("documents", apis.DocumentListCreateApi.as_view(), name="api-document-list"),
    path("documents/bulk", apis.DocumentBulkCreateApi.as_view(), name="api-document-bulk"),
    path("documents/<int:document_id>", apis.DocumentDetailApi.as_view(), name="api-document-detail"),
    path(
        "documents/<int:document_id>/reingest",
        apis.DocumentReingestApi.as_view(),
        name="api-document-reingest",
    ),
    path(
        "documents/<int:document_id>/cancel",
        job_apis.DocumentCancelApi.as_view(),
        name="api-document-cancel",
    ),
    path("ingest-jobs", job_apis.IngestJobListApi.as_view(), name="api-ingest-job-list"),
    path("ingest-jobs/<int:job_id>", job_apis.IngestJobDetailApi.as_view(), name="api-ingest-job-detail"),
    path(
        "ingest-jobs/<int:job_id>/cancel",
        job_apis.IngestJobCancelApi.as_view(),
        name="api-ingest-job-cancel",
    ),
    path(
        "documents/<int:document_id>/chunks", apis.DocumentChunkListApi.as_view(), name="api-document-chunks"
    ),
]
