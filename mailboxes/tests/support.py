"""Owners with a Maxima key pair and a box key pair, and shortcuts that play the owner's and the senders' nodes."""

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from handshake import services as handshake_services
from mailboxes import selectors, services
from mailboxes.models import (
    AccessToken,
    AuditEntry,
    BlockedSender,
    Mailbox,
    MailboxCounter,
    Message,
    Registration,
    SenderRule,
)
from maxima.models import OutboundMessage
from maxima.routing import InboundMessage
from maxima.services import outbound_send
from mns_client.protocol.codecs import MaximaAddress, from_hex, to_hex
from mns_client.protocol.crypto import box_keypair
from mns_client.protocol.errors import DeliveryFailed
from mns_client.protocol.handshake import Answer, new_verifier, verifier_hash
from mns_client.protocol.mailbox import Deliver, access_token_header, access_token_open, new_delivery_id
from mns_client.protocol.rpc import SendResult
from mns_client.protocol.statements import SignedStatement
from registration import services as registration_services
from registry.models import NameRecord, StatementRecord
from registry.tests.support import Owner as StatementOwner
from registry.tests.support import fresh_owner
from testsupport import maxima_fixture

GATEWAY_ADDRESS = maxima_fixture("01-")["parsed"]["response"]["p2pidentity"]
VERIFIER = new_verifier()
_msgids = itertools.count(1)
_ports = itertools.count(9100)


@dataclass
class Owner(StatementOwner):
    """A user: their node's Maxima key pair (``sign`` = its maxsign), an address, and the mailbox's box key pair."""

    box_private: bytes = field(default=b"", repr=False)
    box_public: bytes = b""
    address: str = ""

    @classmethod
    def fresh(cls) -> "Owner":
        keys = fresh_owner()
        box_private, box_public = box_keypair()
        address = str(MaximaAddress(from_hex(keys.key), "127.0.0.1", next(_ports)))
        return cls(keys.key, keys.private_key, box_private, box_public, address)

    def register(self, name: str, seq: int = 1, **fields: Any) -> SignedStatement:
        return self.sign("register", name, seq, box_key=to_hex(self.box_public), **fields)

    def open_token(self, blob: bytes) -> tuple[str, str]:
        """What the owner's node does with an access token's blob (``maxdecrypt``): its id and secret."""
        return access_token_open(self.private_key, blob)


@dataclass(frozen=True)
class Opened:
    """A confirmed mailbox and the access token its owner's node opened."""

    mailbox: Mailbox
    owner: Owner
    token_id: str
    secret: str

    @property
    def auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": access_token_header(self.token_id, self.secret)}


def open_mailbox(owner: Owner, name: str, *, address: str | None = None, **statement: Any) -> Opened:
    """The whole registration: request, the owner's node answering the challenge, opening the token's blob."""
    pending = registration_services.mailbox_register(
        signed=owner.register(name, **statement),
        address=address or owner.address,
        verifier_hash=verifier_hash(VERIFIER),
        source="api",
    )
    assert answer(owner, pending.issued.challenge.id, pending.issued.code) == "verified"
    mailbox = Mailbox.objects.select_related("record").get(record__name=name)
    token = AccessToken.objects.get(mailbox=mailbox, revoked_at=None)
    token_id, secret = owner.open_token(bytes(token.blob))
    return Opened(mailbox=mailbox, owner=owner, token_id=token_id, secret=secret)


def inbound(sender: Owner | str, body: dict[str, Any], *, msgid: str | None = None) -> InboundMessage:
    """A Maxima message as the transport hands it over: ``sender`` is the key Maxima verified."""
    return InboundMessage(
        event_id=0,
        msgid=msgid or "0x" + f"{next(_msgids):064X}",
        sender=sender.key if isinstance(sender, Owner | StatementOwner) else sender,
        application="mns",
        data=json.dumps(body).encode(),
        timemilli=0,
    )


def answer(sender: Owner, challenge: str, code: str, *, reply_to: str | None = None) -> str:
    """The owner's node answering a handshake: the verdict."""
    body = Answer(challenge=challenge, code=code, reply_to=reply_to).to_dict()
    return handshake_services.answer_receive(message=inbound(sender, body), body=body)


