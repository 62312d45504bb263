"""Who may read what. Every read path takes the caller's collections from `collections_readable`."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from ingestion.models import Collection


def collections_readable(user, api_key=None) -> QuerySet[Collection]:
    """Collections `user` may read, narrowed to the API key's collections when it has any."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Collection.objects.none()
    if user.is_superuser:
        readable = Collection.objects.all()
    else:
        readable = Collection.objects.filter(
            Q(is_public=True) | Q(reader_users=user) | Q(reader_groups__user=user)
        ).distinct()
    if api_key is not None and api_key.collections.exists():
        readable = readable.filter(pk__in=api_key.collections.values("pk"))
    return readable


def collection_ids_readable(user, api_key=None) -> list[int]:
    return list(collections_readable(user, api_key).values_list("pk", flat=True))
