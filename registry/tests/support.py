"""Owners with real RSA keys who sign statements as their node's ``maxsign`` would, and a few shortcuts.

``alice`` holds the key pair a real node made (fixture 30); ``bob`` and ``carol`` get fresh keys once per run.
The gateway is node A of the fixtures (01).
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from mns_client.protocol.codecs import public_key_hex, to_hex
from mns_client.protocol.crypto import box_keypair, generate_maxima_keypair, maxsign
from mns_client.protocol.errors import MNSError
from mns_client.protocol.rpc import MinimaRPC
from mns_client.protocol.statements import NameStatement, SignedStatement
from registry import services
from registry.models import AuditEntry, NameRecord, StatementRecord
from testsupport import maxima_fixture

GATEWAY = maxima_fixture("01-")["parsed"]["response"]["publickey"]
OTHER_GATEWAY = maxima_fixture("02-")["parsed"]["response"]["publickey"]
ISSUED_AT = 1795660441638
FULL_WIDTH_ALICE = "\uff21\uff2c\uff29\uff23\uff25"  # ALICE in full-width letters
_issued = itertools.count(ISSUED_AT, 1000)


def new_box_key() -> str:
    return to_hex(box_keypair()[1])


@dataclass
class Owner:
    """A node's identity key pair; ``sign`` makes what the node's ``maxsign`` would."""

    key: str
    private_key: bytes = field(repr=False)

    def statement(self, op: str, name: str, seq: int, **fields: Any) -> NameStatement:
        if op != "release":
            fields.setdefault("box_key", new_box_key())
        fields.setdefault("gateway", GATEWAY)
        fields.setdefault("issued_at", next(_issued))
        return NameStatement(op=op, name=name, owner=self.key, seq=seq, **fields)

    def sign(self, op: str, name: str, seq: int, **fields: Any) -> SignedStatement:
        statement = self.statement(op, name, seq, **fields)
        return SignedStatement(statement, maxsign(self.private_key, statement.canonical()))


class SignsOnItsNode:
    """For an owner whose node signs with its own ``maxsign`` (a real node never shows its private key): mixed in
    before ``Owner`` by a dataclass that has an ``rpc`` field, the node's ``MinimaRPC``."""

    rpc: MinimaRPC

    def sign(self, op: str, name: str, seq: int, **fields: Any) -> SignedStatement:
        statement = self.statement(op, name, seq, **fields)  # type: ignore[attr-defined]
        return SignedStatement(statement, self.rpc.maxsign(statement.canonical()))


def fresh_owner() -> Owner:
    private, public = generate_maxima_keypair()
    return Owner(key=public_key_hex(public), private_key=private)


def hold(owner: Owner, name: str, seq: int = 1, **fields: Any) -> NameRecord:
    return services.name_hold(signed=owner.sign("register", name, seq, **fields), gateway_key=GATEWAY, source="api")


def register(owner: Owner, name: str, seq: int = 1, **fields: Any) -> NameRecord:
    """Hold and confirm: the whole registration, as the Mailboxes flow does it."""
    hold(owner, name, seq, **fields)
    return services.name_activate(name=name)


def refused(call: Callable[[], object]) -> MNSError:
    """Run a call that must be refused; return the refusal after checking that nothing was written."""
    before = db_snapshot()
    with pytest.raises(MNSError) as caught:
        call()
    assert db_snapshot() == before
    return caught.value


def db_snapshot() -> tuple[list[dict], list[dict], list[dict]]:
    """Everything the registry stores, to show that a refusal wrote nothing."""
    return (
        list(NameRecord.objects.order_by("id").values()),
        list(StatementRecord.objects.order_by("id").values()),
        list(AuditEntry.objects.order_by("id").values()),
    )


def post_statement(client: Client, name: str, signed: SignedStatement | dict, token: str | None = None) -> Any:
    """``POST /api/v1/names/{name}/statements``, with a handshake session's token when one is given."""
    data = signed.to_dict() if isinstance(signed, SignedStatement) else signed
    headers = {"HTTP_AUTHORIZATION": f"MNS-Session {token}"} if token else {}
    return client.post(f"/api/v1/names/{name}/statements", data, content_type="application/json", **headers)
