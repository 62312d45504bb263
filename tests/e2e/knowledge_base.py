"""A small knowledge base built through the real ingestion services (parse, chunk, embed on the stand-in).

Shared by the browser tests and the OpenAI-compatible API tests. Documents are ingested synchronously with
`document_ingest` so the tests need no worker; queueing is covered by the ingestion tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User

from ingestion.models import Collection, Document
from tests.factories import PASSWORD, CollectionFactory, UserFactory

HANDBOOK = """# Employee handbook

## Annual leave

Every full-time employee receives twenty-five days of annual leave per calendar year. Part-time employees
receive annual leave in proportion to their contracted hours. Unused annual leave of up to five days may be
carried over into the first quarter of the next year.

## Requesting leave

Annual leave requests are submitted through the HR portal at least two weeks before the first day of leave.
The line manager approves or declines each request within three working days.

## Sick leave

Employees who are ill notify their line manager before ten o'clock on the first day of absence. A doctor's
note is required from the fourth consecutive day of sick leave.

## Remote work

Employees may work remotely up to three days a week after agreeing a schedule with their line manager.
The company reimburses a desk chair and a monitor for the home office once every four years.
"""

SECURITY = """# Security guide

## Signing keys

The platform team rotates the signing keys every ninety days. Old signing keys stay valid for verification
for seven days after rotation so that tokens issued just before the rotation keep working.

## Passwords

Service passwords are stored in the vault and never in source control. The vault audits every read of a
secret and alerts the security team about reads outside working hours.
"""

SECRET = """# Board minutes

The board approved the acquisition of the Lighthouse company for twelve million euros on the third of March.
"""


@dataclass
class KnowledgeBase:
    reader: User
    outsider: User
    handbook_collection: Collection
    security_collection: Collection
    secret_collection: Collection
    handbook: Document
    security: Document
    secret: Document


def _ingest(collection: Collection, title: str, text: str, user: User) -> Document:
    from ingestion.services.documents import document_create
    from ingestion.services.pipeline import document_ingest

    document, _created = document_create(collection=collection, title=title, text=text, created_by=user)
    status = document_ingest(document.pk)
    document.refresh_from_db()
    assert document.status == Document.Status.READY, (status, document.status, document.error)
    assert document.chunks.count() > 0
    return document


def knowledge_base_build(settings) -> KnowledgeBase:
    """Two users: `reader` reads the handbook and security collections, `outsider` reads nothing.
    A third collection (`board`) is readable by nobody but the admin."""
    # Small chunks so a passage has neighbours to show around it.
    settings.RAG_CHUNK_TOKENS = 60
    settings.RAG_CHUNK_OVERLAP = 0.0
    admin = UserFactory(username="admin", password=PASSWORD, is_staff=True, is_superuser=True)
    reader = UserFactory(username="reader", password=PASSWORD)
    outsider = UserFactory(username="outsider", password=PASSWORD)
    handbook_collection = CollectionFactory(slug="handbook", name="Handbook", reader_users=[reader])
    security_collection = CollectionFactory(slug="security", name="Security", reader_users=[reader])
    secret_collection = CollectionFactory(slug="board", name="Board")
    return KnowledgeBase(
        reader=reader,
        outsider=outsider,
        handbook_collection=handbook_collection,
        security_collection=security_collection,
        secret_collection=secret_collection,
        handbook=_ingest(handbook_collection, "Employee handbook", HANDBOOK, admin),
        security=_ingest(security_collection, "Security guide", SECURITY, admin),
        secret=_ingest(secret_collection, "Board minutes", SECRET, admin),
    )
