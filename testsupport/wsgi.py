"""Requests through the real WSGI stack, for the tests of the answers given before Django (``core.fastpath``):
Django's own handler, counting the requests that reach it, and one request made and read in full."""

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from wsgiref.util import setup_testing_defaults

from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections


class Django:
    """Django's own WSGI handler, counting the requests that reach it."""

    def __init__(self) -> None:
        self.handler, self.reached = WSGIHandler(), 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.reached += 1
        return self.handler(environ, start_response)


@contextmanager
def django_handler() -> Iterator[Django]:
    """As Django's test client: a request does not close the test's database connection (its transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield Django()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def request(app: Any, path: str, *, method: str = "GET", query: str = "", **headers: str) -> tuple[int, dict, bytes]:
    """``app`` asked ``method path?query`` with ``headers`` (``X_Request_ID`` → ``HTTP_X_REQUEST_ID``): its status,
    headers and whole body."""
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query}
    environ["wsgi.input"] = io.BytesIO(b"")
    environ.update({"HTTP_" + key.upper(): value for key, value in headers.items()})
    setup_testing_defaults(environ)
    answered: list[Any] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answered.extend([status, headers])))
    return int(answered[0].split()[0]), dict(answered[1]), body
