"""The mailboxes' REST API: read and delete (option 1: the client decrypts), forward (option 2), settings, the
access token, and the optional REST submission of deliveries. (Registering a name is ``registration.views``.)

Every mailbox endpoint takes a handshake session for its name (``MNS-Session``) with the scope it names, or the
mailbox's access token (``MNS-Token``); see ``mailboxes.authentication``.
"""

import re

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import NO_STORE, THROTTLES, APIView, ListAPIView, error_response
from core.errors import DomainError
from core.fastpath import Missed, drf_answer, limits_counted, plain_json
from core.pagination import CursorPagination
from handshake import services as handshake_services
from handshake.authentication import session_token
from mailboxes import selectors, services
from mailboxes.authentication import AUTHENTICATION, MailboxAccess, mailbox_of_credential, token_credentials_of
from mailboxes.models import Mailbox, Message
from mailboxes.serializers import (
    AccessTokenSerializer,
    AckedSerializer,
    AckSerializer,
    ForwardSerializer,
    ForwardSummarySerializer,
    MailboxSerializer,
    MailboxSettingsSerializer,
    MessageMetaSerializer,
    MessageSerializer,
    ReceiptQuerySerializer,
    ReceiptSerializer,
    StoredSerializer,
    SubmitSerializer,
)
from mns_client.protocol.mailbox import delivery_id_of
from mns_client.protocol.names import NameRefused, normalise

NAME = OpenApiParameter("name", str, OpenApiParameter.PATH, description="The name in any spelling.")
AUTH_ERRORS = {
    401: error_response("not_authenticated, session_*, token_invalid, token_revoked"),
    403: error_response("session_out_of_scope, token_out_of_scope, name_suspended"),
    404: error_response("mailbox_not_found, message_not_found"),
}


class MailboxView(APIView):
    """Base of the endpoints of one mailbox: a session or its token, and ``self.mailbox()``."""

    authentication_classes = AUTHENTICATION
    permission_classes = [MailboxAccess]
    session_related = ("record__mailbox",)  # the mailbox comes with the session (``mailbox_of_credential``)

    def mailbox(self) -> Mailbox:
        """The mailbox of the URL's name, if it is the credential holder's: a name released and registered again
        keeps its old mailbox until the new owner's registration replaces it, and that one is not theirs."""
        name = normalise(self.kwargs["name"])
        mailbox = mailbox_of_credential(self.request, name) or selectors.mailbox_of(name=name)
        if getattr(self.request.auth, "owner_key", None) != mailbox.owner_key:
            raise DomainError("mailbox_not_yours", "This mailbox belongs to another owner of the name.", status=403)
        return mailbox


