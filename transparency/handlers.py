"""The mns-sync ``root`` message: a peer's signed directory root (docs/protocol.md, "Transparency")."""

from typing import Any

from federation import services as federation
from maxima.routing import InboundMessage
from mns_client.protocol import sync
from transparency import services


def root(message: InboundMessage, body: dict[str, Any]) -> None:
    peer = federation.peer_heard(message=message)
    try:
        sync.check(body)
    except sync.SyncMessageInvalid as invalid:
        federation.invalid_count(peer=peer, count=1, why=f"malformed root: {invalid}")
        return
    services.root_received(peer=peer, body=body)
