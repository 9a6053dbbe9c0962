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

Answers that read the database (``register_admitted``: a mailbox's list and one message, ``mailboxes.views``; a
handshake's state, polled by its client, ``handshake.views``) are
served the same way one step further in, inside the admission bound (``core.admission``: it bounds the database
connections a process holds) and with Django's request signals around them (so a kept connection is checked and
released as for any request). Their URLs are matched by Django's own resolver, and a query string is the
answer's to judge.
"""

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, ResolverMatch, resolve, reverse
from django.utils.module_loading import import_string
from prometheus_client import Counter

logger = logging.getLogger(__name__)
# Whether the early answer answered: an operator's hit ratio (a lookup answered early costs about a third of one
# Django answers), and the bench's proof that it measured the early answer. Bounded labels: the URL's name (only a
# request a registered URL took is counted), three outcomes.
ANSWERS = Counter(
    "mns_early_answers",
    "Requests of a URL with an early answer, by route (the URL pattern's name) and outcome: early (answered before "
    "Django: from the cache or the one-statement read, a 304, or a refusal), missed (Django answered), failed (the "
    "early answer raised; Django answered).",
    ["route", "outcome"],
)

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
_admitted: dict[str, tuple[Answer, tuple[str, ...]]] = {}
# What DRF's content negotiation answers with its JSON renderer, unparameterised (the API's only renderer).
JSON_RANGES = {"*/*", "application/*", "application/json"}


class Missed(Exception):
    """Raised by an early answer that cannot answer this request: Django answers it."""


def register(view_name: str, answer: Answer, *, argument: str) -> None:
    """Answer the URL named ``view_name`` (``"registry:name"``, whose one argument is ``argument``) with
    ``answer(request, **kwargs)`` before Django when it can; ``answer`` raises ``Missed`` when it cannot, and
    must answer as the view itself would."""
    _answers[view_name] = (answer, argument)


def register_admitted(view_name: str, answer: Answer, *, arguments: tuple[str, ...]) -> None:
    """Answer the URL named ``view_name`` (whose arguments are ``arguments``) with ``answer(request, **kwargs)``
    inside the admission bound, where it may use the database, when it can (a plain ``GET`` without a body; any
    query string); ``answer`` raises ``Missed`` when it cannot, and must answer as the view itself would."""
    _admitted[view_name] = (answer, arguments)


def limits_counted(request: HttpRequest, view: type[Any]) -> None:
    """Count the request under ``view``'s rate limits (one round trip) for an admitted early answer, and hand them
    on to the view, which answers if the early answer misses: the request is counted once. ``Missed`` if a limit
    refuses it: the view answers 429 from what was counted."""
    from core import throttling

    request.user = None  # what DRF's request.user is before a credential is checked (UNAUTHENTICATED_USER)
    throttles = [throttle() for throttle in view.throttle_classes]
    throttling.count_together(throttles, request, view)
    throttling.hand_on(request)  # whatever happens next, a request the view answers is not counted again
    if not all(throttle.allow_request(request, view) for throttle in throttles):
        raise Missed


_ALLOW: dict[type[Any], str] = {}


def drf_answer(data: object, view: type[Any], headers: dict[str, str]) -> HttpResponse:
    """What DRF's JSON renderer and ``finalize_response`` make of ``data`` for ``view`` (a 200)."""
    from rest_framework.renderers import JSONRenderer

    if view not in _ALLOW:
        instance = view()
        instance.setup(HttpRequest())  # as ``as_view`` does: a view with ``get`` also answers ``HEAD``
        _ALLOW[view] = ", ".join(instance.allowed_methods)
    response = HttpResponse(JSONRenderer().render(data), content_type="application/json", headers=headers)
    response["Allow"] = _ALLOW[view]
    return response


