"""The one set of test factories (factory_boy): users, groups, collections, documents with their chunks and
vectors, API keys. Every test builds rows through these, so every test starts from the same defaults:

- a user has no usable password (hashing one dominates fast tests); pass `password=` to sign in with it;
- a collection is private and readable by nobody; pass `is_public=True`, `reader_users=` or `reader_groups=`;
  nobody but superusers writes to it; pass `writer_users=` or `writer_groups=`;
- a document is ready, with one chunk per passage and no vectors; pass `space=` to embed them (stand-in);
- an API key is made by the real service, unscoped and not narrowed; its raw key is `api_key.raw_key`.

Rows are created in the test's transaction (pytest-django), on the session's embedded database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import factory
from django.contrib.auth.models import Group, User
from factory.django import DjangoModelFactory, Password

from accounts.models import ApiKey
from ingestion.models import Chunk, ChunkEmbedding, Collection, Document, EmbeddingSpace

PASSWORD = "correct horse battery staple"
# Passages are joined by a blank line into the document's text; chunk spans index into that text.
PASSAGE_SEPARATOR = "\n\n"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bearer(raw_key: str) -> dict:
    """Request headers that authenticate with an API key (Django test client keyword arguments)."""
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}


def _groups(groups: Iterable[Group | str]) -> list[Group]:
    return [group if isinstance(group, Group) else GroupFactory(name=group) for group in groups]


class GroupFactory(DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"group-{n}")


class UserFactory(DjangoModelFactory):
    """`UserFactory(groups=["hr", hr_group])` adds the user to groups (made by name when needed)."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = Password(None)  # unusable unless given

    @factory.post_generation
    def groups(user, create, extracted, **kwargs):
        if create and extracted:
            user.groups.add(*_groups(extracted))


class CollectionFactory(DjangoModelFactory):
    """Private by default. `reader_users=[...]` and `reader_groups=[...]` (groups or names) grant reading."""

    class Meta:
        model = Collection
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"collection-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    is_public = False

    @factory.post_generation
    def reader_users(collection, create, extracted, **kwargs):
        if create and extracted:
            collection.reader_users.add(*extracted)

    @factory.post_generation
    def reader_groups(collection, create, extracted, **kwargs):
        if create and extracted:
            collection.reader_groups.add(*_groups(extracted))

    @factory.post_generation
    def writer_users(collection, create, extracted, **kwargs):
        if create and extracted:
            collection.writer_users.add(*extracted)

    @factory.post_generation
    def writer_groups(collection, create, extracted, **kwargs):
        if create and extracted:
            collection.writer_groups.add(*_groups(extracted))


def active_space() -> EmbeddingSpace:
    """The active embedding space, made by the production service on first use (it probes the stand-in,
    so tests that need a space also need the `genapi` fixture) with its HNSW index."""
    from ingestion.services.spaces import embedding_space_get_or_create_active

    return embedding_space_get_or_create_active()


def vectors_embed(space: EmbeddingSpace, texts: list[str]) -> list[list[float]]:
    """Vectors for `texts` in `space`, made the way ingestion makes them (the stand-in in tests)."""
    from ingestion.services.embedding import texts_embed

    return texts_embed(space, texts)


class ChunkFactory(DjangoModelFactory):
    """A passage on its own; DocumentFactory builds its chunks with this too."""

    class Meta:
        model = Chunk

    # The document's text is this passage, so the span indexes into it.
    document = factory.SubFactory(
        "tests.factories.DocumentFactory", passages=(), text=factory.SelfAttribute("..text")
    )
    ordinal = factory.Sequence(lambda n: n)
    text = "A passage about nothing in particular."
    token_count = factory.LazyAttribute(lambda o: len(o.text.split()))
    page = None
    char_start = 0
    char_end = factory.LazyAttribute(lambda o: o.char_start + len(o.text))
    content_sha256 = factory.LazyAttribute(lambda o: sha256(o.text))


class ChunkEmbeddingFactory(DjangoModelFactory):
    class Meta:
        model = ChunkEmbedding

    chunk = factory.SubFactory(ChunkFactory)
    space = factory.LazyFunction(active_space)
    embedding = factory.LazyAttribute(lambda o: vectors_embed(o.space, [o.chunk.text])[0])


class DocumentFactory(DjangoModelFactory):
    """A ready document whose text is `passages` joined by blank lines, with one chunk per passage.

    Not model fields (used by `_create`): `passages`, `pages` (one page number per passage), `space`
    (store every chunk's vector in this space, embedded in one call). `created_at=` is kept as given.
    """

    class Meta:
        model = Document

    collection = factory.SubFactory(CollectionFactory)
    title = factory.Sequence(lambda n: f"Document {n}")
    passages = ("A passage about nothing in particular.",)
    pages = None
    space = None
    text = factory.LazyAttribute(lambda o: PASSAGE_SEPARATOR.join(o.passages))
    mime_type = "text/plain"
    size_bytes = factory.LazyAttribute(lambda o: len(o.text.encode()))
    # Unique per document, so the same passages can be planted twice in one collection.
    content_sha256 = factory.LazyAttributeSequence(lambda o, n: sha256(f"{n}:{o.text}"))
    metadata = factory.LazyFunction(dict)
    status = Document.Status.READY
    chunks_total = factory.LazyAttribute(lambda o: len(o.passages))
    chunks_embedded = factory.LazyAttribute(lambda o: len(o.passages))

    @classmethod
    def _create(cls, model_class, *args, passages, pages, space, **kwargs):
        created_at = kwargs.pop("created_at", None)
        document = super()._create(model_class, *args, **kwargs)
        if created_at is not None:
            # auto_now_add ignores a given value on insert.
            model_class.objects.filter(pk=document.pk).update(created_at=created_at)
            document.created_at = created_at
        chunks, offset = [], 0
        for ordinal, passage in enumerate(passages):
            chunks.append(
                ChunkFactory.build(
                    document=document,
                    ordinal=ordinal,
                    text=passage,
                    page=pages[ordinal] if pages else None,
                    char_start=offset,
                )
            )
            offset += len(passage) + len(PASSAGE_SEPARATOR)
        chunks = Chunk.objects.bulk_create(chunks)
        if space is not None and chunks:
            vectors = vectors_embed(space, [chunk.text for chunk in chunks])
            ChunkEmbedding.objects.bulk_create(
                ChunkEmbeddingFactory.build(chunk=chunk, space=space, embedding=vector)
                for chunk, vector in zip(chunks, vectors, strict=True)
            )
        return document


class ApiKeyFactory(DjangoModelFactory):
    """A key made by `accounts.services.api_key_create` (scopes validated, narrowing as in production).

    `scopes=None` is unscoped (the user's rights); `collections=None` is not narrowed, `[]` narrows to
    nothing. The raw key exists only on the returned object, as `raw_key`.
    """

    class Meta:
        model = ApiKey

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"test key {n}")
    scopes = None
    collections = None
    expires_at = None

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from accounts.services import api_key_create

        api_key, raw_key = api_key_create(**kwargs)
        api_key.raw_key = raw_key
        return api_key

    @classmethod
    def _build(cls, model_class, *args, **kwargs):
        raise NotImplementedError("An API key only exists once created (its raw key is made then).")
