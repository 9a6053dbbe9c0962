"""Changing a name with owner-signed statements: rotation, payment address, moving, release, and every refusal."""

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from mns_client.protocol.crypto import maxsign
from mns_client.protocol.statements import SignedStatement
from registry import services
from registry.models import NameRecord, StatementRecord
from registry.tests.support import GATEWAY, OTHER_GATEWAY, Owner, new_box_key, refused, register

pytestmark = pytest.mark.django_db

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "vectors" / "statements.json").read_text())


def vector(index: int) -> SignedStatement:
    data = VECTORS["vectors"][index]
    return SignedStatement.from_dict({"statement": data["statement"], "signature": data["signature_hex"]})


def apply(signed: SignedStatement) -> NameRecord:
    return services.statement_apply(signed=signed, source="api")


def test_the_published_vectors_signed_by_a_real_nodes_key_are_accepted_as_one_chain() -> None:
    register_alice, update_alice, release_alice = vector(0), vector(1), vector(2)
    services.name_hold(signed=register_alice, gateway_key=GATEWAY, source="api")
    services.name_activate(name="alice")
    record = apply(update_alice)
    assert (record.box_key, record.payment_address) == (
        update_alice.statement.box_key,
        update_alice.statement.payment_address,
    )
    assert record.gateways == [OTHER_GATEWAY, GATEWAY]
    record = apply(release_alice)
    assert record.status == "released"
    stored = [
        SignedStatement.from_dict({"statement": s.statement, "signature": s.signature})
        for s in StatementRecord.objects.order_by("seq")
    ]
    assert stored == [register_alice, update_alice, release_alice]


def test_rotating_the_box_key_changes_the_record_and_keeps_the_old_statement_in_the_history(alice: Owner) -> None:
    first = register(alice, "alice")
    rotation = alice.sign("update", "alice", 2, box_key=new_box_key())
    record = apply(rotation)
    record.refresh_from_db()
    assert (record.status, record.seq, record.box_key) == ("active", 2, rotation.statement.box_key)
    assert (record.statement, record.signature) == (rotation.statement.to_dict(), rotation.to_dict()["signature"])
    history = list(StatementRecord.objects.order_by("seq").values_list("seq", "op", "statement"))
    assert history == [(1, "register", first.statement), (2, "update", rotation.statement.to_dict())]


def test_an_update_sets_or_clears_the_payment_address(alice: Owner) -> None:
    register(alice, "alice")
    assert apply(alice.sign("update", "alice", 2, payment_address="0x" + "CD" * 32)).payment_address == "0x" + "CD" * 32
    assert apply(alice.sign("update", "alice", 3)).payment_address == ""


def test_seq_may_jump_ahead(alice: Owner) -> None:
    register(alice, "alice")
    assert apply(alice.sign("update", "alice", 1000)).seq == 1000


def test_a_release_clears_the_owner_and_keeps_the_signed_release_as_current(alice: Owner) -> None:
    register(alice, "alice", payment_address="0x" + "AB" * 32)
    release = alice.sign("release", "alice", 2)
    record = apply(release)
    record.refresh_from_db()
    assert (record.status, record.owner_key, record.box_key, record.payment_address, record.gateways) == (
        "released",
        "",
        "",
        "",
        [],
    )
    assert (record.seq, record.statement) == (2, release.statement.to_dict())


# ---------------------------------------------------------------------------------------------------- refusals


def test_a_tampered_statement_is_refused(alice: Owner) -> None:
    register(alice, "alice")
    signed = alice.sign("update", "alice", 2)
    tampered_statement = alice.statement(
        "update", "alice", 2, box_key=new_box_key(), issued_at=signed.statement.issued_at
    )
    tampered = SignedStatement(tampered_statement, signed.signature)
    assert refused(lambda: apply(tampered)).code == "signature_invalid"


def test_a_statement_signed_by_another_key_is_refused(alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    statement = alice.statement("update", "alice", 2)
    assert refused(lambda: apply(SignedStatement(statement, maxsign(bob.private_key, statement.canonical())))).code == (
        "signature_invalid"
    )


@pytest.mark.parametrize("seq", [1, 2])
def test_a_statement_with_an_old_seq_is_refused(alice: Owner, seq: int) -> None:
    register(alice, "alice")
    apply(alice.sign("update", "alice", 2))
    assert refused(lambda: apply(alice.sign("update", "alice", seq))).code == "statement_stale_seq"


def test_the_current_statement_again_is_refused_as_a_duplicate(alice: Owner) -> None:
    register(alice, "alice")
    update = alice.sign("update", "alice", 2)
    apply(update)
    assert refused(lambda: apply(update)).code == "statement_duplicate"


def test_another_owners_statement_is_refused(alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    for op in ("update", "release"):
        assert refused(lambda op=op: apply(bob.sign(op, "alice", 2))).code == "statement_wrong_owner"


def test_a_register_is_refused_here_it_starts_a_registration(alice: Owner) -> None:
    register(alice, "alice")
    assert refused(lambda: apply(alice.sign("register", "alice", 2))).code == "statement_not_change"


def test_a_statement_about_an_unknown_name_is_refused(alice: Owner) -> None:
    refusal = refused(lambda: apply(alice.sign("update", "nobody", 2)))
    assert (refusal.code, refusal.status) == ("name_not_found", 404)


def test_a_statement_about_a_pending_name_is_refused(alice: Owner) -> None:
    services.name_hold(signed=alice.sign("register", "alice", 1), gateway_key=GATEWAY, source="api")
    refusal = refused(lambda: apply(alice.sign("update", "alice", 2)))
    assert (refusal.code, refusal.status) == ("name_pending", 409)


def test_a_statement_about_a_suspended_name_is_refused_even_a_release(alice: Owner, staff: User) -> None:
    register(alice, "alice")
    services.name_suspend(name="alice", actor=staff, reason="phishing")
    for op in ("update", "release"):
        refusal = refused(lambda op=op: apply(alice.sign(op, "alice", 2)))
        assert (refusal.code, refusal.status) == ("name_suspended", 403)


def test_nothing_but_a_register_follows_a_release(alice: Owner) -> None:
    register(alice, "alice")
    apply(alice.sign("release", "alice", 2))
    for op in ("update", "release"):
        assert refused(lambda op=op: apply(alice.sign(op, "alice", 3))).code == "statement_after_release"


def test_a_statement_about_a_name_reserved_before_anyone_held_it_is_refused(alice: Owner, staff: User) -> None:
    services.name_reserve(name="paypal", actor=staff, reason="brand")
    assert refused(lambda: apply(alice.sign("update", "paypal", 1))).code == "statement_not_registered"
