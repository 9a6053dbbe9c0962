"""Serving the MNS Dapp (``dapp/``, built by ``make dapp``) at ``/app/``.

The page holds the user's box private key and decrypts their mail, so it is served with a strict Content Security
Policy: scripts, styles and images only from this gateway (no inline script; ``'wasm-unsafe-eval'`` lets libsodium
compile its WebAssembly), connections only to this gateway and to the users' own node RPC
(``MNS_DAPP_CONNECT_SRC``, loopback by default), no framing. Files whose name carries a content hash
(``name.<hash>.js``) are cached for a year; the others are revalidated on every load, so a new build shows at once.
When the Dapp is not built, ``/app/`` answers a page that says how to build it.
"""

import mimetypes
import re
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.utils.http import http_date
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request

from core.api import APIView
from core.errors import DomainError

HASHED = re.compile(r"\.[0-9a-f]{16,}\.[a-z0-9]+$")
SAFE_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".png": "image/png",
    ".json": "application/json",
}
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>MNS Dapp not built</title></head>
<body><h1>The MNS Dapp is not built on this gateway</h1>
<p>Run <code>make dapp</code> in the gateway's folder (it needs Node.js 20 and npm), then reload this page.</p>
</body></html>
"""


def content_security_policy() -> str:
    connect = " ".join(["'self'", *settings.MNS_DAPP_CONNECT_SRC])
    return (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class AnyAccept(BaseContentNegotiation):
    """Files are what they are: a browser's ``Accept: text/css`` must not turn into a 406."""

    def select_parser(self, request: Request, parsers: list) -> object:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list, format_suffix: str | None = None) -> tuple:
        return renderers[0], renderers[0].media_type


class DappView(APIView):
    """GET a file of the built Dapp (``index.html`` for ``/app/``); throttled per client address like the API."""

    content_negotiation_class = AnyAccept

    @extend_schema(exclude=True)  # a web page, not part of the API
    def get(self, request: Request, path: str = "") -> HttpResponse:
        root: Path = settings.MNS_DAPP_DIR
        index = root / "index.html"
        if not index.is_file():
            return self._headers(HttpResponse(NOT_BUILT, status=503, content_type="text/html; charset=utf-8"), "")
        name = path or "index.html"
        if not SAFE_PATH.fullmatch(name) or not (root / name).is_file():
            raise DomainError("not_found", "There is no such file in the Dapp.", status=404)
        file = root / name
        suffix = file.suffix.lower()
        content_type = TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type == "application/json":
            content_type += "; charset=utf-8"
        response = FileResponse(file.open("rb"), content_type=content_type)
        response["Last-Modified"] = http_date(file.stat().st_mtime)
        return self._headers(response, name)

    def _headers(self, response: HttpResponse, name: str) -> HttpResponse:
        response["Content-Security-Policy"] = content_security_policy()
        response["Cross-Origin-Opener-Policy"] = "same-origin"
        response["Cache-Control"] = "public, max-age=31536000, immutable" if HASHED.search(name) else "no-cache"
        return response
