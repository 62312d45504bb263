"""The read-only admin mixin as each admin page that uses it sets it: nobody adds or changes; who views and
who deletes as each page says."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from operations.models import IngestionHealth, ProviderUsageDay
from search.models import Conversation, Feedback, QueryLog
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# model: (staff may view, superuser may delete)
PAGES = {
    IngestionHealth: (True, False),
    ProviderUsageDay: (False, False),
    QueryLog: (False, True),
    Conversation: (False, True),
    Feedback: (False, True),
}


def request_as(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


@pytest.mark.parametrize("model", list(PAGES), ids=lambda m: m.__name__)
def test_each_read_only_page_lets_in_whom_it_says(model):
    staff_views, superuser_deletes = PAGES[model]
    model_admin = admin.site._registry[model]
    superuser = request_as(UserFactory(is_staff=True, is_superuser=True))
    staff = request_as(UserFactory(is_staff=True))
    inactive = request_as(UserFactory(is_staff=True, is_superuser=True, is_active=False))
    for request in (superuser, staff, inactive, request_as(AnonymousUser())):
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
    assert model_admin.has_view_permission(superuser) and model_admin.has_module_permission(superuser)
    assert model_admin.has_view_permission(staff) is staff_views
    assert model_admin.has_module_permission(staff) is staff_views
    assert not model_admin.has_view_permission(inactive)
    assert model_admin.has_delete_permission(superuser) is superuser_deletes
    assert not model_admin.has_delete_permission(staff)
    assert not model_admin.has_delete_permission(inactive)
