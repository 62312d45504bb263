"""REST routes under /api/ (names start with `api-`; the page's routes are search/page_urls.py)."""

from django.urls import path

from ingestion import apis

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
        "documents/<int:document_id>/chunks", apis.DocumentChunkListApi.as_view(), name="api-document-chunks"
    ),
]
