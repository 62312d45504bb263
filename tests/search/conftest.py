"""Builders for search tests: rows are created directly (collection, document, chunks, vectors embedded
through the stand-in in the active space), independent of the ingestion pipeline."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache

from accounts.keys import key_generate
from accounts.models import ApiKey
from ingestion.models import Chunk, ChunkEmbedding, Collection, Document, EmbeddingSpace

_counter = itertools.count(1)


def active_space_make() -> EmbeddingSpace:
    from ingestion.services.spaces import embedding_space_get_or_create_active

    return embedding_space_get_or_create_active()


@pytest.fixture(autouse=True)
def _clean_cache():
    # Throttle counters live in the cache; every test starts from zero.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def space(db, genapi) -> EmbeddingSpace:
    return active_space_make()


def collection_make(slug: str | None = None, *, is_public: bool = True, users=()) -> Collection:
    slug = slug or f"col-{next(_counter)}"
    collection = Collection.objects.create(name=slug.title(), slug=slug, is_public=is_public)
    for user in users:
        collection.reader_users.add(user)
    return collection


def embed(space: EmbeddingSpace, texts: list[str]) -> list[list[float]]:
    from genapi import get_client

    return get_client().embeddings_create(space.model, input=texts).vectors


def document_make(
    collection: Collection,
    passages: list[str],
    *,
    space: EmbeddingSpace,
    title: str | None = None,
    metadata: dict | None = None,
    mime_type: str = "text/plain",
    pages: list[int | None] | None = None,
    created_at=None,
    status: str = Document.Status.READY,
    embed_vectors: bool = True,
) -> Document:
    """A ready document whose chunks are `passages`, joined by blank lines; chunk spans index its text."""
    text = "\n\n".join(passages)
    n = next(_counter)
    document = Document.objects.create(
        collection=collection,
        title=title or f"Document {n}",
        text=text,
        mime_type=mime_type,
        size_bytes=len(text.encode()),
        content_sha256=hashlib.sha256(f"{n}:{text}".encode()).hexdigest(),
        metadata=metadata or {},
        status=status,
        chunks_total=len(passages),
        chunks_embedded=len(passages),
    )
    if created_at is not None:
        Document.objects.filter(pk=document.pk).update(created_at=created_at)
    chunks, offset = [], 0
    for i, passage in enumerate(passages):
        chunks.append(
            Chunk(
                document=document,
                ordinal=i,
                text=passage,
                token_count=len(passage.split()),
                page=pages[i] if pages else None,
                char_start=offset,
                char_end=offset + len(passage),
                content_sha256=hashlib.sha256(passage.encode()).hexdigest(),
            )
        )
        offset += len(passage) + 2
    chunks = Chunk.objects.bulk_create(chunks)
    if embed_vectors:
        vectors = embed(space, passages)
        ChunkEmbedding.objects.bulk_create(
            ChunkEmbedding(chunk=chunk, space=space, embedding=vector)
            for chunk, vector in zip(chunks, vectors, strict=True)
        )
    return document


@dataclass
class Caller:
    user: User
    raw_key: str
    api_key: ApiKey

    @property
    def headers(self) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.raw_key}"}


def caller_make(
    *, scopes=None, collections=None, is_superuser: bool = False, user: User | None = None
) -> Caller:
    # No password: hashing one at production cost would dominate these tests.
    user = user or User.objects.create(username=f"reader{next(_counter)}", is_superuser=is_superuser)
    raw_key, prefix, key_hash = key_generate()
    api_key = ApiKey.objects.create(
        user=user, name="test", prefix=prefix, key_hash=key_hash, scopes=scopes or []
    )
    if collections:
        api_key.collections.set(collections)
        if hasattr(api_key, "collections_narrowed"):
            ApiKey.objects.filter(pk=api_key.pk).update(collections_narrowed=True)
            api_key.refresh_from_db()
    return Caller(user=user, raw_key=raw_key, api_key=api_key)


@pytest.fixture
def kb(space):
    """A small knowledge base: three documents in one public collection, one in a private collection."""
    public = collection_make("handbook")
    private = collection_make("hr-private", is_public=False)
    keys = document_make(
        public,
        [
            "Signing keys are rotated every ninety days by the platform team.",
            "To rotate a signing key, run the rotate-keys command and publish the new public key.",
            "Old signing keys stay valid for verification during a grace period of seven days.",
        ],
        space=space,
        title="Key management",
        metadata={"team": "platform", "lang": "en"},
        pages=[1, 1, 2],
    )
    billing = document_make(
        public,
        [
            "Invoices are sent on the first business day of each month.",
            "Refunds are processed by the billing team within ten working days.",
        ],
        space=space,
        title="Billing FAQ",
        metadata={"team": "billing"},
        mime_type="text/markdown",
    )
    lunch = document_make(
        public,
        ["The cafeteria serves lunch from noon until two o'clock.", "Vegetarian dishes are available daily."],
        space=space,
        title="Cafeteria",
        metadata={"team": "facilities"},
        mime_type="application/pdf",
    )
    salaries = document_make(
        private,
        ["Salary reviews happen every March; the signing bonus policy is confidential."],
        space=space,
        title="Compensation",
    )
    return {"public": public, "private": private, "keys": keys, "billing": billing, "lunch": lunch,
            "salaries": salaries}  # fmt: skip
