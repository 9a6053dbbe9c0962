"""Maxima ``mns-sync`` handlers, registered in ``apps.py``: the Maxima counterpart of views.

Each accepts a message only from an enabled, unpaused peer (``services.peer_heard``: Maxima verified ``from``),
calls one service and is idempotent (an event may be processed again after a crash). A malformed message from a
peer is counted against it rather than raised, so the count commits.
"""

from collections.abc import Callable
from typing import Any

from federation import services
from federation.models import Peer
from maxima.routing import InboundMessage
from mns_client.protocol import sync


def _checked(message: InboundMessage, body: dict[str, Any]) -> Peer | None:
    peer = services.peer_heard(message=message)
    try:
        sync.check(body)
    except sync.SyncMessageInvalid as invalid:
        services.invalid_count(peer=peer, count=1, why=f"malformed {body.get('type')}: {invalid}")
        return None
    return peer


def claim(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.claim_received(peer=peer, body=body)


def claim_ack(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.claim_answered(peer=peer, claim_id=body["claim_id"], ack=True)


def claim_nack(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.claim_answered(peer=peer, claim_id=body["claim_id"], ack=False)


def commit(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.claim_finished(peer=peer, claim_id=body["claim_id"], committed=True)


def abort(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.claim_finished(peer=peer, claim_id=body["claim_id"], committed=False)


def ops(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.ops_received(peer=peer, body=body)


def pull(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.pull_received(peer=peer, message=message, body=body)


def where(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.where_received(peer=peer, body=body)


def position(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.position_received(peer=peer, body=body)


def ask(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.ask_received(peer=peer, message=message, body=body)


def told(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = _checked(message, body)
    if peer is not None:
        services.told_received(peer=peer, message=message, body=body)


HANDLERS: dict[str, Callable[[InboundMessage, dict[str, Any]], None]] = {
    "claim": claim,
    "claim-ack": claim_ack,
    "claim-nack": claim_nack,
    "commit": commit,
    "abort": abort,
    "ops": ops,
    "pull": pull,
    "where": where,
    "position": position,
    "ask": ask,
    "told": told,
}
