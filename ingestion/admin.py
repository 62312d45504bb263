"""Admin: collections with their readers, documents (multi-file upload, status, progress, error, re-ingest,
cancel, delete), ingest jobs (counts by state, tokens, time left, cancel), embedding spaces (re-embed with
another model)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ingestion.models import PENDING_STATES, Chunk, Collection, Document, EmbeddingSpace, IngestJob
from ingestion.selectors import collections_readable, collections_writable
from ingestion.services.documents import document_create, document_delete, document_reingest
from ingestion.services.errors import IngestionError
from ingestion.services.jobs import documents_cancel, ingest_job_create
from ingestion.services.spaces import embedding_space_build


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_public", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["reader_groups", "reader_users", "writer_groups", "writer_users"]

    def get_queryset(self, request):
        # Staff who are not superusers see only the collections they may read ...
        return super().get_queryset(request).filter(pk__in=collections_readable(request.user).values("pk"))

    # ... and change (readers, writers, publicity) or delete only those they may write.
    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _writable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and _writable(request, obj)


def _writable(request, obj) -> bool:
    """Whether the object (a collection, or a document's collection) is writable; True for no object."""
    if obj is None:
        return True
    collection_id = obj.pk if isinstance(obj, Collection) else obj.collection_id
    return collections_writable(request.user).filter(pk=collection_id).exists()


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class DocumentUploadForm(forms.Form):
    collection = forms.ModelChoiceField(queryset=Collection.objects.none())
    files = MultipleFileField(help_text="Select one or many files (PDF, DOCX, HTML, Markdown, text, audio).")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["collection"].queryset = collections_writable(user)


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ["ordinal", "page", "heading_path", "char_start", "char_end", "token_count", "text"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    max_num = 0

    def get_queryset(self, request):
        return super().get_queryset(request).defer("search_vector")


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "collection", "status", "progress", "short_error", "mime_type", "created_at"]
    # RelatedOnly: the filter lists only collections of documents the user can see, not every name.
    list_filter = ["status", ("collection", admin.RelatedOnlyFieldListFilter), "mime_type"]
    search_fields = ["title", "source_url", "content_sha256"]
    readonly_fields = [
        "status",
        "error",
        "chunks_total",
        "chunks_embedded",
        "embedding_tokens",
        "job",
        "attempts",
        "processing_started_at",
        "mime_type",
        "size_bytes",
        "content_sha256",
        "created_by",
        "updated_by",
        "created_at",
        "updated_at",
    ]
    fields = ["collection", "title", "source_url", "metadata", *readonly_fields]
    actions = ["reingest_selected", "cancel_selected", "delete_with_chunks"]
    inlines = [ChunkInline]
    change_list_template = "admin/ingestion/document/change_list.html"

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(collection__in=collections_readable(request.user).values("pk"))
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "collection":
            kwargs["queryset"] = collections_writable(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # Documents of collections the user may only read are shown read-only, and actions skip them.
    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and _writable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and _writable(request, obj)

    def _writable_only(self, request, queryset):
        writable = queryset.filter(collection__in=collections_writable(request.user).values("pk"))
        skipped = queryset.count() - writable.count()
        if skipped:
            self.message_user(
                request,
                f"{skipped} document(s) skipped: you may not change their collection.",
                messages.WARNING,
            )
        return writable

    def has_add_permission(self, request):
        # Documents come in through the upload view (one or many files), not the plain add form.
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # ours removes chunks and vectors in bulk, and the files
        return actions

    @admin.display(description="Progress")
    def progress(self, obj):
        if not obj.chunks_total:
            return "-"
        return f"{obj.chunks_embedded}/{obj.chunks_total}"

    @admin.display(description="Error")
    def short_error(self, obj):
        return (obj.error[:120] + "…") if len(obj.error) > 120 else obj.error

    # Every action declares the permission it needs: Django then hides it from, and refuses it to, staff
    # without that permission (a view-only account sees the list, not the buttons).
    @admin.action(description="Re-ingest selected documents", permissions=["change"])
    def reingest_selected(self, request, queryset):
        count = 0
        for document in self._writable_only(request, queryset):
            document_reingest(document)
            count += 1
        self.message_user(request, f"{count} document(s) queued for ingestion.")

    @admin.action(
        description="Cancel selected documents (those queued or processing)", permissions=["change"]
    )
    def cancel_selected(self, request, queryset):
        ids = (
            self._writable_only(request, queryset)
            .filter(status__in=PENDING_STATES)
            .values_list("pk", flat=True)
        )
        count = len(documents_cancel(list(ids), reason=f"Cancelled by {request.user.get_username()}."))
        self.message_user(request, f"{count} document(s) cancelled.")

    @admin.action(
        description="Delete selected documents (with their passages and vectors)", permissions=["delete"]
    )
    def delete_with_chunks(self, request, queryset):
        count = 0
        for document in self._writable_only(request, queryset):
            document_delete(document)
            count += 1
        self.message_user(request, f"{count} document(s) deleted.")

    def delete_model(self, request, obj):
        document_delete(obj)

    def get_urls(self):
        custom = [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="ingestion_document_upload"),
        ]
        return custom + super().get_urls()

    def has_upload_permission(self, request) -> bool:
        # The plain add form is hidden (has_add_permission), but uploading is adding documents.
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.add_{opts.model_name}")

    def upload_view(self, request):
        if not self.has_upload_permission(request):
            messages.error(request, "You may not upload documents.")
            return redirect("admin:index")
        form = DocumentUploadForm(request.POST or None, request.FILES or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            created = duplicates = failed = 0
            files = form.cleaned_data["files"]
            job = ingest_job_create(
                collection=form.cleaned_data["collection"],
                created_by=request.user,
                source=IngestJob.Source.ADMIN,
                submitted=len(files),
            )
            for upload in files:
                document, is_new = document_create(
                    collection=form.cleaned_data["collection"],
                    file=upload,
                    filename=upload.name,
                    created_by=request.user,
                    job=job,
                )
                if not is_new:
                    duplicates += 1
                elif document.status == Document.Status.FAILED:
                    failed += 1
                else:
                    created += 1
            messages.success(
                request,
                format_html(
                    '{} file(s) queued, {} already present, {} refused: <a href="{}">follow job {}</a>.',
                    created,
                    duplicates,
                    failed,
                    reverse("admin:ingestion_ingestjob_change", args=[job.pk]),
                    job.pk,
                ),
            )
            return redirect(reverse("admin:ingestion_ingestjob_change", args=[job.pk]))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Upload documents",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/ingestion/document/upload.html", context)


class ReembedForm(forms.Form):
    model = forms.CharField(max_length=200, help_text="Embedding model name at the provider.")
    dimensions = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=4000,
        help_text="Ask the model for this many dimensions (optional).",
    )


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "dimensions",
        "is_active",
        "status",
        "vector_count",
        "created_at",
        "activated_at",
    ]
    readonly_fields = [
        "provider_base_url",
        "model",
        "dimensions",
        "send_dimensions",
        "is_active",
        "status",
        "created_at",
        "activated_at",
    ]
    actions = ["reembed_with_this_model"]
    change_list_template = "admin/ingestion/embeddingspace/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Vectors")
    def vector_count(self, obj):
        return obj.embeddings.count()

    def has_reembed_permission(self, request) -> bool:
        # Re-embedding rebuilds every vector of every collection: superusers only, like the re-embed form.
        return request.user.is_active and request.user.is_superuser

    @admin.action(
        description="Re-embed every passage with this model (builds a new space, then switches)",
        permissions=["reembed"],
    )
    def reembed_with_this_model(self, request, queryset):
        for space in queryset[:1]:
            self._start(request, space.model, space.dimensions if space.send_dimensions else None)

    def _start(self, request, model, dimensions):
        try:
            space = embedding_space_build(model, dimensions)
        except IngestionError as exc:
            messages.error(request, str(exc))
            return
        except Exception as exc:  # provider unreachable, unknown model
            messages.error(request, f"Could not start re-embedding: {exc}")
            return
        messages.success(
            request,
            format_html(
                "Building space {} ({} dimensions); search switches to it when complete.",
                space.model,
                space.dimensions,
            ),
        )

    def get_urls(self):
        custom = [path("reembed/", self.admin_site.admin_view(self.reembed_view), name="ingestion_reembed")]
        return custom + super().get_urls()

    def reembed_view(self, request):
        if not self.has_reembed_permission(request):
            messages.error(request, "Only superusers can change the embedding model.")
            return redirect("admin:index")
        form = ReembedForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            self._start(request, form.cleaned_data["model"], form.cleaned_data.get("dimensions"))
            return redirect(reverse("admin:ingestion_embeddingspace_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Re-embed with another model",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/ingestion/embeddingspace/reembed.html", context)


# Registered on import: the ingest-job admin lives beside this one (it shares `_writable`).
from ingestion import admin_jobs  # noqa: E402, F401
