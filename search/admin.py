from django.contrib import admin
from django.db.models import Count

from rag_project.admin_mixins import ReadOnlyAdminMixin
from search.models import Conversation, ConversationTurn, Feedback, QueryLog


class _SuperuserReadOnly(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Questions and answers can quote confidential material from any collection: superusers only, and
    read-only (a record of what happened) that superusers may delete."""

    superuser_can_delete = True


@admin.register(QueryLog)
class QueryLogAdmin(_SuperuserReadOnly):
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


class ConversationTurnInline(admin.TabularInline):
    model = ConversationTurn
    fields = ("created_at", "question", "search_query", "rewrite_method", "short_answer", "found", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    @admin.display(description="answer")
    def short_answer(self, obj: ConversationTurn) -> str:
        return obj.answer[:300]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(_SuperuserReadOnly):
    list_display = ("updated_at", "title", "user", "turn_count", "created_at")
    search_fields = ("title", "user__username", "turns__question")
    date_hierarchy = "updated_at"
    list_select_related = ("user",)
    inlines = [ConversationTurnInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(turn_total=Count("turns"))

    @admin.display(description="turns", ordering="turn_total")
    def turn_count(self, obj) -> int:
        return obj.turn_total


@admin.register(Feedback)
class FeedbackAdmin(_SuperuserReadOnly):
    list_display = ("created_at", "thumb", "question", "short_comment", "expected", "user")
    list_filter = ("rating", "created_at")
    search_fields = ("comment", "query_log__query", "user__username")
    date_hierarchy = "created_at"
    list_select_related = ("query_log", "user", "expected_chunk__document")

    @admin.display(description="rating", ordering="rating")
    def thumb(self, obj: Feedback) -> str:
        return "👍" if obj.rating > 0 else "👎"

    @admin.display(description="question")
    def question(self, obj: Feedback) -> str:
        return obj.query_log.query[:80]

    @admin.display(description="comment")
    def short_comment(self, obj: Feedback) -> str:
        return obj.comment[:80]

    @admin.display(description="expected passage")
    def expected(self, obj: Feedback) -> str:
        chunk = obj.expected_chunk
        return f"{chunk.document.title} #{chunk.ordinal}" if chunk else ""
