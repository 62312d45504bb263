"""Project-wide API conventions: list pagination and the admin's name."""

from __future__ import annotations

import pytest
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from rag_project.pagination import CitablePagination


def page(query: str, items: int = 1500) -> list[int]:
    request = Request(APIRequestFactory().get(f"/api/documents{query}"))
    return CitablePagination().paginate_queryset(list(range(items)), request)


def test_page_size_is_honoured_as_another_name_for_limit():
    assert page("?page_size=1") == [0]
    assert page("?page_size=2&offset=3") == [3, 4]
    assert page("?limit=3&page_size=2") == [0, 1, 2]  # limit wins when both are given
    assert len(page("")) == 50
    assert len(page("?page_size=100000")) == 1000  # capped


def test_every_list_uses_the_project_pagination(settings):
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_PAGINATION_CLASS is CitablePagination


@pytest.mark.django_db
def test_the_admin_is_titled_citable(client):
    body = client.get("/admin/login/").content.decode()
    assert "Citable administration" in body
    assert "Django administration" not in body
