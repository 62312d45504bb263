from django.contrib import admin

from search.models import QueryLog


@admin.register(QueryLog)
class QueryLogAdmin(admin.ModelAdmin):
    """Read-only: the log is a record of what happened, not something to edit."""

    list_display = (
        "created_at", "kind", "channel", "short_query", "user", "api_key", "model", "api",
        "input_tokens", "output_tokens", "latency_ms", "reranked", "has_error",
    )  # fmt: skip
    list_filter = ("kind", "channel", "api", "reranked", "model", "created_at")
    search_fields = ("query", "search_query", "user__username", "api_key__name", "error")
    date_hierarchy = "created_at"
    list_select_related = ("user", "api_key")

    @admin.display(description="query")
    def short_query(self, obj: QueryLog) -> str:
        return obj.query[:80]

    @admin.display(boolean=True, description="error")
    def has_error(self, obj: QueryLog) -> bool:
        return bool(obj.error)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_view_permission(self, request, obj=None):
        # Questions can quote confidential material from any collection: superusers only.
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_change_permission(self, request, obj=None):
        return False
