"""The registry's REST API: exact-match lookups, rate-limited per client, and owner-signed changes.

Nothing here lists or enumerates names: every lookup is by one exact name (normalised first, so ``/names/ALICE``
answers for ``alice``) or by one exact owner key.
"""

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from core import throttling
from core.api import THROTTLES, APIView, ListAPIView, error_response
from core.errors import DomainError, throttled_answer
from core.fastpath import Missed, plain_json
from core.pagination import CursorPagination
from mns_client.protocol.names import NameRefused, normalise
from registry import gates, published, selectors, services
from registry.models import StatementRecord
from registry.serializers import (
    AvailabilitySerializer,
    NameRecordSerializer,
    OwnerNamesSerializer,
    OwnerQuerySerializer,
    SignedStatementSerializer,
    StatementEntrySerializer,
)

CACHE_CONTROL = "public, max-age=30"
LOOKUP_ALLOW = "GET, HEAD, OPTIONS"  # DRF's Allow for NameView (checked by the early answer's test)
# What a session must have been opened for, by statement op (the handshake's purposes, DESIGN §4). A transfer
# gives the name up, as a release does. An accept needs none: its signer is not the owner yet (no handshake can
# prove it), and the statement is its proof: signed by the very key the pending offer names.
SESSION_PURPOSES = {"update": {"rotate"}, "release": {"delete"}, "transfer": {"delete"}, "accept": set()}

NAME_PARAMETER = OpenApiParameter(
    "name", str, OpenApiParameter.PATH, description="The name in any spelling: it is normalised (NFKC, case-folded)."
)


class NameView(APIView):
    """A name's current record and the owner's signature over it, for the client to verify itself."""

    throttle_classes = THROTTLES
    throttle_scope = "lookup"

    @extend_schema(
        operation_id="names_retrieve",
        parameters=[
            NAME_PARAMETER,
            OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, description="A previous ETag."),
        ],
        responses={
            200: NameRecordSerializer,
            304: OpenApiResponse(description="Not modified: the ETag in If-None-Match is still current."),
            400: error_response("name_invalid, name_empty or name_too_long: the input is not a name."),
            403: error_response("name_suspended: the gateway's staff suspended this name."),
            404: error_response(
                "name_not_found: no such name; name_pending: being registered, not confirmed yet; "
                "name_reserved: reserved (built in, by staff, a look-alike of a reserved name, or 1-2 characters)."
            ),
            410: error_response("name_released: its owner released it; the signed release is in the history."),
        },
    )
    def get(self, request: Request, name: str) -> HttpResponse:
        entry = published.entry_of(self.cached)
        if entry is None:  # not cached (or no Redis): from the database, and kept for the next lookups
            name = normalise(name)
            record = selectors.record_published(name=name)
            entry = published.answer_of(record)
            published.store(name, *entry, self.cached)
        return _lookup_answer(request, *entry)

    def cache_keys(self, request: Request) -> list[str]:
        """The published entry of the name, fetched with the rate limits (``registry.published``)."""
        try:
            return published.cache_keys(normalise(self.kwargs["name"]))
        except NameRefused:  # not a name: refused in ``get``
            return []


class AvailabilityView(APIView):
    """Whether a name could be registered now: its normal form, and if not, why (always 200)."""

    throttle_classes = THROTTLES
    throttle_scope = "lookup"

    @extend_schema(operation_id="names_availability", parameters=[NAME_PARAMETER], responses=AvailabilitySerializer)
    def get(self, request: Request, name: str) -> Response:
        availability = selectors.name_availability(raw=name)
        return Response(AvailabilitySerializer(availability).data, headers={"Cache-Control": "no-cache"})


class HistoryPagination(CursorPagination):
    ordering = "seq"


class HistoryView(ListAPIView):
    """A name's signed statements, oldest first, for a client to check the whole chain."""

    throttle_classes = THROTTLES
    throttle_scope = "lookup"
    serializer_class = StatementEntrySerializer
    pagination_class = HistoryPagination

    @extend_schema(operation_id="names_history", parameters=[NAME_PARAMETER])
    def get(self, request: Request, name: str) -> Response:
        return super().get(request, name)

    def get_queryset(self) -> QuerySet[StatementRecord]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator
            return StatementRecord.objects.none()
        record = selectors.record_known(name=normalise(self.kwargs["name"]))
        return selectors.statements_of(record=record)


class OwnerNamesView(APIView):
    """The names one owner key holds (reverse lookup). Without ``owner`` it refuses: names are never listed."""

    throttle_classes = THROTTLES
    throttle_scope = "lookup"

    @extend_schema(operation_id="names_of_owner", parameters=[OwnerQuerySerializer], responses=OwnerNamesSerializer)
    def get(self, request: Request) -> Response:
        query = OwnerQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        owner = query.validated_data["owner"]
        names = selectors.records_of_owner(owner_key=owner)
        return Response(OwnerNamesSerializer({"owner": owner, "names": names}).data)