def plain_json(accept: str) -> bool:
    """Whether DRF's negotiation would pick its JSON renderer, with no parameters, for this ``Accept``: an early
    answer is that renderer's bytes."""
    if ";" in accept:
        return False
    return not accept.strip() or any(item.strip() in JSON_RANGES for item in accept.split(","))


class EarlyAnswers:
    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self._routes: dict[str, tuple[ResolverMatch, str, Answer]] | None = None
        self._chain: Callable[[HttpRequest], HttpResponse] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.tried(environ):
            return self.app(environ, start_response)
        return self.serve(environ, start_response)

    def tried(self, environ: dict[str, Any]) -> bool:
        return (
            environ.get("REQUEST_METHOD") == "GET"
            and not environ.get("QUERY_STRING")
            and environ.get("CONTENT_LENGTH", "0") in ("", "0")
            and environ.get("PATH_INFO", "").startswith(self.prefixes())
        )

    def serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Its own copy: WSGIRequest rewrites PATH_INFO decoded, which Django would decode again on a miss.
        request = WSGIRequest(environ.copy())
        try:
            response = self.chain()(request)
        except Exception as exc:  # Missed, or a failure Django will meet and answer as it does
            missed = isinstance(exc, Missed)
            if not missed:
                logger.warning("early answer failed, Django answers: %s", type(exc).__name__, exc_info=True)
            _count(request, "missed" if missed else "failed")
            from core.throttling import HANDED_ON

            if HANDED_ON in request.META:
                environ[HANDED_ON] = request.META[HANDED_ON]
            return self.app(environ, start_response)
        _count(request, "early")
        status = f"{response.status_code} {response.reason_phrase}"
        headers = [*response.items(), *(("Set-Cookie", c.output(header="")) for c in response.cookies.values())]
        start_response(status, headers)
        self.respond(response)
        return [response.content]

    def respond(self, response: HttpResponse) -> None:
        """What is done with an early answer once it is handed to the server (nothing: it holds nothing)."""

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


def _count(request: HttpRequest, outcome: str) -> None:
    """Count the request under the URL an early answer took it for; one no registered URL took (another path
    under the same prefix, or one shed before it was matched) is not counted."""
    if request.resolver_match is not None:
        ANSWERS.labels(request.resolver_match.view_name, outcome).inc()


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


class AdmittedAnswers(EarlyAnswers):
    """The early answers that read the database: inside the admission bound, around Django's handler."""

    def tried(self, environ: dict[str, Any]) -> bool:
        return (
            environ.get("REQUEST_METHOD") == "GET"
            and environ.get("CONTENT_LENGTH", "0") in ("", "0")
            and environ.get("PATH_INFO", "").startswith(self.prefixes())
        )

    def serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # As Django's handler: the request signals check the kept database connection before and release what
        # needs releasing after (``close_old_connections``, the query log); on a miss Django's handler sends its own.
        signals.request_started.send(sender=WSGIHandler, environ=environ)
        return super().serve(environ, start_response)

    def respond(self, response: HttpResponse) -> None:
        response._handler_class = WSGIHandler
        response.close()  # sends request_finished, as the WSGI server's close of Django's answer does

    def _answer(self, request: HttpRequest) -> HttpResponse:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            raise Missed from None
        if match.view_name not in _admitted:
            raise Missed
        request.resolver_match = match
        return _admitted[match.view_name][0](request, **match.kwargs)

    @property
    def routes(self) -> dict[str, Any]:
        """Where each registered URL starts, up to its first argument (a first filter; Django's resolver decides)."""
        if self._routes is None:
            self._routes = {}
            for view_name, (_, arguments) in _admitted.items():
                url = reverse(view_name, kwargs=dict.fromkeys(arguments, _PLACEHOLDER))
                self._routes[url.partition(_PLACEHOLDER)[0]] = None
        return self._routes


def served_admitted(app: WSGIApp) -> WSGIApp:
    """``app`` (Django's handler) with the registered admitted early answers in front."""
    return AdmittedAnswers(app) if _admitted else app
