"""The relay for MiniDapps (docs/protocol.md, "The MiniDapp"): one POST that carries an API request, answered 200
with the API's own status and body.

A MiniDapp reaches the gateway through its user's node (``MDS.net``): the node makes the HTTP request itself, so no
CORS is involved, but (Minima's ``NETcommand``/``RPCClient``) it only makes GETs and POSTs, sends no header of the
MiniDapp's (no ``Authorization``, no ``Content-Type``: Java's default form type), and keeps the body of an HTTP 200
only: any other status is an empty GET body or a failed POST. So the MiniDapp POSTs here
``{"method", "path", "authorization"?, "json"?}`` and the request is run through the whole gateway (middleware,
throttles, authentication, the view) exactly as if it had come by itself; the answer is
``{"status": <its HTTP status>, "body": <its JSON body or null>}``. Only the API and the well-known policy can be
reached this way, never the relay itself, the admin or the Maxima webhook. This module imports no app: it
dispatches by URL.
"""

import io
import json
import re
import urllib.parse
from functools import cache
from typing import Any

from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import APIView
from core.errors import DomainError

METHODS = ("GET", "POST", "PATCH", "DELETE")
RELAYED = re.compile(r"^/(api/v1/[A-Za-z0-9._~/-]*|\.well-known/mns\.json)$")
NOT_RELAYED = ("/api/v1/relay",)
KEYS = {"method", "path", "authorization", "json"}
# What the relayed request keeps of the relay's own headers: who the client is (rate limits) and how it reached us
# (links). Nothing else, cookies least of all: a staff login never rides on a relayed request.
KEPT_HEADERS = ("HTTP_HOST", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_USER_AGENT")


def _invalid(detail: str) -> DomainError:
    return DomainError("relay_invalid", detail, status=400)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@cache
def _handler() -> BaseHandler:
    """Django's request handler with the project's middleware, built once (as the WSGI handler builds its own)."""
    handler = BaseHandler()
    handler.load_middleware()
    return handler


def parse_relayed(raw: bytes) -> dict[str, Any]:
    """The relayed request, checked: a JSON object with a method, a path (with its query) and optional
    authorization and json; anything else is ``relay_invalid``."""
    try:
        request = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _invalid("The relay takes a JSON object.") from None
    if not isinstance(request, dict) or not {"method", "path"} <= request.keys() or request.keys() - KEYS:
        raise _invalid("The relay takes exactly: method, path, and optionally authorization and json.")
    if request["method"] not in METHODS:
        raise _invalid(f"method: one of {', '.join(METHODS)}.")
    path = request["path"]
    if not isinstance(path, str) or len(path) > 2000:
        raise _invalid("path: the API path, with its query.")
    route = urllib.parse.unquote(path.split("?", 1)[0])  # judged as Django will route it
    if not RELAYED.match(route) or route.rstrip("/") in NOT_RELAYED or "/.." in route or "//" in route:
        raise _invalid("path: only the API (/api/v1/…) and /.well-known/mns.json can be relayed.")
    authorization = request.get("authorization")
    if authorization is not None and (not isinstance(authorization, str) or not authorization.isprintable()):
        raise _invalid("authorization: the Authorization header's value, as text.")
    return request


def relayed_request(outer: Request, request: dict[str, Any]) -> WSGIRequest:
    """A request of its own for the relayed one, seen as coming from the relay's client."""
    route, _, query = request["path"].partition("?")
    body = b"" if "json" not in request else json.dumps(request["json"]).encode()
    environ = {key: value for key, value in outer.META.items() if not key.startswith("HTTP_")}
    environ.update({key: outer.META[key] for key in KEPT_HEADERS if key in outer.META})
    environ.update(
        {
            "REQUEST_METHOD": request["method"],
            # WSGI's PATH_INFO is the decoded path, its bytes as latin-1 (PEP 3333).
            "PATH_INFO": urllib.parse.unquote_to_bytes(route).decode("latin-1"),
            "SCRIPT_NAME": "",
            "QUERY_STRING": query,
            "CONTENT_TYPE": "application/json" if body else "",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_ACCEPT": "application/json",
            "wsgi.input": io.BytesIO(body),
        }
    )
    if request.get("authorization"):
        environ["HTTP_AUTHORIZATION"] = request["authorization"]
    return WSGIRequest(environ)


class RelaySerializer(serializers.Serializer):
    method = serializers.ChoiceField(METHODS)
    path = serializers.CharField(
        help_text="The API path with its query, e.g. /api/v1/mailboxes/alice/messages?limit=50"
    )
    authorization = serializers.CharField(required=False, help_text="The Authorization header, e.g. MNS-Session …")
    json = serializers.JSONField(required=False, help_text="The request's JSON body.")


class RelayView(APIView):
    """Run one API request sent as a POST body (for MiniDapps, whose node can send no headers and reads only 200s)."""

    @extend_schema(
        request=RelaySerializer,
        responses={
            200: inline_serializer("Relayed", {"status": serializers.IntegerField(), "body": serializers.JSONField()})
        },
    )
    def post(self, request: Request) -> Response:
        relayed = parse_relayed(request._request.body)  # raw: the node labels its POST as a form
        response = _handler().get_response(relayed_request(request, relayed))
        body = None
        if response.content and "json" in response.get("Content-Type", ""):
            body = json.loads(response.content)
        return Response({"status": response.status_code, "body": body}, headers={"Cache-Control": "no-store"})
