"""Peers played in-process: a peer is a Maxima identity key whose messages are fed to the handlers as the
transport would (``sender`` is what Maxima verified), and whose outbox messages to us are read back."""

import itertools
import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction

from federation import services
from federation.models import Claim, Lease, LogHead, Operation, Peer
from mailboxes.models import Mailbox, Message
from mailboxes.tests.support import GATEWAY_ADDRESS, Owner
from maxima.models import NodeState, OutboundMessage
from maxima.routing import InboundMessage, dispatch
from mns_client.protocol import sync
from mns_client.protocol.codecs import MaximaAddress, from_hex, to_hex
from registry.models import NameRecord, StatementRecord
from registry.tests.support import GATEWAY, fresh_owner

_msgids = itertools.count(1)
_ports = itertools.count(9600)


@dataclass
class FakePeer:
    """Another gateway: its identity key (and the private key, to sign nothing: Maxima vouches for ``from``)."""

    name: str
    key: str
    address: str
    seq: int = 0

    @classmethod
    def fresh(cls, name: str) -> "FakePeer":
        keys = fresh_owner()
        return cls(name=name, key=keys.key, address=str(MaximaAddress(from_hex(keys.key), "127.0.0.1", next(_ports))))

    def add(self, **fields: Any) -> Peer:
        peer, _ = services.peer_upsert(
            name=self.name, identity_key=self.key, address=self.address, api_url=f"http://{self.name}.test/api/v1/"
        )
        if fields:
            Peer.objects.filter(id=peer.id).update(**fields)
            peer.refresh_from_db()
        return peer

    def says(self, body: dict[str, Any]) -> str:
        """Our handler processing this peer's message, as the inbound task would: ``done`` or ``ignored: …``."""
        message = InboundMessage(
            event_id=0,
            msgid="0x" + f"{next(_msgids):064X}",
            sender=self.key,
            application=sync.APPLICATION,
            data=json.dumps(body).encode(),
            timemilli=0,
        )
        try:
            with transaction.atomic():
                dispatch(message)
        except Exception as exc:
            return f"ignored: {getattr(exc, 'code', type(exc).__name__)}"
        return "done"

    def op(self, kind: str, payload: dict[str, Any], seq: int | None = None) -> dict[str, Any]:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return {"seq": seq, "kind": kind, "payload": payload, "created_at": 1795660441638 + seq}

    def batch(self, *ops: dict[str, Any], head: int | None = None) -> dict[str, Any]:
        head = head if head is not None else max([op["seq"] for op in ops] + [0])
        return sync.message("ops", origin=self.key, head=head, ops=list(ops))

    def register_op(self, owner: Owner, name: str, **fields: Any) -> dict[str, Any]:
        signed = owner.register(name, gateway=self.key, **fields)
        return self.op("statement", signed.to_dict())

    def mailbox_op(self, owner: Owner, name: str, replicas: list[str]) -> dict[str, Any]:
        return self.op("mailbox", {"name": name, "owner": owner.key, "address": owner.address, "replicas": replicas})

    def message_op(self, name: str, uid: str, ciphertext: bytes = b"\x07" * 50, **fields: Any) -> dict[str, Any]:
        payload = {
            "name": name,
            "uid": uid,
            "delivery_id": fields.pop("delivery_id", f"d-{uid}"),
            "sender": fields.pop("sender", ""),
            "sender_verified": True,
            "scheme": "nacl-sealedbox-v1",
            "received_at": 1795660441638,
            "ciphertext": to_hex(ciphertext),
            **fields,
        }
        return self.op("message", payload)


def sent_sync(message_type: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """What this gateway queued for its peers (``mns-sync``): (destination, body), oldest first."""
    rows = OutboundMessage.objects.filter(application=sync.APPLICATION).order_by("id")
    bodies = [(row.destination, json.loads(bytes(row.payload))) for row in rows]
    return [(dest, body) for dest, body in bodies if message_type is None or body["type"] == message_type]


def state() -> dict[str, list[dict[str, Any]]]:
    """Everything a replicated op could change, to show that a refused one wrote nothing."""
    models = {
        "records": NameRecord,
        "statements": StatementRecord,
        "mailboxes": Mailbox,
        "messages": Message,
        "ops": Operation,
        "heads": LogHead,
        "claims": Claim,
        "leases": Lease,
    }
    return {key: list(model.objects.order_by("pk").values()) for key, model in models.items()}


@pytest.fixture
def gateway(db: None) -> NodeState:
    """This gateway's node as supervision last saw it: node A of the fixtures."""
    cache.clear()
    return NodeState.objects.create(
        pk=1, reachable=True, publickey=GATEWAY, localidentity=GATEWAY_ADDRESS, p2pidentity=GATEWAY_ADDRESS
    )


@pytest.fixture
def peer_b(gateway: NodeState) -> FakePeer:
    peer = FakePeer.fresh("gw-b")
    peer.add()
    return peer


@pytest.fixture
def peer_c(gateway: NodeState) -> FakePeer:
    peer = FakePeer.fresh("gw-c")
    peer.add()
    return peer
