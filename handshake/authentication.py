"""DRF's side of handshake sessions: ``Authorization: MNS-Session <token>``, and a scope check per endpoint.

A view that takes a session::

    class MessagesView(APIView):
        authentication_classes = [SessionTokenAuthentication]
        permission_classes = [HasSessionScope]
        required_scopes = {"read"}

    def get(self, request, name): ...   # request.auth is the handshake.models.Session

``HasSessionScope`` also requires the session's name to be the URL's ``name`` (normalised). Without a token the
answer is 401 ``not_authenticated`` with ``WWW-Authenticate: MNS-Session``; a bad, revoked or expired token is
401 ``session_invalid``/``session_revoked``/``session_expired``; another name or purpose is 403
``session_out_of_scope``. ``Bearer`` is accepted as a synonym of ``MNS-Session``, so a token works the same on
every endpoint that takes one (the registry's statements view reads ``Bearer``).
"""

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from core.errors import DomainError
from handshake import services
from handshake.models import Session
from mns_client.protocol.names import normalise

SCHEME = "MNS-Session"
SCHEMES = {SCHEME.lower(), "bearer"}


def session_token(request: Request) -> str | None:
    """The token of an ``Authorization: MNS-Session <token>`` (or ``Bearer <token>``) header, if there is one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() not in SCHEMES or not token.strip():
        return None
    return token.strip()


class SessionTokenAuthentication(BaseAuthentication):
    """Authenticates a request by its handshake session: ``request.auth`` is the ``Session``, ``request.user`` None.

    A view's ``session_related`` names relations of the session's record it reads anyway (``select_related``
    paths, such as ``record__mailbox``): they are loaded with the session, in the same query."""

    def authenticate(self, request: Request) -> tuple[None, Session] | None:
        token = session_token(request)
        if token is None:
            return None
        view = (getattr(request, "parser_context", None) or {}).get("view")
        related = getattr(view, "session_related", ())
        return None, services.session_for_token(token=token, related=related)

    def authenticate_header(self, request: Request) -> str:
        return SCHEME


class SessionTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes ``SessionTokenAuthentication``."""

    target_class = SessionTokenAuthentication
    name = "MNS-Session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "MNS-Session <token>, the token of POST /api/v1/handshakes/{id}/session.",
        }


class HasSession(BasePermission):
    """Any live session (for endpoints about the session itself)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, Session)


class HasSessionScope(HasSession):
    """A live session for the URL's ``name`` opened for one of the view's ``required_scopes``."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not super().has_permission(request, view):
            return False
        scopes = getattr(view, "required_scopes", None)
        if not scopes or "name" not in view.kwargs:
            raise ImproperlyConfigured(f"{type(view).__name__} needs required_scopes and a <name> in its URL")
        services.session_check_scope(session=request.auth, name=normalise(view.kwargs["name"]), purposes=set(scopes))
        return True


def require_session(request: Request, name: str, purposes: set[str]) -> None:
    """The registry's gate on changing a name over REST (registered in ``apps.py``): a session for ``name`` opened
    for one of ``purposes`` (``Authorization: MNS-Session <token>``)."""
    token = session_token(request)
    if token is None:
        raise DomainError(
            "session_required",
            "Changing a name needs a handshake session (Authorization: MNS-Session <token>).",
            status=401,
        )
    services.session_authorise(token=token, name=name, purposes=purposes)
