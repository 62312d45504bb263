from django.urls import path

from ingestion import apis

urlpatterns = [
    path("collections", apis.CollectionListCreateApi.as_view(), name="collection-list"),
    path("documents", apis.DocumentListCreateApi.as_view(), name="document-list"),
    path("documents/bulk", apis.DocumentBulkCreateApi.as_view(), name="document-bulk"),
    path("documents/<int:document_id>", apis.DocumentDetailApi.as_view(), name="document-detail"),
    path(
        "documents/<int:document_id>/reingest", apis.DocumentReingestApi.as_view(), name="document-reingest"
    ),
    path("documents/<int:document_id>/chunks", apis.DocumentChunkListApi.as_view(), name="document-chunks"),
]
