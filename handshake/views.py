"""The handshake's REST API: ask for a challenge, poll it, pick the session up; and the session about itself.

The answer itself never comes over REST: only the owner's node, over Maxima (``handlers.py``).
"""

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle

from core.api import NO_STORE, THROTTLES, APIView, error_response
from core.fastpath import Missed, drf_answer, limits_counted, plain_json
from core.throttling import PerIPThrottle
from handshake import selectors, services
from handshake.authentication import HasSession, SessionTokenAuthentication
from handshake.serializers import (
    ChallengeIssuedSerializer,
    ChallengeRequestSerializer,
    ChallengeStatusSerializer,
    PickupSerializer,
    SessionIssuedSerializer,
    SessionSerializer,
    challenge_status,
)


class ChallengesView(APIView):
    """Start a handshake: a code for the owner's node to send to the gateway's Maxima address."""

    throttle_classes = THROTTLES
    throttle_scope = "write"

    @extend_schema(
        operation_id="handshakes_create",
        request=ChallengeRequestSerializer,
        responses={
            201: ChallengeIssuedSerializer,
            403: error_response("name_suspended"),
            404: error_response("name_not_found: nobody holds the name."),
            409: error_response("name_pending: not confirmed yet; name_not_pending: register is for a pending name."),
            429: error_response("too_many_challenges: the name has too many open handshakes; throttled."),
            503: error_response("gateway_not_ready: the gateway does not know its Maxima address yet."),
        },
    )
    def post(self, request: Request) -> Response:
        data = ChallengeRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.challenge_issue(**data.validated_data, client_address=BaseThrottle().get_ident(request))
        return Response(ChallengeIssuedSerializer(issued).data, status=201, headers=NO_STORE)


class ChallengeView(APIView):
    """A handshake's state, for polling: pending, verified, expired, or failed with a reason."""

    throttle_classes = THROTTLES
    throttle_scope = "lookup"

    @extend_schema(
        operation_id="handshakes_retrieve", responses={200: ChallengeStatusSerializer, 404: error_response("")}
    )
    def get(self, request: Request, challenge_id: str) -> Response:
        challenge = selectors.challenge_known(challenge_id=challenge_id)
        return Response(challenge_status(challenge), headers=NO_STORE)


def challenge_early(request: HttpRequest, challenge_id: str) -> HttpResponse:
    """``ChallengeView.get`` answered before DRF (``core.fastpath``, registered in ``apps.py``): a client polls it
    several times in every handshake. The view's rate limits, the challenge in one statement, the same body and
    headers; anything else (a query string, an ``Accept`` DRF could negotiate differently, a refusal, no such
    challenge) raises ``Missed`` and the view answers, with the limits already counted handed on to it."""
    if request.META.get("QUERY_STRING") or not plain_json(request.META.get("HTTP_ACCEPT", "")):
        raise Missed  # DRF reads ?format= and negotiates
    limits_counted(request, ChallengeView)
    challenge = selectors.challenge_find(challenge_id=challenge_id)
    if challenge is None:
        raise Missed  # the view's 404
    return drf_answer(challenge_status(challenge), ChallengeView, NO_STORE)


class SessionPickupView(APIView):
    """Exchange the verifier for the session token, once, after the owner's node answered."""

    throttle_classes = THROTTLES
    throttle_scope = "write"

    @extend_schema(
        operation_id="handshakes_session_create",
        request=PickupSerializer,
        responses={
            201: SessionIssuedSerializer,
            403: error_response("verifier_wrong"),
            404: error_response("handshake_not_found"),
            409: error_response("handshake_pending, handshake_failed, session_already_issued"),
            410: error_response("handshake_expired"),
        },
    )
    def post(self, request: Request, challenge_id: str) -> Response:
        data = PickupSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        opened = services.session_open(challenge_id=challenge_id, **data.validated_data)
        return Response(SessionIssuedSerializer(opened).data, status=201, headers=NO_STORE)


class CurrentSessionView(APIView):
    """The session in the Authorization header: what it allows (GET), or end it now (DELETE)."""

    authentication_classes = [SessionTokenAuthentication]
    permission_classes = [HasSession]
    throttle_classes = [PerIPThrottle]

    @extend_schema(operation_id="session_retrieve", responses={200: SessionSerializer, 401: error_response("")})
    def get(self, request: Request) -> Response:
        return Response(SessionSerializer(request.auth).data, headers=NO_STORE)

    @extend_schema(operation_id="session_destroy", responses={204: None, 401: error_response("")})
    def delete(self, request: Request) -> Response:
        services.session_revoke(session=request.auth, by="owner")
        return Response(status=204)
