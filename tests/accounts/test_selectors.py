"""The readability selector: the one decision every read path uses."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from accounts.services import api_key_revoke
from ingestion.models import Document
from ingestion.selectors import (
    chunk_get_readable_or_404,
    collection_get_readable_or_403,
    collection_ids_get_readable_or_403,
    collection_ids_readable,
    collections_get_readable_or_403,
    collections_readable,
    document_get_readable_or_404,
)
from tests.factories import ApiKeyFactory, ChunkFactory, CollectionFactory, GroupFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    hr, finance = GroupFactory(name="hr"), GroupFactory(name="finance")
    people = {
        "hr_person": UserFactory(username="hr_person", groups=[hr]),
        "fin_person": UserFactory(username="fin_person", groups=[finance]),
        "both": UserFactory(username="both", groups=[hr, finance]),
        "nobody": UserFactory(username="nobody"),
        "legal_reader": UserFactory(username="legal_reader"),
        "root": UserFactory(username="root", is_superuser=True, is_staff=True),
        "staff": UserFactory(username="staff", is_staff=True),
    }
    collections = {
        "public": CollectionFactory(slug="public", is_public=True),
        "hr": CollectionFactory(slug="hr", reader_groups=[hr]),
        "finance": CollectionFactory(slug="finance", reader_groups=[finance]),
        "legal": CollectionFactory(slug="legal", reader_users=[people["legal_reader"]]),
        # Readable both as a member of hr and individually: must appear once.
        "shared": CollectionFactory(
            slug="shared", reader_groups=[hr, finance], reader_users=[people["hr_person"]]
        ),
    }
    return people, collections


def slugs(queryset) -> set[str]:
    return set(queryset.values_list("slug", flat=True))


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("hr_person", {"public", "hr", "shared"}),
        ("fin_person", {"public", "finance", "shared"}),
        ("both", {"public", "hr", "finance", "shared"}),
        ("nobody", {"public"}),
        ("legal_reader", {"public", "legal"}),
        ("root", {"public", "hr", "finance", "legal", "shared"}),
        # Staff is not superuser: the admin flag grants no reading.
        ("staff", {"public"}),
    ],
)
def test_users(world, who, expected):
    people, _ = world
    readable = collections_readable(people[who])
    assert slugs(readable) == expected
    # No duplicates even when a collection is reachable through several grants.
    assert readable.count() == len(expected)
    assert len(collection_ids_readable(people[who])) == len(expected)


def test_anonymous_and_inactive(world):
    people, _ = world
    assert slugs(collections_readable(AnonymousUser())) == set()
    assert slugs(collections_readable(None)) == set()
    people["root"].is_active = False
    assert slugs(collections_readable(people["root"])) == set()


def test_key_narrowing_intersects_with_the_user(world):
    people, c = world
    key = ApiKeyFactory(user=people["hr_person"], collections=[c["hr"], c["finance"]])
    # finance is named on the key but the user can't read it: narrowing never widens.
    assert slugs(collections_readable(people["hr_person"], key)) == {"hr"}
    unnarrowed = ApiKeyFactory(user=people["hr_person"])
    assert slugs(collections_readable(people["hr_person"], unnarrowed)) == {"public", "hr", "shared"}
    super_key = ApiKeyFactory(user=people["root"], collections=[c["legal"]])
    assert slugs(collections_readable(people["root"], super_key)) == {"legal"}


def test_narrowed_key_never_widens_when_its_collections_go(world):
    people, c = world
    key = ApiKeyFactory(user=people["hr_person"], collections=[c["hr"]])
    c["hr"].delete()
    key.refresh_from_db()
    assert key.collections.count() == 0
    assert slugs(collections_readable(people["hr_person"], key)) == set()


def test_collections_added_later_narrow_the_key(world):
    people, c = world
    key = ApiKeyFactory(user=people["hr_person"])
    key.collections.add(c["public"])
    key.refresh_from_db()
    assert key.collections_narrowed
    key.collections.clear()
    assert slugs(collections_readable(people["hr_person"], key)) == set()


def test_explicitly_narrowed_to_nothing(world):
    people, _ = world
    key = ApiKeyFactory(user=people["hr_person"], collections=[])
    assert slugs(collections_readable(people["hr_person"], key)) == set()


def test_revoked_key_or_foreign_key_reads_nothing(world):
    people, _ = world
    key = ApiKeyFactory(user=people["hr_person"])
    assert slugs(collections_readable(people["fin_person"], key)) == set()
    api_key_revoke(api_key=key)
    assert slugs(collections_readable(people["hr_person"], key)) == set()


def test_selector_is_one_sql_statement_when_used_as_a_filter(world):
    people, _ = world
    key = ApiKeyFactory(user=people["hr_person"], collections=[])
    readable = collections_readable(people["hr_person"], key)
    with CaptureQueriesContext(connection) as queries:
        list(Document.objects.filter(collection__in=readable))
    assert len(queries) == 1


def test_named_collection_403_whether_or_not_it_exists(world):
    people, c = world
    assert collection_get_readable_or_403("hr", people["hr_person"]) == c["hr"]
    with pytest.raises(PermissionDenied) as unreadable:
        collection_get_readable_or_403("finance", people["hr_person"])
    with pytest.raises(PermissionDenied) as missing:
        collection_get_readable_or_403("does-not-exist", people["hr_person"])
    # Same exception, same wording pattern: the response cannot tell the two apart.
    assert str(unreadable.value) == str(missing.value).replace("does-not-exist", "finance")


def test_several_named_collections(world):
    people, c = world
    user = people["hr_person"]
    assert slugs(collections_get_readable_or_403(None, user)) == {"public", "hr", "shared"}
    assert slugs(collections_get_readable_or_403(["hr", "public"], user)) == {"hr", "public"}
    with pytest.raises(PermissionDenied):
        collections_get_readable_or_403(["hr", "finance"], user)
    key = ApiKeyFactory(user=user, collections=[c["hr"]])
    with pytest.raises(PermissionDenied):
        collections_get_readable_or_403(["public"], user, key)


def test_named_collection_ids_in_one_statement(world, django_assert_num_queries):
    people, c = world
    user = people["hr_person"]
    with django_assert_num_queries(1):
        assert collection_ids_get_readable_or_403(["hr", "public"], user) == [c["hr"].pk, c["public"].pk]
    assert set(collection_ids_get_readable_or_403(None, user)) == {c["public"].pk, c["hr"].pk, c["shared"].pk}
    with pytest.raises(PermissionDenied):
        collection_ids_get_readable_or_403(["hr", "finance"], user)
    key = ApiKeyFactory(user=user, collections=[c["hr"]])
    with pytest.raises(PermissionDenied):
        collection_ids_get_readable_or_403(["public"], user, key)


def test_the_compiled_ids_are_the_querysets_for_every_kind_of_caller(world):
    """collection_ids_get_readable_or_403 runs collections_readable's SQL compiled once per shape of caller
    with stand-in ids: every caller, with every kind of key, must get what the queryset itself gives, also
    when another caller of the same shape compiled it first."""
    people, c = world
    writer = UserFactory(username="writer")
    c["drafts"] = CollectionFactory(slug="drafts", writer_users=[writer], writer_groups=["finance"])
    people["writer"] = writer
    revoked = ApiKeyFactory(user=people["both"])
    api_key_revoke(api_key=revoked)
    callers = []
    for user in people.values():
        callers += [
            (user, None),
            (user, ApiKeyFactory(user=user)),  # not narrowed
            (user, ApiKeyFactory(user=user, collections=[c["hr"], c["legal"], c["drafts"]])),
            (user, ApiKeyFactory(user=user, collections=[])),  # narrowed to nothing
        ]
    callers += [(people["both"], revoked), (people["both"], ApiKeyFactory(user=people["nobody"]))]
    for user, key in callers + callers[::-1]:
        expected = list(collections_readable(user, key).values_list("pk", flat=True))
        assert collection_ids_get_readable_or_403(None, user, key) == expected, (user.username, key)
    # Spot checks that the comparison means something: the shapes do differ.
    assert set(collection_ids_get_readable_or_403(None, writer)) == {c["public"].pk, c["drafts"].pk}
    assert set(collection_ids_get_readable_or_403(None, people["fin_person"])) == {
        c["public"].pk, c["finance"].pk, c["shared"].pk, c["drafts"].pk,
    }  # fmt: skip
    assert collection_ids_get_readable_or_403(None, people["both"], revoked) == []


def test_objects_are_404_when_unreadable(world):
    people, c = world
    chunk = ChunkFactory(document__collection=c["finance"])
    doc = chunk.document
    assert document_get_readable_or_404(doc.pk, people["fin_person"]) == doc
    assert chunk_get_readable_or_404(chunk.pk, people["fin_person"], document_id=doc.pk) == chunk
    for bad_call in (
        lambda: document_get_readable_or_404(doc.pk, people["hr_person"]),
        lambda: document_get_readable_or_404(999_999_999, people["fin_person"]),
        lambda: document_get_readable_or_404("not-a-number", people["fin_person"]),
        lambda: chunk_get_readable_or_404(chunk.pk, people["hr_person"]),
        lambda: chunk_get_readable_or_404(chunk.pk, people["fin_person"], document_id=doc.pk + 1),
    ):
        with pytest.raises(Http404):
            bad_call()
