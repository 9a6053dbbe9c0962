from typing import Any

from django.http import HttpRequest
from rest_framework.pagination import CursorPagination as _CursorPagination
from rest_framework.response import Response


class CursorPagination(_CursorPagination):
    """Stable pages under concurrent inserts, and no way to jump to an arbitrary offset."""

    ordering = "-id"
    page_size_query_param = "limit"
    max_page_size = 200

    def first_page(self, rows: list[Any], request: HttpRequest, page_size: int) -> Response:
        """The answer ``get_paginated_response`` gives for the first page (no cursor) of ``page_size``, from
        ``rows``: the newest ``page_size + 1`` items (by ``ordering``) read by the caller's own query (an early
        answer's), with DRF's own links. The same state ``paginate_queryset`` sets when no cursor is given."""
        self.request, self.page_size, self.cursor = request, page_size, None
        self.base_url = request.build_absolute_uri()
        self.ordering = (self.ordering,) if isinstance(self.ordering, str) else tuple(self.ordering)
        self.page = list(rows[:page_size])
        self.has_next = len(rows) > len(self.page)
        self.next_position = self._get_position_from_instance(rows[-1], self.ordering) if self.has_next else None
        self.has_previous, self.previous_position = False, None
        return self.get_paginated_response(self.page)
