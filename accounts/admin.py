"""Admin for API keys. The raw key is shown once, in a message, right after it is created."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from accounts.forms import RateLimitedAdminAuthenticationForm
from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke, scopes_normalize

# The admin sign-in gets the same failed-attempt limit as the page's.
admin.site.login_form = RateLimitedAdminAuthenticationForm


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: the user's own rights (ingest and admin only for staff users).",
    )

    class Meta:
        model = ApiKey
        fields = ["user", "name", "scopes", "collections", "collections_narrowed", "expires_at"]

    def clean(self):
        cleaned = super().clean()
        user = cleaned.get("user") or getattr(self.instance, "user", None)
        if user is not None:
            try:
                cleaned["scopes"] = scopes_normalize(cleaned.get("scopes"), user=user)
            except ValidationError as exc:
                self.add_error("scopes", exc)
        if cleaned.get("collections"):
            cleaned["collections_narrowed"] = True
        return cleaned


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = [
        "prefix",
        "name",
        "user",
        "scopes_display",
        "collections_display",
        "last_used_at",
        "revoked",
        "expires_at",
        "created_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix", "user__username", "user__email"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]
    list_select_related = ["user"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request).prefetch_related("collections")
        # Staff who are not superusers see and manage only their own keys.
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # A key never changes hands: moving it to another user would hand over that user's rights.
            fields.append("user")
        return fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user" and not request.user.is_superuser:
            # Otherwise staff could mint a key acting as a superuser.
            kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
            kwargs["initial"] = request.user.pk
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "collections" and not request.user.is_superuser:
            # The collections this user administers, as the collection admin decides (the readable ones):
            # accounts never imports ingestion (see ingestion/selectors.py).
            collection_admin = self.admin_site.get_model_admin(db_field.related_model)
            kwargs["queryset"] = collection_admin.get_queryset(request)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="scopes")
    def scopes_display(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes) if obj.scopes else "all (user's rights)"

    @admin.display(description="collections")
    def collections_display(self, obj: ApiKey) -> str:
        names = [collection.slug for collection in obj.collections.all()]
        if names:
            return ", ".join(names)
        return "none" if obj.collections_narrowed else "all readable"

    @admin.display(boolean=True, description="revoked", ordering="revoked_at")
    def revoked(self, obj: ApiKey) -> bool:
        return obj.revoked_at is not None

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # Created through the service so the raw key is generated, hashed, and shown exactly once.
        api_key, raw_key = api_key_create(
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data.get("scopes"),
            collections=None,
            expires_at=form.cleaned_data.get("expires_at"),
        )
        api_key.collections_narrowed = bool(form.cleaned_data.get("collections_narrowed"))
        api_key.save(update_fields=["collections_narrowed"])
        # The admin goes on with `obj` (save_m2m, the log entry, the redirect): make it that row.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(api_key, field.attname))
        obj._state.adding = False
        obj._state.db = api_key._state.db
        messages.warning(
            request,
            format_html("API key created. Copy it now, it will not be shown again: <code>{}</code>", raw_key),
        )

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)
