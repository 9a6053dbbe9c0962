"""Answers from the cache before Django's full request: a view registers an early answer, served in front of the
admission queue (``core.admission``) and without URL dispatch to DRF, when the cache holds it.

The lookup of a name is the one such answer (``registry.views.lookup_early``): its rendered body and ETag are in
Redis (``registry.published``), read with the request's rate limits in one round trip. Everything else of a
Django answer is kept: the request runs through the gateway's own middleware that shape every answer (queue-time
shedding, the size limit, the request id and its log line, the request metrics, the security and frame headers,
``Content-Length``), in the order ``MIDDLEWARE`` gives them; the middleware that only matter to a view that reads a
session, a cookie, a form or a user (sessions, CSRF, auth, messages) and the static files are not run, since an
early answer reads none of them.

An early answer that misses (the name is not cached, the cache is down, anything it does not serve itself) raises
``Missed``, and the request goes on to Django unchanged; the rate limits it already counted are handed on in the
environ (``core.throttling.hand_on``), so a missed request is counted once. Only a plain ``GET`` with no query
string and no body is tried: a ``HEAD``, a ``?format=``, a body go to Django as they are.
"""

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.urls import ResolverMatch, resolve, reverse
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = Callable[..., HttpResponse]
# Middleware an early answer does not need: it reads no session, cookie, form or user, and is no static file.
NOT_RUN = {
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
}
_PLACEHOLDER = "MNSFASTPATHPLACEHOLDER"
_answers: dict[str, tuple[Answer, str]] = {}


class Missed(Exception):
    """Raised by an early answer that cannot answer this request: Django answers it."""


def register(view_name: str, answer: Answer, *, argument: str) -> None:
    """Answer the URL named ``view_name`` (``"registry:name"``, whose one argument is ``argument``) with
    ``answer(request, **kwargs)`` before Django when it can; ``answer`` raises ``Missed`` when it cannot, and
    must answer as the view itself would."""
    _answers[view_name] = (answer, argument)


class EarlyAnswers:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self._routes: dict[str, tuple[ResolverMatch, str, Answer]] | None = None
        self._chain: Callable[[HttpRequest], HttpResponse] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")
            or environ.get("CONTENT_LENGTH", "0") not in ("", "0")
            or not environ.get("PATH_INFO", "").startswith(self.prefixes())
        ):
            return self.app(environ, start_response)
        # Its own copy: WSGIRequest rewrites PATH_INFO decoded, which Django would decode again on a miss.
        request = WSGIRequest(environ.copy())
        try:
            response = self.chain()(request)
        except Exception as exc:  # Missed, or a failure Django will meet and answer as it does
            if not isinstance(exc, Missed):
                logger.warning("early answer failed, Django answers: %s", type(exc).__name__, exc_info=True)
            from core.throttling import HANDED_ON

            if HANDED_ON in request.META:
                environ[HANDED_ON] = request.META[HANDED_ON]
            return self.app(environ, start_response)
        status = f"{response.status_code} {response.reason_phrase}"
        headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
        start_response(status, headers)
        return [response.content]

    def prefixes(self) -> tuple[str, ...]:
        """Where each registered URL starts: its path up to its one argument."""
        return tuple(self.routes)

    def chain(self) -> Callable[[HttpRequest], HttpResponse]:
        """The gateway's middleware around the early answer, built once (``NOT_RUN`` left out)."""
        if self._chain is None:
            handler: Callable[[HttpRequest], HttpResponse] = self._answer
            for path in reversed(settings.MIDDLEWARE):
                if path not in NOT_RUN:
                    handler = import_string(path)(handler)
            self._chain = handler
        return self._chain

    def _answer(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        for prefix, (template, argument, answer) in self.routes.items():
            value = path[len(prefix) :]
            if path.startswith(prefix) and value and "/" not in value:  # what Django's <str:…> matches
                # The request metrics name the route by its match, as for any request.
                request.resolver_match = ResolverMatch(
                    template.func,
                    (),
                    {argument: value},
                    url_name=template.url_name,
                    app_names=template.app_names,
                    namespaces=template.namespaces,
                    route=template.route,
                )
                return answer(request, **{argument: value})
        raise Missed

    @property
    def routes(self) -> dict[str, tuple[ResolverMatch, str, Answer]]:
        if self._routes is None:
            self._routes = _routes()
        return self._routes


def _routes() -> dict[str, tuple[ResolverMatch, str, Answer]]:
    """Each registered URL's prefix, with the match Django makes of it and the early answer. A URL is only taken
    when it is its prefix and one ``<str:argument>`` (so a path is it when it is the prefix and one segment) and
    Django resolves such a path to the same view."""
    routes = {}
    for view_name, (answer, argument) in _answers.items():
        url = reverse(view_name, kwargs={argument: _PLACEHOLDER})
        template = resolve(url)
        if url.endswith(_PLACEHOLDER) and template.view_name == view_name and template.route.endswith(f":{argument}>"):
            routes[url.removesuffix(_PLACEHOLDER)] = (template, argument, answer)
        else:
            logger.warning("no early answer for %s: its URL is not a prefix and one <str:%s>", view_name, argument)
    return routes


def served_early(app: WSGIApp) -> WSGIApp:
    """``app`` with the registered early answers in front (itself when none is registered)."""
    return EarlyAnswers(app) if _answers else app
