from django.urls import path

from search.apis import AskApi, PassageApi, SearchApi

urlpatterns = [
    path("search", SearchApi.as_view(), name="api-search"),
    path("ask", AskApi.as_view(), name="api-ask"),
    path(
        "documents/<int:document_id>/chunks/<int:chunk_id>", PassageApi.as_view(), name="api-document-chunk"
    ),
]
