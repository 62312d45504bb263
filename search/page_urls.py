from django.urls import path

from search import page_views

urlpatterns = [
    path("", page_views.search_page, name="search-page"),
    path("login/", page_views.LoginView.as_view(), name="login"),
    path("logout/", page_views.LogoutView.as_view(), name="logout"),
    path("documents/<int:document_id>", page_views.document_detail, name="document-page"),
    path(
        "documents/<int:document_id>/passages/<int:chunk_id>",
        page_views.passage_context,
        name="document-passage-context",
    ),
    path("documents/<int:document_id>/download", page_views.document_download, name="document-download"),
]
