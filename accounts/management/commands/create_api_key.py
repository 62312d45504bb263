"""`manage.py create_api_key USERNAME --name NAME [--scopes search,ask] [--collections slug,...]`.

The raw key is printed once, alone on the last line, so scripts can take it with `tail -n 1`.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from rag_project.commands import MigratedCommand


def _csv(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


class Command(MigratedCommand):
    help = "Create an API key for a user and print it once (last line)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'wiki bot'.")
        parser.add_argument(
            "--scopes", help="Comma-separated: search, ask, ingest, admin. Default: the user's own rights."
        )
        parser.add_argument(
            "--collections",
            help="Comma-separated collection slugs the key is narrowed to. Default: all readable.",
        )
        parser.add_argument("--expires-days", type=int, help="Expire the key after this many days.")

    def handle(self, *args, **options):
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: options["username"]})
        except user_model.DoesNotExist as exc:
            raise CommandError(f"No user named {options['username']!r}.") from exc
        if not user.is_active:
            raise CommandError(f"User {options['username']!r} is inactive.")

        slugs = _csv(options.get("collections"))
        collections = None
        if slugs is not None:
            if not slugs:
                raise CommandError("--collections needs at least one slug.")
            # The collection model through the key's relation: accounts never imports ingestion.
            collections_model = ApiKey.collections.field.related_model
            found = {c.slug: c for c in collections_model.objects.filter(slug__in=slugs)}
            missing = [slug for slug in slugs if slug not in found]
            if missing:
                raise CommandError(f"Unknown collection(s): {', '.join(missing)}.")
            collections = [found[slug] for slug in slugs]

        expires_at = None
        if options.get("expires_days") is not None:
            if options["expires_days"] <= 0:
                raise CommandError("--expires-days must be positive.")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])

        try:
            api_key, raw_key = api_key_create(
                user=user,
                name=options["name"],
                scopes=_csv(options.get("scopes")),
                collections=collections,
                expires_at=expires_at,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc

        scopes = ", ".join(api_key.scopes) if api_key.scopes else "all (the user's own rights)"
        narrowed = ", ".join(slugs) if slugs else "all the user may read"
        self.stdout.write(
            f"Created API key {api_key.name!r} (prefix {api_key.prefix}) for {user.get_username()}."
        )
        self.stdout.write(f"Scopes: {scopes}. Collections: {narrowed}.")
        if expires_at:
            self.stdout.write(f"Expires: {expires_at.isoformat()}.")
        self.stdout.write("Store it now; it is not shown again:")
        self.stdout.write(raw_key)
