"""The one read-only admin mixin: records that the admin shows and nobody adds or edits there."""

from __future__ import annotations


class ReadOnlyAdminMixin:
    """No add, no change (every field read-only on the detail page). Who may look: superusers, or every
    active staff member with `superuser_only = False`. Delete: nobody, or superusers with
    `superuser_can_delete = True`. Mix in before `admin.ModelAdmin`."""

    superuser_only = True
    superuser_can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_view_permission(self, request, obj=None):
        user = request.user
        return user.is_active and (user.is_superuser if self.superuser_only else user.is_staff)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        user = request.user
        return self.superuser_can_delete and user.is_active and user.is_superuser