class MailboxSettingsView(MailboxView):
    """The mailbox: quota and use, retention, forwarding, block and allow lists (GET); change them (PATCH)."""

    required_scopes = {"GET": {"read", "forward", "manage"}, "PATCH": {"manage"}}

    @extend_schema(
        operation_id="mailboxes_retrieve", parameters=[NAME], responses={200: MailboxSerializer, **AUTH_ERRORS}
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(MailboxSerializer(self.mailbox()).data, headers=NO_STORE)

    @extend_schema(
        operation_id="mailboxes_settings_update",
        parameters=[NAME],
        request=MailboxSettingsSerializer,
        responses={
            200: MailboxSerializer,
            400: error_response("retention_invalid, sender_on_both_lists"),
            **AUTH_ERRORS,
        },
    )
    def patch(self, request: Request, name: str) -> Response:
        data = MailboxSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        mailbox = services.mailbox_configure(mailbox=self.mailbox(), **data.validated_data)
        return Response(MailboxSerializer(mailbox).data, headers=NO_STORE)


class MessagesView(MailboxView, ListAPIView):
    """The mailbox's messages, newest first, metadata only (cursor pages; ``limit`` up to 200)."""

    required_scopes = {"read"}
    serializer_class = MessageMetaSerializer

    @extend_schema(operation_id="mailboxes_messages_list", parameters=[NAME])
    def get(self, request: Request, name: str) -> Response:
        return super().get(request, name)

    def get_queryset(self) -> QuerySet[Message]:
        if getattr(self, "swagger_fake_view", False):
            return Message.objects.none()
        return selectors.messages_of(mailbox=self.mailbox())


class MessageView(MailboxView):
    """One message with its ciphertext, for the client to decrypt (GET); delete it (DELETE)."""

    required_scopes = {"read"}

    @extend_schema(
        operation_id="mailboxes_messages_retrieve", parameters=[NAME], responses={200: MessageSerializer, **AUTH_ERRORS}
    )
    def get(self, request: Request, name: str, uid: str) -> Response:
        message = selectors.message_of(mailbox=self.mailbox(), uid=uid)
        return Response(MessageSerializer(message).data, headers=NO_STORE)

    @extend_schema(operation_id="mailboxes_messages_destroy", parameters=[NAME], responses={204: None, **AUTH_ERRORS})
    def delete(self, request: Request, name: str, uid: str) -> Response:
        services.message_delete(mailbox=self.mailbox(), uid=uid)
        return Response(status=204)


# --- Early answers (``core.fastpath.register_admitted``, in ``apps.py``) -------------------------------------------
# A read of a mailbox with its session or access token, the owner's client's most frequent request, answered
# without DRF: the credential, its mailbox and the messages in one statement (``selectors.credential_read``) and
# the rate limit in one round trip, then the bytes DRF would render. Every check of the view is made (the same
# services); anything else (a cursor, another Accept, any refusal) raises ``Missed`` and the view answers it, with
# the limit already counted.

_LIMIT = re.compile(r"limit=([1-9][0-9]{0,8})")


def messages_early(request: HttpRequest, name: str) -> HttpResponse:
    """``MessagesView.get``'s first page (no cursor; ``?limit=`` or the default size)."""
    query = request.META.get("QUERY_STRING", "")
    limit = _LIMIT.fullmatch(query)
    if query and limit is None:
        raise Missed
    paginator = CursorPagination()
    size = min(int(limit.group(1)), paginator.max_page_size) if limit else paginator.page_size
    read = _early_read(request, MessagesView, name, newest=size + 1)
    page = paginator.first_page(read.messages, request, size)
    meta = MessageMetaSerializer()
    page.data["results"] = [meta.to_representation(message) for message in page.data["results"]]
    return drf_answer(page.data, MessagesView, {})


def message_early(request: HttpRequest, name: str, uid: str) -> HttpResponse:
    """``MessageView.get``."""
    if request.META.get("QUERY_STRING") or not selectors.message_uid_usable(uid):  # DRF reads ?format=
        raise Missed  # the view's 404
    read = _early_read(request, MessageView, name, uid=uid)
    if not read.messages:
        raise Missed  # the view's 404
    return drf_answer(MessageSerializer().to_representation(read.messages[0]), MessageView, NO_STORE)


def _early_read(request: HttpRequest, view: type[MailboxView], name: str, **query: object) -> selectors.CredentialRead:
    """The view's limits counted (handed on to the view if it answers after all), then the credential and what
    ``query`` asks (``selectors.credential_read``) if the credential may read this mailbox; ``Missed`` otherwise."""
    if not plain_json(request.META.get("HTTP_ACCEPT", "")):
        raise Missed  # DRF negotiates, and answers 406 when it cannot
    session, credentials = session_token(request), token_credentials_of(request)
    if session is None and credentials is None:
        raise Missed  # no credential: the view's 401
    limits_counted(request, view)
    try:
        if session is not None:  # as DRF's authentication classes are tried: the session first
            digest = handshake_services.session_token_digest(session)
            read = selectors.credential_read(session_digest=digest, **query)
            credential = handshake_services.session_live(session=read and read.credential, digest=digest)
            handshake_services.session_check_scope(
                session=credential, name=normalise(name), purposes=view.required_scopes
            )
        else:
            token_id, secret = services.access_token_credentials(credentials)
            read = selectors.credential_read(token_id=token_id, **query)
            credential = services.access_token_live(token=read and read.credential, secret=secret)
            services.access_token_check_scope(token=credential, name=normalise(name))
    except (DomainError, NameRefused):
        raise Missed from None  # the view's refusal
    if read.mailbox is None or read.mailbox.owner_key != credential.owner_key:
        raise Missed  # the view's 404 (or the peers that keep it) or 403 ``mailbox_not_yours``
    return read


class AckView(MailboxView):
    """Delete many messages at once (the ones a client has read)."""

    required_scopes = {"read"}

    @extend_schema(
        operation_id="mailboxes_messages_ack",
        parameters=[NAME],
        request=AckSerializer,
        responses={200: AckedSerializer, **AUTH_ERRORS},
    )
    def post(self, request: Request, name: str) -> Response:
        data = AckSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        deleted = services.messages_ack(mailbox=self.mailbox(), uids=data.validated_data["ids"])
        return Response(AckedSerializer({"deleted": deleted}).data)


class ForwardView(MailboxView):
    """Forward every stored message to the owner's Maxima address (option 2); each is marked forwarded once the
    owner's node took it (``delivered:true``)."""

    required_scopes = {"forward"}

    @extend_schema(
        operation_id="mailboxes_forward",
        parameters=[NAME],
        request=ForwardSerializer,
        responses={202: ForwardSummarySerializer, 409: error_response("address_missing"), **AUTH_ERRORS},
    )
    def post(self, request: Request, name: str) -> Response:
        data = ForwardSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        summary = services.mailbox_forward(mailbox=self.mailbox(), **data.validated_data)
        return Response(ForwardSummarySerializer(summary).data, status=202)


class AccessTokenView(MailboxView):
    """The live access token's blob, for the owner's node to open with ``maxdecrypt`` (GET); revoke it (DELETE)."""

    required_scopes = {"GET": {"register", "manage"}, "DELETE": {"manage"}}

    @extend_schema(
        operation_id="mailboxes_access_token_retrieve",
        parameters=[NAME],
        responses={200: AccessTokenSerializer, **AUTH_ERRORS},
    )
    def get(self, request: Request, name: str) -> Response:
        token = selectors.access_token_live(mailbox=self.mailbox())
        return Response(AccessTokenSerializer(token).data, headers=NO_STORE)

    @extend_schema(
        operation_id="mailboxes_access_token_destroy", parameters=[NAME], responses={204: None, **AUTH_ERRORS}
    )
    def delete(self, request: Request, name: str) -> Response:
        services.access_token_revoke(mailbox=self.mailbox(), by="owner")
        return Response(status=204)


class AccessTokenRotateView(MailboxView):
    """Replace the access token: the old one stops working now; the new blob is answered and sent over Maxima."""

    required_scopes = {"manage", "rotate"}

    @extend_schema(
        operation_id="mailboxes_access_token_rotate",
        parameters=[NAME],
        request=None,
        responses={201: AccessTokenSerializer, **AUTH_ERRORS},
    )
    def post(self, request: Request, name: str) -> Response:
        token = services.access_token_issue(mailbox=self.mailbox())
        return Response(AccessTokenSerializer(token).data, status=201, headers=NO_STORE)


class SubmissionEnabled(BasePermission):
    """REST submission is off by default: answer 403 ``submission_disabled`` before reading the body."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not settings.MNS_REST_SUBMISSION:
            raise DomainError("submission_disabled", "This gateway takes deliveries over Maxima only.", status=403)
        return True


class SubmitView(APIView):
    """Deliver a message over REST, for senders without a node (off unless MNS_REST_SUBMISSION); the sender is
    not verified, and the same refusals as a Maxima delivery apply."""

    permission_classes = [SubmissionEnabled]
    throttle_classes = THROTTLES
    throttle_scope = "submit"

    def counted_keys(self, request: Request) -> list[tuple[str, int]]:
        # The delivery's own rate, counted with the view's limits (one round trip) where it is counted first; a
        # POST only, and given back by ``post`` when no delivery comes of it (a body refused).
        if request.method != "POST" or not settings.MNS_REST_SUBMISSION:
            return []
        key = services.submission_rate_key(self.kwargs["name"])
        return [] if key is None else [key]

    @extend_schema(
        operation_id="names_messages_create",
        parameters=[NAME],
        request=SubmitSerializer,
        responses={
            201: StoredSerializer,
            200: OpenApiResponse(StoredSerializer, description="This id was stored before: the same answer."),
            400: error_response("bad_scheme, invalid"),
            403: error_response("submission_disabled, suspended, blocked"),
            404: error_response("unknown_name"),
            413: error_response("too_large, request_too_large"),
            429: error_response("rate_limited, throttled"),
            507: error_response("over_quota"),
        },
    )
    def post(self, request: Request, name: str) -> Response:
        counted = self.counted[0] if self.counted else None
        try:
            data = SubmitSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            fields = data.validated_data
            stored = services.delivery_submit(  # keeps the count, or gives it back
                name=name,
                delivery_id=fields["id"],
                scheme=fields["scheme"],
                ciphertext=fields["ciphertext"],
                sender_key=fields.get("sender", ""),
                counted=counted,
            )
        finally:
            if counted is not None:  # no delivery came of it (a body refused, or anything raised): not counted
                counted.give_back()  # nothing once delivery_submit settled it
        return Response(StoredSerializer(stored).data, status=201 if stored.created else 200)


class ReceiptView(APIView):
    """The receipt the gateway queued for a delivery (``?sender=`` the delivering node's key), for a sender who cannot
    take Maxima messages itself (a web page). The delivery id is the sender's 192-bit secret, and the answer holds
    no ciphertext: only whether the message was stored, or why not."""

    throttle_classes = THROTTLES
    throttle_scope = "lookup"

    @extend_schema(
        operation_id="receipts_retrieve",
        parameters=[
            OpenApiParameter("delivery_id", str, OpenApiParameter.PATH, description="The sender's delivery id."),
            ReceiptQuerySerializer,
        ],
        responses={
            200: ReceiptSerializer,
            400: error_response("invalid"),
            404: error_response("receipt_not_found"),
            429: error_response("throttled"),
        },
    )
    def get(self, request: Request, delivery_id: str) -> Response:
        if delivery_id_of({"id": delivery_id}) is None:  # the form a delivery's id must have
            raise DomainError("invalid", "Not a delivery id.", fields={"delivery_id": ["16-64 of A-Z a-z 0-9 _ -."]})
        query = ReceiptQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = selectors.receipt_of(delivery_id=delivery_id, sender_key=query.validated_data["sender"])
        return Response(ReceiptSerializer(found).data, headers=NO_STORE)
