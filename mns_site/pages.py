"""The gateway's own web pages: the front page at ``/`` and its icon at ``/favicon.ico``.

Server-rendered, no script: the page says what this gateway is, whether it works (the checks ``/api/v1/health``
runs, from the same per-process cache) and where to go next. It is served with a strict Content Security Policy
(nothing but this gateway's own style sheet and icon) and throttled per client address like the API.
"""

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.template.loader import render_to_string
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request

from core import health
from core.api import APIView
from mns_site.dapp import AnyAccept

FAVICON = Path(__file__).resolve().parent / "static" / "mns_site" / "favicon.ico"
PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class FrontPageView(APIView):
    """GET ``/``: what this gateway is, its status, and links to the Dapp, the API docs, the policy and health."""

    content_negotiation_class = AnyAccept

    @extend_schema(exclude=True)  # a web page, not part of the API
    def get(self, request: Request) -> HttpResponse:
        results = health.run_checks_cached()
        context = {
            "name": settings.MNS_GATEWAY_NAME,
            "version": settings.MNS_VERSION,
            "status": health.status_of(results),
            "checks": [(name, result.ok) for name, result in results.items()],
        }
        response = HttpResponse(render_to_string("mns_site/front.html", context, request=request))
        response["Content-Security-Policy"] = PAGE_POLICY
        response["Cache-Control"] = "no-store"
        return response


class FaviconView(APIView):
    """GET ``/favicon.ico``: the gateway's icon (browsers ask for it on every site), cached for a day."""

    content_negotiation_class = AnyAccept

    @extend_schema(exclude=True)
    def get(self, request: Request) -> FileResponse:
        response = FileResponse(FAVICON.open("rb"), content_type="image/x-icon")
        response["Cache-Control"] = "public, max-age=86400"
        return response
