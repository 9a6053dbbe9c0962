"""The peers' HTTPS API for reconciliation and snapshots (``docs/protocol.md``, "Reconciliation and snapshots").

Names are public (anyone may look them up anyway); a mailbox's contents only to a peer that keeps it, which signs
its requests (``Authorization: MNS-Peer …``, checked by ``services.peer_of_token``). Each request is throttled
per address and bounded in size (``MNS_MAX_REQUEST_BYTES``; at most 256 prefixes or ``MNS_FEDERATION_SNAPSHOT_CHUNK``
keys).
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import NO_STORE, THROTTLES, error_response
from federation.models import Peer
from federation.services import snapshots


def _peer(request: Request) -> Peer | None:
    header = request.headers.get("Authorization", "")
    return snapshots.peer_of_token(header) if header else None


class PositionSerializer(serializers.Serializer):
    origin = serializers.CharField()
    head = serializers.IntegerField()
    cursors = serializers.DictField(child=serializers.IntegerField())


class NodesRequestSerializer(serializers.Serializer):
    set = serializers.CharField(max_length=100)
    # Items are checked by the service (``reconcile.check_prefixes``): one error for the list, not one per item.
    prefixes = serializers.ListField(max_length=256)


class RootsRequestSerializer(serializers.Serializer):
    sets = serializers.ListField(min_length=1, max_length=256)  # items checked by the service


class ItemsRequestSerializer(serializers.Serializer):
    set = serializers.CharField(max_length=100)
    # As many keys as a gateway asks at once (so a body the schema allows fits the request size limit); the items
    # are checked by the service (``reconcile.check_keys``): one error for the list, not one per item.
    keys = serializers.ListField(max_length=snapshots.MAX_KEYS_PER_REQUEST, required=False)
    prefix = serializers.CharField(max_length=64, allow_blank=True, required=False)
    after = serializers.CharField(max_length=64, allow_blank=True, required=False, default="")

    def validate(self, data: dict) -> dict:
        if ("keys" in data) == ("prefix" in data):
            raise serializers.ValidationError("either keys or prefix")
        return data


class PositionView(APIView):
    """The log position a snapshot served now corresponds to: this gateway's head and its cursors."""

    throttle_classes = THROTTLES
    throttle_scope = "federation"

    @extend_schema(operation_id="federation_position", responses={200: PositionSerializer})
    def get(self, request: Request) -> Response:
        return Response(snapshots.position(), headers=NO_STORE)


class RootsView(APIView):
    """The root fingerprints ``[count, xor]`` of up to 256 sets at once."""

    throttle_classes = THROTTLES
    throttle_scope = "federation"

    @extend_schema(
        operation_id="federation_roots",
        request=RootsRequestSerializer,
        responses={
            200: dict,
            403: error_response("set_forbidden, peer_token_invalid"),
            404: error_response("set_unknown"),
            413: error_response("request_too_large"),
        },
    )
    def post(self, request: Request) -> Response:
        data = RootsRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            snapshots.roots_answer(set_ids=data.validated_data["sets"], peer=_peer(request)), headers=NO_STORE
        )


class ReconcileView(APIView):
    """One level of a set's trie: for each prefix asked, its children's fingerprints or its items."""

    throttle_classes = THROTTLES
    throttle_scope = "federation"

    @extend_schema(
        operation_id="federation_reconcile",
        request=NodesRequestSerializer,
        responses={
            200: dict,
            400: error_response("reconcile_invalid"),
            403: error_response("set_forbidden, peer_token_invalid"),
            404: error_response("set_unknown"),
            413: error_response("request_too_large"),
        },
    )
    def post(self, request: Request) -> Response:
        data = NodesRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = snapshots.nodes_answer(
            set_id=data.validated_data["set"], prefixes=data.validated_data["prefixes"], peer=_peer(request)
        )
        return Response(answer, headers=NO_STORE)


class SnapshotView(APIView):
    """A chunk of a set's items, each verifiable on its own: the ones of ``keys``, or a subtree's (``prefix``)."""

    throttle_classes = THROTTLES
    throttle_scope = "federation"

    @extend_schema(
        operation_id="federation_snapshot",
        request=ItemsRequestSerializer,
        responses={
            200: dict,
            400: error_response("reconcile_invalid, snapshot_invalid"),
            403: error_response("set_forbidden, peer_token_invalid"),
            404: error_response("set_unknown"),
            413: error_response("request_too_large"),
        },
    )
    def post(self, request: Request) -> Response:
        data = ItemsRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        answer = snapshots.items_answer(
            set_id=data.validated_data["set"],
            keys=data.validated_data.get("keys"),
            prefix=data.validated_data.get("prefix"),
            after=data.validated_data["after"],
            peer=_peer(request),
        )
        return Response(answer, headers=NO_STORE)
