"""A bounded queue in front of the application, per web process: ``MNS_WEB_ADMIT`` threads run requests, at most
``MNS_WEB_QUEUE`` more wait for one of them, and a request beyond those is answered 503 + ``Retry-After`` at once,
before Django sees it.

It is what refuses early under gunicorn's ``gthread`` workers (gunicorn.conf.py): each process runs more threads
(``MNS_WEB_THREADS``) than it admits and queues, so a request beyond the bound always finds a spare thread, which
refuses it with a prepared answer (no request object, no middleware, no database), instead of the request waiting
in the listen backlog until a sync worker is free to refuse it (``core.middleware.QueueTimeShedMiddleware``).

The admitted requests run on the process's own ``MNS_WEB_ADMIT`` threads, not on whichever gunicorn thread took
them (that one waits for the answer): Django keeps a database connection per thread, so a process holds at most
``MNS_WEB_ADMIT`` connections however many threads gunicorn runs, as a sync worker holds one. The answer is read
whole on that thread and closed there (Django's end-of-request connection handling runs where the connection
lives), so a streamed response is held in memory: the gateway's answers are small JSON, and its largest (a message,
a static file) is bounded by the request limits. The running limit bounds what competes for the database and the
interpreter, so the requests served keep their latency; the short queue takes a burst without refusing it. The
node's hooks (Maxima messages, coin events) are never refused here: the node does not post an event again after a
refusal (the Maxima hook has its own database timeout). ``MNS_WEB_ADMIT=0`` turns it off (each gunicorn thread then
runs its own requests).
"""

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
NEVER_REFUSED = ("/maxima/hook/", "/onchain/hook/")  # the node posts each event once: a refusal would lose it


class Admission:
    def __init__(self, app: WSGIApp, *, admit: int, queue: int) -> None:
        self.app, self.bound = app, admit + queue
        self.runners = ThreadPoolExecutor(max_workers=admit, thread_name_prefix="admitted")
        self.inside = 0  # running or waiting, under self.lock
        self.lock = threading.Lock()
        self.refusal = _refusal()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(NEVER_REFUSED):
            return self._admitted(environ, start_response)
        with self.lock:
            if self.inside >= self.bound:
                status, headers, body = self.refusal
                start_response(status, list(headers))
                return [body]
            self.inside += 1
        try:
            return self._admitted(environ, start_response)
        finally:
            with self.lock:
                self.inside -= 1

    def _admitted(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self.runners.submit(self._run, environ, start_response).result()

    def _run(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        result = self.app(environ, start_response)
        try:
            return [b"".join(result)]
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def _refusal() -> tuple[str, list[tuple[str, str]], bytes]:
    """The answer to a refused request, made once: the same 503 the queue-time shedding gives."""
    from core.errors import overloaded

    response = overloaded()
    return f"{response.status_code} {response.reason_phrase}", list(response.items()), response.content


def admitted(app: WSGIApp) -> WSGIApp:
    """``app`` behind the bounded queue that the settings ask for (itself when ``MNS_WEB_ADMIT`` is 0)."""
    from django.conf import settings

    if not settings.MNS_WEB_ADMIT:
        return app
    return Admission(app, admit=settings.MNS_WEB_ADMIT, queue=settings.MNS_WEB_QUEUE)
