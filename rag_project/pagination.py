"""List pagination for every API list: `?limit=&offset=`, with `page_size` accepted as another name
for `limit` (people reach for it first; it used to be silently ignored) and a ceiling on both."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination


class CitablePagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000

    def get_limit(self, request):
        if self.limit_query_param not in request.query_params and "page_size" in request.query_params:
            self.limit_query_param = "page_size"
        return super().get_limit(request)


def paginated_response(request, view, queryset, serializer_class):
    """One page of `queryset` as {count, next, previous, results}, for APIViews that are not generic."""
    paginator = CitablePagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
