"""Who may read what: every read of collections, documents and passages goes through this module.

`collections_readable` is THE one place that decides readability: every read path (search, ask, the
document and passage views, the page, the OpenAI-compatible endpoint, the admin for non-superusers, the
REST lists) takes the caller's collections from it and filters in SQL with it as a subquery. The helpers
below apply the leaked-existence rule on top of it:

- naming a collection the caller may not read (or that does not exist) is a 403, the same 403 in both
  cases, so the answer never tells whether the slug exists;
- an object (document, chunk) outside the readable collections is a 404, exactly like a missing one.

They raise Django's `PermissionDenied` / `Http404`, which work in plain Django views and which DRF turns
into its own 403/404 (and so into the shared `{"error": {...}}` shape).

Imports between the apps run one way: `ingestion` imports `accounts` (users, API keys, scopes);
`accounts` never imports `ingestion`. So this module and `/api/me` (which lists readable collections)
live here; `accounts` names the collection model only by its label (`ApiKey.collections`, the signal that
keeps narrowed keys narrowed) and reaches it through that relation or the collection admin.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, Q, QuerySet
from django.http import Http404

from accounts.models import ApiKey
from accounts.permissions import request_api_key
from ingestion.models import Chunk, Collection, Document, IngestJob
from rag_project.compiled_sql import STAND_IN_KEY, STAND_IN_USER, params_bound, queryset_compiled, rows_fetch

COLLECTION_FORBIDDEN_MESSAGE = "You may not read collection '{slug}'."


def collections_readable(user, api_key: ApiKey | None = None) -> QuerySet[Collection]:
    """Collections `user` may read, narrowed to the API key's collections when the key is narrowed.

    Built from subqueries (no joins, no DISTINCT) so callers can use it as
    `filter(collection__in=collections_readable(...))` and keep the whole decision in one SQL statement.
    """
    if not _may_read_any(user, api_key):
        return Collection.objects.none()
    if user.is_superuser:
        readable = Collection.objects.all()
    else:
        # Writers read what they write.
        readable = Collection.objects.filter(
            Q(is_public=True) | _member_of(user, "reader_users", "reader_groups") | _member_of(user)
        )
    return _narrowed(readable, api_key)


def _may_read_any(user, api_key: ApiKey | None) -> bool:
    """False for no user, an inactive one, or a revoked key or a key of another user: nothing is readable."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return api_key is None or (api_key.revoked_at is None and api_key.user_id == user.pk)


