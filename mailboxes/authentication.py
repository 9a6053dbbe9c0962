"""DRF's side of the access token (``Authorization: MNS-Token <token_id>:<secret>``), and the one permission every
mailbox endpoint uses: a handshake session for the URL's name and one of the view's scopes, or that mailbox's token.

A view declares ``required_scopes``: either a set, or a dict by HTTP method. The access token grants every scope
on its own mailbox (it stands for a fresh handshake of any purpose); a view that must not take it says
``token_allowed = False``. Refusals: 401 ``not_authenticated`` without credentials, 401 ``token_invalid``/
``token_revoked`` or the session's own 401s, 403 ``session_out_of_scope``/``token_out_of_scope``.
"""

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from core.errors import DomainError
from handshake import services as handshake_services
from handshake.authentication import SessionTokenAuthentication
from handshake.models import Session
from mailboxes import services
from mailboxes.models import AccessToken, Mailbox
from mns_client.protocol.names import normalise

SCHEME = "MNS-Token"


def token_credentials_of(request: HttpRequest) -> str | None:
    """The ``<token_id>:<secret>`` of an ``Authorization: MNS-Token …`` header, if the request has one."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != SCHEME.lower():
        return None
    return credentials.strip()


class AccessTokenAuthentication(BaseAuthentication):
    """``request.auth`` is the ``AccessToken``; ``request.user`` is None."""

    def authenticate(self, request: Request) -> tuple[None, AccessToken] | None:
        credentials = token_credentials_of(request)
        if credentials is None:
            return None
        return None, services.access_token_authenticate(credentials=credentials)

    def authenticate_header(self, request: Request) -> str:
        return SCHEME


AUTHENTICATION = [SessionTokenAuthentication, AccessTokenAuthentication]


def mailbox_of_credential(request: Request, name: str) -> Mailbox | None:
    """The mailbox the request's credential came with, if it is the normalised ``name``'s (the permission checked
    that the credential is for ``name``); None when it came without one (then the caller reads it)."""
    if isinstance(request.auth, AccessToken):
        mailbox = request.auth.mailbox
    elif isinstance(request.auth, Session):
        # Loaded with the session (``MailboxView.session_related``); None: no mailbox here for this record.
        mailbox = getattr(request.auth.record, "mailbox", None)
    else:
        return None
    return mailbox if mailbox is not None and mailbox.record.name == name else None


class MailboxAccess(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        scopes = getattr(view, "required_scopes", None)
        if isinstance(scopes, dict):
            if request.method not in scopes:  # OPTIONS, or a method the view does not serve
                raise exceptions.MethodNotAllowed(request.method)
            scopes = scopes[request.method]
        if not scopes or "name" not in view.kwargs:
            raise ImproperlyConfigured(f"{type(view).__name__} needs required_scopes and a <name> in its URL")
        name = normalise(view.kwargs["name"])
        if isinstance(request.auth, AccessToken):
            if not getattr(view, "token_allowed", True):
                raise DomainError("session_required", "This needs a handshake session, not the token.", status=403)
            services.access_token_check_scope(token=request.auth, name=name)
            return True
        if isinstance(request.auth, Session):
            handshake_services.session_check_scope(session=request.auth, name=name, purposes=set(scopes))
            return True
        return False


class AccessTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes the access token."""

    target_class = AccessTokenAuthentication
    name = "MNSToken"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "MNS-Token <token_id>:<secret> (the secret is in the blob the owner's node opens).",
        }
