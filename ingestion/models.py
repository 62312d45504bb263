"""Collections, documents, passages (chunks) and their vectors, one embedding space per model."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.validators import URLValidator
from django.db import models
from pgvector.django import HalfVectorField

# pgvector indexes halfvec up to 4,000 dimensions (DESIGN.md, "Vectors").
MAX_INDEXED_DIMENSIONS = 4000
FULLTEXT_CONFIG = "english"


class Collection(models.Model):
    """A set of documents that share read permissions."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # Readers: every signed-in user when `is_public`, otherwise the chosen groups and users.
    is_public = models.BooleanField(default=False, help_text="Readable by every signed-in user.")
    reader_groups = models.ManyToManyField(Group, blank=True, related_name="readable_collections")
    reader_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="readable_collections"
    )
    # Writers add, replace and delete documents (and read them). Reading is not writing: a reader, even of
    # a public collection, cannot change it. Superusers write everywhere.
    writer_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="writable_collections",
        help_text="Members may add, change and delete documents (and read them).",
    )
    writer_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="writable_collections",
        help_text="These users may add, change and delete documents (and read them).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EmbeddingSpace(models.Model):
    """One embedding model at one dimensionality. Exactly one space is active for search."""

    class Status(models.TextChoices):
        BUILDING = "building"
        READY = "ready"
        RETIRED = "retired"

    provider_base_url = models.CharField(max_length=500)
    model = models.CharField(max_length=200)
    dimensions = models.PositiveIntegerField()
    # True when the model's native size was too large (or another size was asked for) and every embeddings
    # call must pass `dimensions` (Matryoshka-style truncation by the provider).
    send_dimensions = models.BooleanField(default=False)
    is_active = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="one_active_embedding_space"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} ({self.dimensions}d)"


class IngestJob(models.Model):
    """One bulk upload (REST bulk, the admin's multi-file upload, `manage.py ingest`): who sent what into
    which collection, so the documents it queued can be followed (`ingestion.progress`) and cancelled
    together (`ingestion.services.jobs`).

    Counts are not stored: they are read from the job's documents by state, so no worker write has to
    keep a second counter in step (and no hot row is shared by concurrent workers).
    """

    class Source(models.TextChoices):
        API = "api", "REST API"
        ADMIN = "admin", "admin upload"
        CLI = "cli", "manage.py ingest"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="ingest_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    # Inputs sent, duplicates included (a duplicate of an unchanged document is not linked to the job).
    submitted = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.collection_id})"


class Document(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"
        # Stopped by a person (the document or its job); it has no passages. Uploading it again, or
        # re-ingesting it, queues it again.
        CANCELLED = "cancelled"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=500)
    file = models.FileField(upload_to="documents/%Y/%m/", blank=True)
    text = models.TextField(
        blank=True,
        help_text="The text, given or extracted from the file; chunk spans index into it.",
    )
    source_url = models.URLField(
        max_length=2000, blank=True, validators=[URLValidator(schemes=["http", "https"])]
    )
    mime_type = models.CharField(max_length=200, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    content_sha256 = models.CharField(max_length=64, db_index=True)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_embedded = models.PositiveIntegerField(default=0)
    # Provider tokens its last ingestion spent on embeddings (reused vectors cost none).
    embedding_tokens = models.PositiveIntegerField(default=0)
    # The upload that last queued it (a bulk upload's job); None for single uploads.
    job = models.ForeignKey(
        IngestJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    # The worker holding the lease renews this while it runs (a heartbeat): a lease not renewed for
    # RAG_LEASE_SECONDS belongs to a lost worker and the sweeper re-queues the document.
    lease_renewed_at = models.DateTimeField(null=True, blank=True)
    # The uploader, and who last replaced the content (API PUT, same source_url, bulk).
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "content_sha256"], name="unique_content_per_collection"
            ),
        ]
        indexes = [
            GinIndex(fields=["metadata"], name="document_metadata_gin"),
            # What every search checks per candidate passage (readable collection, ready), answered from
            # the index alone: the full-text leg checks ~1,000 postings' documents a query, and without
            # it each check also read the document's row (BENCHMARKS.md, issue 14: -25 % of that leg).
            models.Index(fields=["id"], include=["collection", "status"], name="document_visibility"),
        ]

    def __str__(self) -> str:
        return self.title


# States a worker may still change; the others are final until someone uploads or re-ingests again.
PENDING_STATES = (Document.Status.QUEUED, Document.Status.PROCESSING)


class Chunk(models.Model):
    """A passage: what is embedded, retrieved and cited."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    token_count = models.PositiveIntegerField(default=0)
    heading_path = models.CharField(max_length=1000, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    content_sha256 = models.CharField(max_length=64, db_index=True)
    # Read by the BM25 postings trigger (search/fulltext.py) and by highlighting (per passage id): no
    # query searches it by content, so it carries no GIN index (that cost every insert; issue 15).
    search_vector = models.GeneratedField(
        expression=SearchVector("heading_path", "text", config=FULLTEXT_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["document", "ordinal"], name="unique_chunk_ordinal")]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class ChunkEmbedding(models.Model):
    """A chunk's vector in one embedding space.

    Vectors live beside chunks, not in them, so a new space can be built while search keeps
    using the active one. Each space has its own partial HNSW expression index
    (`(embedding::halfvec(N)) ... WHERE space_id = S`), created with the space.
    """

    chunk = models.ForeignKey(Chunk, on_delete=models.CASCADE, related_name="embeddings")
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="embeddings")
    embedding = HalfVectorField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["space", "chunk"], name="unique_chunk_per_space")]

    def __str__(self) -> str:
        return f"chunk {self.chunk_id} in space {self.space_id}"
