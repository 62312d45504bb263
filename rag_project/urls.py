from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from operations import views as operations_views
from rag_project import health
from search.mcp_views import McpApi

admin.site.site_header = "Citable administration"
admin.site.site_title = "Citable administration"
admin.site.index_title = "Knowledge base"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", operations_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("ingestion.urls")),
    path("api/", include("search.urls")),
    path("v1/", include("search.openai_urls")),
    path("mcp", McpApi.as_view(), name="mcp"),
    path("", include("search.page_urls")),
]
