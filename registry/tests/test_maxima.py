"""Statements over Maxima: the owner's own node sends the same signed statement the REST path takes."""

import json
import time

import pytest

from maxima.routing import InboundMessage, dispatch
from mns_client.protocol.statements import SignedStatement
from registry import handlers
from registry.models import NameRecord, StatementRecord
from registry.tests.support import Owner, db_snapshot, new_box_key, refused, register

pytestmark = pytest.mark.django_db


def message(sender: str, signed: SignedStatement | dict) -> tuple[InboundMessage, dict]:
    wire = signed.to_dict() if isinstance(signed, SignedStatement) else signed
    body = {"v": 1, "type": "statement", **wire}
    data = json.dumps(body).encode()
    return InboundMessage(event_id=1, msgid="0x01", sender=sender, application="mns", data=data, timemilli=0), body


def test_a_rotation_from_the_owners_node_is_applied_and_kept_in_the_history(alice: Owner) -> None:
    register(alice, "alice")
    rotation = alice.sign("update", "alice", 2, box_key=new_box_key())
    handlers.statement_received(*message(alice.key, rotation))
    record = NameRecord.objects.get()
    assert (record.seq, record.box_key) == (2, rotation.statement.box_key)
    assert StatementRecord.objects.get(seq=2).source == "maxima"


def test_the_handler_is_registered_for_mns_statement_messages(alice: Owner) -> None:
    register(alice, "alice")
    inbound, _ = message(alice.key, alice.sign("release", "alice", 2))
    dispatch(inbound)
    assert NameRecord.objects.get().status == "released"


def test_a_statement_from_another_node_than_the_owners_is_refused(alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    refusal = refused(lambda: handlers.statement_received(*message(bob.key, alice.sign("update", "alice", 2))))
    assert refusal.code == "statement_wrong_sender"


def test_a_redelivered_statement_is_not_applied_twice(alice: Owner) -> None:
    register(alice, "alice")
    inbound = message(alice.key, alice.sign("update", "alice", 2))
    handlers.statement_received(*inbound)
    before = db_snapshot()
    handlers.statement_received(*inbound)
    assert db_snapshot() == before


def test_a_redelivered_statement_that_was_overtaken_is_not_an_error(alice: Owner) -> None:
    register(alice, "alice")
    first = message(alice.key, alice.sign("update", "alice", 2))
    handlers.statement_received(*first)
    handlers.statement_received(*message(alice.key, alice.sign("update", "alice", 3)))
    handlers.statement_received(*first)
    assert NameRecord.objects.get().seq == 3


def test_bad_statements_over_maxima_are_refused_like_over_rest(alice: Owner) -> None:
    register(alice, "alice")
    update = alice.sign("update", "alice", 2).to_dict()
    cases = {
        "signature_invalid": update | {"signature": "0x" + "00" * 128},
        "statement_invalid": {"statement": update["statement"]},
        "statement_stale_seq": alice.sign("update", "alice", 1),
    }
    for code, wire in cases.items():
        assert refused(lambda wire=wire: handlers.statement_received(*message(alice.key, wire))).code == code


@pytest.mark.parametrize(
    ("change", "field"),
    [({"v": True}, "v"), ({"extra": 1}, "extra"), ({"signature": None}, "signature")],
    ids=["v-true", "unknown-key", "signature-null"],
)
def test_a_statement_message_in_a_second_spelling_is_refused_and_changes_nothing(
    alice: Owner, change: dict, field: str
) -> None:
    register(alice, "alice")
    inbound, body = message(alice.key, alice.sign("update", "alice", 2, box_key=new_box_key()))

    refusal = refused(lambda: handlers.statement_received(inbound, {**body, **change}))

    assert (refusal.code, refusal.field) == ("statement_invalid", field)
    assert NameRecord.objects.get().seq == 1


def test_an_accept_over_maxima_comes_from_the_new_owners_node_only(alice: Owner, bob: Owner, carol: Owner) -> None:
    register(alice, "alice")
    now = int(time.time() * 1000)
    offer = alice.sign("transfer", "alice", 2, to=bob.key, expires_at=now + 3600_000, issued_at=now)
    handlers.statement_received(*message(alice.key, offer))
    accept = bob.sign("accept", "alice", 3, accepts=2, issued_at=now + 1)
    # relayed by another node (the old owner's, or anyone's): refused, nothing written
    assert refused(lambda: handlers.statement_received(*message(carol.key, accept))).code == "statement_wrong_sender"
    assert refused(lambda: handlers.statement_received(*message(alice.key, accept))).code == "statement_wrong_sender"
    # from bob's own node: the name is bob's
    handlers.statement_received(*message(bob.key, accept))
    record = NameRecord.objects.get()
    assert (record.owner_key, record.box_key, StatementRecord.objects.get(seq=3).source) == (
        bob.key,
        accept.statement.box_key,
        "maxima",
    )