def collections_writable(user, api_key: ApiKey | None = None) -> QuerySet[Collection]:
    """Collections `user` may change: add, replace, re-ingest and delete documents. THE one place that
    decides writability, next to `collections_readable`: the API's writes and the admin's actions and
    forms all take it. Writers are the groups and users chosen in the admin; superusers write everywhere.
    Reading is not writing (a public collection is readable by all, writable by its writers only). A
    narrowed key narrows writing too; the `ingest` scope is checked by the caller, not here."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Collection.objects.none()
    if api_key is not None and (api_key.revoked_at is not None or api_key.user_id != user.pk):
        return Collection.objects.none()
    writable = Collection.objects.all() if user.is_superuser else Collection.objects.filter(_member_of(user))
    return _narrowed(writable, api_key)


def _member_of(user, users_field: str = "writer_users", groups_field: str = "writer_groups") -> Q:
    """Collections naming `user`, or one of their groups, in the given relations (as subqueries)."""
    users = getattr(Collection, users_field).through.objects.filter(user=user)
    groups = getattr(Collection, groups_field).through.objects.filter(group__in=user.groups.values("pk"))
    return Q(pk__in=users.values("collection_id")) | Q(pk__in=groups.values("collection_id"))


def _narrowed(collections: QuerySet[Collection], api_key: ApiKey | None) -> QuerySet[Collection]:
    """Only the key's chosen collections when the key is narrowed, or (a key not flagged) has chosen any.
    The "has chosen any" test is a subquery of the same statement, not a query of its own."""
    if api_key is None:
        return collections
    chosen = api_key.collections.values("pk")
    if api_key.collections_narrowed:
        return collections.filter(pk__in=chosen)
    any_chosen = ApiKey.collections.through.objects.filter(apikey_id=api_key.pk)
    return collections.filter(Q(pk__in=chosen) | ~Exists(any_chosen))


def collection_get_writable(slug: str, user, api_key: ApiKey | None = None) -> Collection | None:
    return collections_writable(user, api_key).filter(slug=slug).first()


def collection_is_writable(collection_id: int, user, api_key: ApiKey | None = None) -> bool:
    return collections_writable(user, api_key).filter(pk=collection_id).exists()


def collection_ids_readable(user, api_key: ApiKey | None = None) -> list[int]:
    return list(collections_readable(user, api_key).values_list("pk", flat=True))


def request_readable_collections(request) -> QuerySet[Collection]:
    """`collections_readable` for a Django or DRF request (the key is `request.auth` when one was used)."""
    return collections_readable(getattr(request, "user", None), request_api_key(request))


def collection_get_readable_or_403(slug: str, user, api_key: ApiKey | None = None) -> Collection:
    """The collection named `slug` if readable; otherwise 403, whether or not it exists."""
    collection = collections_readable(user, api_key).filter(slug=slug).first()
    if collection is None:
        raise PermissionDenied(COLLECTION_FORBIDDEN_MESSAGE.format(slug=slug))
    return collection


def collections_get_readable_or_403(
    slugs: Iterable[str] | None, user, api_key: ApiKey | None = None
) -> QuerySet[Collection]:
    """The readable collections a request names; no names means every readable collection.

    One unreadable (or unknown) name is a 403 for the whole request: silently dropping it would turn
    "you may not read HR" into an empty success and would reveal nothing useful to an honest caller.
    """
    readable = collections_readable(user, api_key)
    if not slugs:
        return readable
    wanted = list(dict.fromkeys(str(slug) for slug in slugs))
    found = set(readable.filter(slug__in=wanted).values_list("slug", flat=True))
    for slug in wanted:
        if slug not in found:
            raise PermissionDenied(COLLECTION_FORBIDDEN_MESSAGE.format(slug=slug))
    return readable.filter(slug__in=wanted)


def collection_ids_get_readable_or_403(
    slugs: Iterable[str] | None, user, api_key: ApiKey | None = None
) -> list[int]:
    """The ids of `collections_get_readable_or_403`, in one statement (a search's path: the slug check and
    the ids come from the same rows), compiled once per kind of caller (rag_project/compiled_sql.py)."""
    found = dict(_readable_slugs_and_ids(user, api_key))
    if not slugs:
        return list(found.values())
    wanted = list(dict.fromkeys(str(slug) for slug in slugs))
    for slug in wanted:
        if slug not in found:
            raise PermissionDenied(COLLECTION_FORBIDDEN_MESSAGE.format(slug=slug))
    return [found[slug] for slug in wanted]


def _readable_slugs_and_ids(user, api_key: ApiKey | None) -> list[tuple[str, int]]:
    """(slug, id) of every collection `collections_readable(user, api_key)` admits, in its order. The
    queryset is compiled with stand-in ids, once per shape of caller: superuser or not, with a key or not,
    the key narrowed or not (the only things that change its SQL)."""
    if not _may_read_any(user, api_key):
        return []
    narrowed = bool(api_key and api_key.collections_narrowed)
    shape = ("readable_slugs_and_ids", bool(user.is_superuser), api_key is not None, narrowed)

    def build() -> QuerySet:
        stand_in_user = get_user_model()(pk=STAND_IN_USER, is_active=True, is_superuser=user.is_superuser)
        stand_in_key = None
        if api_key is not None:
            stand_in_key = ApiKey(pk=STAND_IN_KEY, user_id=STAND_IN_USER, collections_narrowed=narrowed)
        return collections_readable(stand_in_user, stand_in_key).values_list("slug", "pk")

    sql, params = queryset_compiled(shape, build)
    ids = {STAND_IN_USER: user.pk, STAND_IN_KEY: api_key.pk if api_key is not None else None}
    return rows_fetch(sql, params_bound(params, ids))


def documents_readable(user, api_key: ApiKey | None = None) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collections_readable(user, api_key))


def chunks_readable(user, api_key: ApiKey | None = None) -> QuerySet[Chunk]:
    return Chunk.objects.filter(document__collection__in=collections_readable(user, api_key))


def document_get_readable_or_404(document_id, user, api_key: ApiKey | None = None) -> Document:
    """The document (with `chunk_count`) if the caller may read it; 404 otherwise, the same 404 as a
    missing document."""
    try:
        return (
            documents_readable(user, api_key)
            .select_related("collection")
            .annotate(chunk_count=Count("chunks"))
            .get(pk=int(document_id))
        )
    except (Document.DoesNotExist, TypeError, ValueError) as exc:
        raise Http404("No such document.") from exc


def ingest_jobs_readable(user, api_key: ApiKey | None = None) -> QuerySet[IngestJob]:
    """Jobs of the collections the caller may read (following a job shows document counts, no text)."""
    return IngestJob.objects.filter(collection__in=collections_readable(user, api_key))


def ingest_job_get_readable_or_404(job_id, user, api_key: ApiKey | None = None) -> IngestJob:
    """The job if the caller may read its collection; 404 otherwise, the same 404 as a missing job."""
    try:
        return (
            ingest_jobs_readable(user, api_key)
            .select_related("collection", "created_by", "cancelled_by")
            .get(pk=int(job_id))
        )
    except (IngestJob.DoesNotExist, TypeError, ValueError) as exc:
        raise Http404("No such ingest job.") from exc


def chunk_get_readable_or_404(chunk_id, user, api_key: ApiKey | None = None, *, document_id=None) -> Chunk:
    """The chunk (of `document_id`, when given) if the caller may read it; 404 otherwise."""
    try:
        queryset = chunks_readable(user, api_key).select_related("document", "document__collection")
        if document_id is not None:
            queryset = queryset.filter(document_id=int(document_id))
        return queryset.get(pk=int(chunk_id))
    except (Chunk.DoesNotExist, TypeError, ValueError) as exc:
        raise Http404("No such passage.") from exc


# --- lists (each narrowed by the functions above) ---------------------------------------------------------


def collection_list(user, api_key: ApiKey | None = None) -> QuerySet[Collection]:
    return collections_readable(user, api_key).order_by("name")


def document_list(
    user,
    api_key: ApiKey | None = None,
    *,
    collection: Collection | None = None,
    status: str | None = None,
    job_id: int | None = None,
) -> QuerySet[Document]:
    """Readable documents, newest first, without their text; `collection` comes from
    `collection_get_readable_or_403` (naming an unreadable one is a 403, never an empty list). A job's
    documents are those of it the caller may read (a job has one collection, so all or none)."""
    documents = documents_readable(user, api_key)
    if collection is not None:
        documents = documents.filter(collection=collection)
    if status:
        documents = documents.filter(status=status)
    if job_id is not None:
        documents = documents.filter(job_id=job_id)
    return documents.select_related("collection").defer("text").order_by("-created_at", "-id")


def ingest_job_list(
    user, api_key: ApiKey | None = None, *, collection: Collection | None = None
) -> QuerySet[IngestJob]:
    """Readable jobs, newest first; `collection` comes from `collection_get_readable_or_403`."""
    jobs = ingest_jobs_readable(user, api_key)
    if collection is not None:
        jobs = jobs.filter(collection=collection)
    return jobs.select_related("collection", "created_by", "cancelled_by").order_by("-created_at", "-id")


def chunk_list(document: Document) -> QuerySet[Chunk]:
    """A document's passages in order (the caller got `document` from `document_get_readable_or_404`)."""
    return Chunk.objects.filter(document=document).defer("search_vector").order_by("ordinal")
