"""Baseline views for the benchmarks, mounted only when MNS_BENCH=true: what the hot paths are measured against."""

from django.http import HttpRequest, JsonResponse


def bare_json(request: HttpRequest) -> JsonResponse:
    """The cheapest Django answer: no database, a small JSON body."""
    return JsonResponse({"ok": True, "name": "alice"})
