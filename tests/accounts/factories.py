"""Small builders shared by tests/accounts and tests/security."""

from __future__ import annotations

import itertools

from django.contrib.auth.models import Group, User

from accounts.services import api_key_create
from ingestion.models import Collection

_counter = itertools.count(1)


def user_make(
    username: str | None = None, *, password: str = "correct horse battery staple", groups=(), **extra
):
    user = User.objects.create_user(username or f"user{next(_counter)}", password=password, **extra)
    for group in groups:
        user.groups.add(group if isinstance(group, Group) else Group.objects.get_or_create(name=group)[0])
    return user


def collection_make(slug: str, *, is_public: bool = False, groups=(), users=()) -> Collection:
    collection = Collection.objects.create(name=slug.upper(), slug=slug, is_public=is_public)
    for group in groups:
        collection.reader_groups.add(
            group if isinstance(group, Group) else Group.objects.get_or_create(name=group)[0]
        )
    for user in users:
        collection.reader_users.add(user)
    return collection


def key_make(user, *, scopes=None, collections=None, name: str = "test key", **extra):
    return api_key_create(user=user, name=name, scopes=scopes, collections=collections, **extra)


def bearer(raw_key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}
