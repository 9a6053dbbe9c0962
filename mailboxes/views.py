"""The mailboxes' REST API: read and delete (option 1: the client decrypts), forward (option 2), settings, the
access token, and the optional REST submission of deliveries. (Registering a name is ``registration.views``.)

Every mailbox endpoint takes a handshake session for its name (``MNS-Session``) with the scope it names, or the
mailbox's access token (``MNS-Token``); see ``mailboxes.authentication``.
"""

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import NO_STORE, THROTTLES, APIView, ListAPIView, error_response
from core.errors import DomainError
from mailboxes import selectors, services
from mailboxes.authentication import AUTHENTICATION, MailboxAccess, mailbox_of_credential
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
from mns_client.protocol.names import normalise

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
        data = SubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        stored = services.delivery_submit(
            name=name,
            delivery_id=fields["id"],
            scheme=fields["scheme"],
            ciphertext=fields["ciphertext"],
            sender_key=fields.get("sender", ""),
        )
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