def deliver_body(to: str = "alice", **fields: Any) -> dict[str, Any]:
    fields.setdefault("id", new_delivery_id())
    fields.setdefault("scheme", "nacl-sealedbox-v1")
    fields.setdefault("ciphertext", b"\x01" * 100)
    return Deliver(to=to, **fields).to_dict()


def deliver(sender: Owner, to: str = "alice", *, body: dict[str, Any] | None = None, **fields: Any) -> str:
    """A sender's node delivering a message over Maxima, processed as the inbound task would: the outcome."""
    body = body if body is not None else deliver_body(to, **fields)
    return services.deliver_received(message=inbound(sender, body), body=body)


def sent(message_type: str) -> list[tuple[str, dict[str, Any]]]:
    """What the gateway queued in its outbox of one ``mns`` type: (destination, body), oldest first."""
    rows = OutboundMessage.objects.order_by("id").values_list("destination", "payload")
    bodies = [(destination, json.loads(bytes(payload))) for destination, payload in rows]
    return [(destination, body) for destination, body in bodies if body.get("type") == message_type]


def usage(name: str = "alice") -> tuple[int, int]:
    """What the mailbox of ``name`` holds, (messages, bytes), summed over its counter shards."""
    used = selectors.mailbox_usage(mailbox_id=Mailbox.objects.get(record__name=name).id)
    return used.messages, used.bytes


def quota_set(name: str = "alice", *, max_messages: int | None = None, max_bytes: int | None = None) -> None:
    """Give the mailbox of ``name`` a new quota (what is not given stays), split among its shards."""
    mailbox = Mailbox.objects.get(record__name=name)
    services.mailbox_quota_set(
        mailbox=mailbox,
        max_messages=mailbox.max_messages if max_messages is None else max_messages,
        max_bytes=mailbox.max_bytes if max_bytes is None else max_bytes,
    )


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Everything the mailboxes (and the registry under them) store, to show that a refusal wrote nothing."""
    models = {
        "mailboxes": Mailbox,
        "counters": MailboxCounter,
        "messages": Message,
        "rules": SenderRule,
        "blocked": BlockedSender,
        "tokens": AccessToken,
        "registrations": Registration,
        "audit": AuditEntry,
        "records": NameRecord,
        "statements": StatementRecord,
    }
    return {key: list(model.objects.order_by("pk").values()) for key, model in models.items()}


def body(response: Any) -> Any:
    return json.loads(response.content)


def error(response: Any) -> tuple[int, str]:
    return response.status_code, body(response)["error"]


def session(owner: Owner, name: str, purpose: str) -> dict[str, str]:
    """A handshake session for ``purpose`` on ``name``, as the client holds it: the header to send."""
    issued = handshake_services.challenge_issue(name=name, purpose=purpose, verifier_hash=verifier_hash(VERIFIER))
    assert answer(owner, issued.challenge.id, issued.code) == "verified"
    opened = handshake_services.session_open(challenge_id=issued.challenge.id, verifier=VERIFIER)
    return {"HTTP_AUTHORIZATION": f"MNS-Session {opened.token}"}


class FakeNode:
    """Stands in for the gateway's node in ``outbound_send``: delivers, or fails the way a stopped node does."""

    def __init__(self, *, delivered: bool = True) -> None:
        self.delivered = delivered
        self.sent: list[tuple[str, bytes]] = []

    def maxima_send(self, *, application: str, data: bytes, to: str | None = None, publickey: bytes | None = None):
        if not self.delivered:
            raise DeliveryFailed("maxima", "java.net.ConnectException: Connection refused")
        self.sent.append((to or to_hex(publickey or b""), data))
        return SendResult(
            msgid="0x" + f"{len(self.sent):064X}", delivered=True, from_key=b"", to_key=b"", timemilli=0, poll=False
        )


def send_all(node: FakeNode) -> list[str]:
    """Run the outbox once over every due message, as the send task would."""
    due = OutboundMessage.objects.filter(status="queued").order_by("id").values_list("id", flat=True)
    return [outbound_send(message_id=message_id, client=node) for message_id in due]


def pages_read(sql: str) -> int:
    """The pages PostgreSQL reads to run ``sql`` (a captured statement, its parameters bound), from its plan."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    plan = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
