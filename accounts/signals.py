"""Receivers: clearing sign-in failures on success (the backend counts them), and keeping narrowed API
keys narrowed."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import m2m_changed, pre_delete
from django.dispatch import receiver

from accounts.login_limits import login_failures_reset
from accounts.models import ApiKey


@receiver(user_logged_in, dispatch_uid="accounts.logged_in")
def on_logged_in(sender, request, user, **kwargs):
    login_failures_reset(request, user.get_username())


@receiver(m2m_changed, sender=ApiKey.collections.through, dispatch_uid="accounts.key_collections")
def on_key_collections_changed(sender, instance, action, reverse, pk_set, **kwargs):
    # Choosing collections narrows a key for good; removing them later must not widen it.
    if action != "post_add" or not pk_set:
        return
    if reverse:
        ApiKey.objects.filter(pk__in=pk_set, collections_narrowed=False).update(collections_narrowed=True)
    elif not instance.collections_narrowed:
        instance.collections_narrowed = True
        ApiKey.objects.filter(pk=instance.pk).update(collections_narrowed=True)


# By label: accounts never imports ingestion (see ingestion/selectors.py).
@receiver(pre_delete, sender="ingestion.Collection", dispatch_uid="accounts.collection_deleted")
def on_collection_deleted(sender, instance, **kwargs):
    ApiKey.objects.filter(collections=instance, collections_narrowed=False).update(collections_narrowed=True)
