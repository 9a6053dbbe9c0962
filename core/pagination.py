from rest_framework.pagination import CursorPagination as _CursorPagination


class CursorPagination(_CursorPagination):
    """Stable pages under concurrent inserts, and no way to jump to an arbitrary offset."""

    ordering = "-id"
    page_size_query_param = "limit"
    max_page_size = 200