class StatementsView(APIView):
    """Change a name with an owner-signed ``update`` (rotate keys, payment address, data, gateway), ``release`` or
    ``transfer``, or take a name offered to you with your own signed ``accept``."""

    throttle_classes = THROTTLES
    throttle_scope = "write"

    @extend_schema(
        operation_id="names_statements_create",
        parameters=[NAME_PARAMETER],
        request=SignedStatementSerializer,
        responses={
            201: NameRecordSerializer,
            400: error_response(
                "statement_invalid, signature_invalid, statement_stale_seq, statement_wrong_owner, "
                "transfer_not_pending, transfer_wrong_offer, transfer_expired, …"
            ),
            401: error_response("session_required: a handshake session for this name and purpose is needed."),
            403: error_response("name_suspended"),
            404: error_response("name_not_found"),
            409: error_response("name_pending: the name is not confirmed yet."),
            503: error_response("cache_unavailable: Redis is down, so no lookup could be kept exact; nothing written."),
        },
    )
    def post(self, request: Request, name: str) -> Response:
        data = SignedStatementSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        signed = data.validated_data
        _require_same_name(normalise(name), signed.statement.name)
        purposes = _session_purposes(signed.statement.op)
        if purposes:
            _require_session(request, signed.statement.name, purposes)
        record = services.statement_apply(signed=signed, source="api")
        return Response(NameRecordSerializer(record).data, status=201)


def lookup_early(request: HttpRequest, name: str) -> HttpResponse:
    """``NameView.get`` for a name whose answer is in Redis, answered before DRF (``core.fastpath``, registered in
    ``apps.py``): the view's rate limits counted with the entry fetched in one round trip, and the view's answers
    (200 with the kept bytes, whatever they hold; 304; 429 with ``Retry-After``). Anything else (not a name, not
    cached, no Redis, an ``Accept`` DRF could negotiate differently) raises ``Missed`` and the view answers, with
    the limits already counted handed on to it."""
    if not plain_json(request.META.get("HTTP_ACCEPT", "")):
        raise Missed
    try:
        keys = published.cache_keys(normalise(name))
    except NameRefused as exc:
        raise Missed from exc
    if not keys:
        raise Missed
    throttles = [throttle() for throttle in NameView.throttle_classes]
    request.user = None  # what DRF's request.user is in NameView, which authenticates nobody (the limits read it)
    cached, _ = throttling.count_together(throttles, request, NameView, keys)
    waits = [throttle.wait() for throttle in throttles if not throttle.allow_request(request, NameView)]
    if waits:  # as ThrottleFirst.check_throttles
        status, body, headers = throttled_answer(max((wait for wait in waits if wait is not None), default=None))
        response = HttpResponse(published.render(body), status=status, content_type="application/json")
        return _with_view_headers(response, headers)
    entry = published.entry_of(cached)
    if entry is None:
        throttling.hand_on(request)
        raise Missed
    return _with_view_headers(_lookup_answer(request, *entry), {})


def _lookup_answer(request: HttpRequest, etag: str, body: bytes) -> HttpResponse:
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if _not_modified(request, etag):
        return HttpResponse(status=304, headers=headers)
    # The body is already what DRF's JSON renderer makes of it (the kept entry is rendered bytes).
    return HttpResponse(body, content_type="application/json", headers=headers)


def _with_view_headers(response: HttpResponse, headers: dict[str, str]) -> HttpResponse:
    """The headers DRF's ``finalize_response`` adds to every answer of ``NameView`` (``Allow``), and ``headers``."""
    for key, value in {**headers, "Allow": LOOKUP_ALLOW}.items():
        response[key] = value
    return response


def _not_modified(request: Request, etag: str) -> bool:
    tags = parse_etags(request.headers.get("If-None-Match", ""))
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)


def _require_same_name(path_name: str, statement_name: str) -> None:
    if path_name != statement_name:
        raise DomainError("statement_wrong_name", f"The statement is about {statement_name!r}, not {path_name!r}.")


def _session_purposes(op: str) -> set[str]:
    if op not in SESSION_PURPOSES:
        raise DomainError("statement_not_change", "A register statement starts a registration; send update or release.")
    return SESSION_PURPOSES[op]


def _require_session(request: Request, name: str, purposes: set[str]) -> None:
    """The handshake gate on changing a name over REST (``gates.require_session``). The owner's node can send the
    same statement over Maxima instead."""
    gates.require_session(request, name=name, purposes=purposes)
