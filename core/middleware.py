import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.admission import NEVER_REFUSED
from core.errors import json_error, overloaded
from core.logging import request_id_var

logger = logging.getLogger("mns.request")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


# Clock skew guard: a stamp further in the past than this is not a queue, it is a wrong clock.
_SANE_QUEUE_SECONDS = 60.0


def queued_seconds(stamp: str, now: float) -> float | None:
    """How long ago a front proxy's ``X-Request-Start`` stamp was taken: ``t=`` then seconds (nginx's ``$msec``,
    ``1700000000.123``), milliseconds or microseconds since the epoch; None for anything else, a stamp in the
    future or one more than a minute old (a clock off, not a queue)."""
    value = stamp.strip().removeprefix("t=")
    if not value.isascii() or not 0 < len(value) <= 32 or not value.replace(".", "", 1).isdigit():
        return None
    number = float(value)
    seconds = number / 1_000_000 if number > 1e14 else number / 1000 if number > 1e11 else number
    queued = now - seconds
    return queued if 0 <= queued <= _SANE_QUEUE_SECONDS else None


class QueueTimeShedMiddleware:
    """Answers 503 + ``Retry-After`` at once to a request that waited longer than ``MNS_SHED_AFTER_MS`` for a
    worker, before anything else runs (no database, no cache, no log line).

    A sync worker takes one request at a time; past saturation the excess waits in the listen backlog, and every
    client's latency grows with the queue. The front proxy's stamp (``X-Request-Start``) says how long a request
    waited: refusing the stale ones costs microseconds each and drains the queue, so the requests that are served
    keep a bounded latency and the client is told when to come back. A client that sets the header itself can only
    get itself refused. Off when the setting is 0 or the request has no stamp. The node's hooks are never shed, as
    the admission queue never refuses them (``core.admission.NEVER_REFUSED``): the node posts each event once.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        after_ms = settings.MNS_SHED_AFTER_MS
        stamp = request.META.get("HTTP_X_REQUEST_START") if after_ms else None
        if stamp and not request.path_info.startswith(NEVER_REFUSED):
            queued = queued_seconds(stamp, time.time())
            if queued is not None and queued * 1000 > after_ms:
                return overloaded()
        return self.get_response(request)


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
