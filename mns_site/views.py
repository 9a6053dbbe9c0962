from django.http import HttpRequest, JsonResponse

from core.errors import json_error


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return json_error("csrf_failed", "The request was refused: its CSRF check failed.", 403)
