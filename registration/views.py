"""Registering a name over REST: ``POST /api/v1/mailboxes`` holds the name and answers with the ``register``
handshake for the owner's node (the same registration arrives over Maxima in ``handlers.py``)."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from core.api import NO_STORE, THROTTLES, APIView, error_response
from registration import services
from registration.serializers import PendingRegistrationSerializer, RegisterSerializer


class MailboxesView(APIView):
    """Create a mailbox: hold the name, and answer with the ``register`` handshake for the owner's node."""

    throttle_classes = THROTTLES
    throttle_scope = "write"

    @extend_schema(
        operation_id="mailboxes_create",
        request=RegisterSerializer,
        responses={
            201: PendingRegistrationSerializer,
            400: error_response(
                "statement_invalid, signature_invalid, statement_wrong_gateway, address_invalid, invalid, "
                "chain_signature_invalid"
            ),
            403: error_response("owner_limit_reached"),
            409: error_response(
                "name_taken, name_confusable, name_reserved, name_held_on_chain (registered on chain by Minima's "
                "MNS: send chain_signature)"
            ),
            429: error_response("too_many_challenges, throttled"),
            503: error_response("gateway_not_ready, chain_unreadable"),
        },
    )
    def post(self, request: Request) -> Response:
        data = RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        client = BaseThrottle().get_ident(request)
        pending = services.mailbox_register(**data.validated_data, source="api", client_address=client)
        return Response(PendingRegistrationSerializer(pending).data, status=201, headers=NO_STORE)
