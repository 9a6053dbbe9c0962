import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from mns_site.errors import json_error
from mns_site.logging import request_id_var

logger = logging.getLogger("mns.request")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class RequestIdMiddleware:
    """Gives each request an id (the client's ``X-Request-ID`` if it is sane) and logs one line when it ends."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        request.id = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(request.id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request.id
            self._log(request, response, started)
            return response
        finally:
            request_id_var.reset(token)

    def _log(self, request: HttpRequest, response: HttpResponse, started: float) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        path = request.path.replace(settings.MAXIMA_HOOK_SECRET, "<secret>")
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        size = len(response.content) if not response.streaming else -1
        logger.log(
            level,
            "%s %s %s %.2fms",
            request.method,
            path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "bytes": size,
            },
        )


class RequestSizeLimitMiddleware:
    """Refuses a body larger than the path allows with 413 before anything reads it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        if not raw.isdigit():
            return json_error("bad_request", "Content-Length is not a number.", 400)
        if int(raw) > limit_for(request.path):
            return json_error("request_too_large", f"The body may be at most {limit_for(request.path)} bytes.", 413)
        return self.get_response(request)


def limit_for(path: str) -> int:
    for prefix, limit in settings.MNS_REQUEST_LIMITS.items():
        if path.startswith(prefix):
            return limit
    return settings.MNS_MAX_REQUEST_BYTES
