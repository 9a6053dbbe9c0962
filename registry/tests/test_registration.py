"""Holding a name for a register statement: every name rule and every refusal, and that a refusal writes nothing."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from mns_client.protocol.crypto import maxsign
from mns_client.protocol.errors import MNSError
from mns_client.protocol.statements import SignedStatement
from registry import selectors, services
from registry.models import NameRecord, StatementRecord
from registry.tests.support import GATEWAY, OTHER_GATEWAY, Owner, hold, refused, register

pytestmark = pytest.mark.django_db


def hold_refused(owner: Owner, name: str, seq: int = 1, **fields: object) -> MNSError:
    return refused(lambda: hold(owner, name, seq, **fields))


def test_a_register_statement_holds_the_name_as_pending_with_its_keys_and_statement(alice: Owner) -> None:
    signed = alice.sign("register", "alice", 1, payment_address="0x" + "AB" * 32)
    record = services.name_hold(signed=signed, gateway_key=GATEWAY, source="api")
    record.refresh_from_db()
    assert (record.name, record.skeleton, record.status) == ("alice", "allce", "pending")
    assert (record.owner_key, record.box_key) == (alice.key, signed.statement.box_key)
    assert record.payment_address == "0x" + "AB" * 32
    assert record.gateways == [GATEWAY]
    assert (record.seq, record.statement, record.signature) == (
        1,
        signed.statement.to_dict(),
        signed.to_dict()["signature"],
    )
    [stored] = StatementRecord.objects.all()
    assert (stored.record, stored.seq, stored.op, stored.source) == (record, 1, "register", "api")
    assert SignedStatement.from_dict({"statement": stored.statement, "signature": stored.signature}) == signed


def test_activating_a_held_name_makes_it_active(alice: Owner) -> None:
    hold(alice, "alice")
    assert services.name_activate(name="alice").status == "active"
    assert NameRecord.objects.get(name="alice").status == "active"


def test_activating_an_active_name_again_changes_nothing(alice: Owner) -> None:
    record = register(alice, "alice")
    assert services.name_activate(name="alice").status_changed_at == record.status_changed_at


def test_activating_an_unknown_or_released_name_is_refused(alice: Owner) -> None:
    assert refused(lambda: services.name_activate(name="nobody")).code == "name_not_found"
    register(alice, "alice")
    services.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    assert refused(lambda: services.name_activate(name="alice")).code == "name_not_pending"


# ------------------------------------------------------------------------------------------------ name rules


@pytest.mark.parametrize("name", ["admin", "support", "no-reply", "minima"])
def test_it_refuses_a_builtin_reserved_name(alice: Owner, name: str) -> None:
    refusal = hold_refused(alice, name)
    assert refusal.code == "name_reserved"
    assert str(refusal) == f"the name {name!r} is reserved"


@pytest.mark.parametrize("name", ["a", "al", "x9"])
def test_it_refuses_names_of_one_or_two_characters_as_reserved(alice: Owner, name: str) -> None:
    refusal = hold_refused(alice, name)
    assert refusal.code == "name_reserved"
    assert str(refusal) == "names shorter than 3 characters are reserved"


def test_it_refuses_a_lookalike_of_a_builtin_reserved_name(alice: Owner) -> None:
    refusal = hold_refused(alice, "adm1n")
    assert (refusal.code, str(refusal)) == ("name_reserved", "the name 'adm1n' looks like the reserved name 'admin'")


def test_it_refuses_a_name_staff_reserved_and_every_lookalike_of_it(alice: Owner, staff: User) -> None:
    services.name_reserve(name="paypal", actor=staff, reason="brand protection")
    assert hold_refused(alice, "paypal").code == "name_reserved"
    refusal = hold_refused(alice, "paypa1")
    assert (refusal.code, str(refusal)) == ("name_reserved", "the name 'paypa1' looks like the reserved name 'paypal'")


@pytest.mark.parametrize("confirmed", [False, True], ids=["pending", "active"])
def test_it_refuses_a_name_another_key_holds(alice: Owner, bob: Owner, confirmed: bool) -> None:
    (register if confirmed else hold)(alice, "alice")
    refusal = hold_refused(bob, "alice")
    assert refusal.code == "name_taken"
    expected = "already registered to another key" if confirmed else "being registered by another key"
    assert expected in str(refusal)


def test_it_refuses_a_suspended_name_to_another_key(alice: Owner, bob: Owner, staff: User) -> None:
    register(alice, "alice")
    services.name_suspend(name="alice", actor=staff, reason="impersonation report")
    assert hold_refused(bob, "alice").code == "name_taken"


@pytest.mark.parametrize("lookalike", ["a1ice", "al1ce", "aiice", "al-ice", "a_lice"])
def test_it_refuses_a_lookalike_of_another_keys_name_and_says_which(alice: Owner, bob: Owner, lookalike: str) -> None:
    register(alice, "alice")
    refusal = hold_refused(bob, lookalike)
    assert refusal.code == "name_confusable"
    assert str(refusal) == f"the name {lookalike!r} looks too much like 'alice', which is registered to another key"


def test_it_refuses_a_lookalike_of_the_owners_own_name_and_says_it_is_theirs(alice: Owner) -> None:
    register(alice, "alice")
    refusal = hold_refused(alice, "a1ice")
    assert refusal.code == "name_confusable"
    assert str(refusal) == "the name 'a1ice' looks too much like 'alice', which is already yours"


def test_it_refuses_a_lookalike_of_a_name_still_pending(alice: Owner, bob: Owner) -> None:
    hold(alice, "modern")
    assert hold_refused(bob, "rnodern").code == "name_confusable"


def test_a_released_name_frees_its_lookalikes(alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    services.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    assert register(bob, "a1ice").status == "active"


# ------------------------------------------------------------------------------------------ statement checks


def test_it_refuses_a_statement_for_another_gateway(alice: Owner) -> None:
    refusal = hold_refused(alice, "alice", gateway=OTHER_GATEWAY)
    assert refusal.code == "statement_wrong_gateway"


def test_it_refuses_to_hold_while_the_gateway_does_not_know_its_own_key(alice: Owner) -> None:
    signed = alice.sign("register", "alice", 1)
    refusal = refused(lambda: services.name_hold(signed=signed, gateway_key=None, source="api"))
    assert (refusal.code, refusal.status) == ("gateway_not_ready", 503)


@pytest.mark.parametrize("op", ["update", "release"])
def test_it_refuses_an_update_or_a_release_as_a_registration(alice: Owner, op: str) -> None:
    signed = alice.sign(op, "alice", 1)
    refusal = refused(lambda: services.name_hold(signed=signed, gateway_key=GATEWAY, source="api"))
    assert refusal.code == "statement_not_register"


def test_it_refuses_a_statement_whose_signature_does_not_match(alice: Owner) -> None:
    signed = alice.sign("register", "alice", 1)
    forged = SignedStatement(signed.statement, bytes([signed.signature[0] ^ 1]) + signed.signature[1:])
    refusal = refused(lambda: services.name_hold(signed=forged, gateway_key=GATEWAY, source="api"))
    assert refusal.code == "signature_invalid"


def test_it_refuses_a_statement_signed_by_another_key_than_its_owner(alice: Owner, bob: Owner) -> None:
    statement = alice.statement("register", "alice", 1)
    signed = SignedStatement(statement, maxsign(bob.private_key, statement.canonical()))
    refusal = refused(lambda: services.name_hold(signed=signed, gateway_key=GATEWAY, source="api"))
    assert refusal.code == "signature_invalid"


def test_the_same_statement_again_returns_the_hold_unchanged(alice: Owner) -> None:
    signed = alice.sign("register", "alice", 1)
    first = services.name_hold(signed=signed, gateway_key=GATEWAY, source="api")
    again = services.name_hold(signed=signed, gateway_key=GATEWAY, source="maxima")
    assert (again.pk, again.status_changed_at) == (first.pk, first.status_changed_at)
    assert StatementRecord.objects.count() == 1


def test_an_owner_cannot_register_a_name_they_already_hold(alice: Owner) -> None:
    register(alice, "alice")
    assert hold_refused(alice, "alice", 2).code == "statement_already_registered"


def test_a_released_name_can_be_registered_by_another_key_with_a_higher_seq(alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    services.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    assert hold_refused(bob, "alice", 2).code == "statement_stale_seq"
    record = register(bob, "alice", 3)
    assert (record.owner_key, record.seq, record.status) == (bob.key, 3, "active")
    assert list(record.statements.values_list("seq", "op")) == [(1, "register"), (2, "release"), (3, "register")]


# --------------------------------------------------------------------------------------------- per-owner limit


def test_it_refuses_more_names_than_the_per_owner_limit(alice: Owner, bob: Owner, settings: object) -> None:
    settings.MNS_NAMES_PER_OWNER = 2
    register(alice, "first")
    hold(alice, "second")
    refusal = hold_refused(alice, "third")
    assert (refusal.code, refusal.status) == ("owner_limit_reached", 403)
    assert refusal.detail == "This key already holds 2 names, the most this gateway allows."
    assert register(bob, "third").owner_key == bob.key


def test_released_names_do_not_count_against_the_limit(alice: Owner, settings: object) -> None:
    settings.MNS_NAMES_PER_OWNER = 1
    register(alice, "first")
    services.statement_apply(signed=alice.sign("release", "first", 2), source="api")
    assert register(alice, "second").status == "active"


# -------------------------------------------------------------------------------------------- the database wins


def test_a_race_lost_to_the_database_is_refused_with_the_reason_not_an_error(
    alice: Owner, bob: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks ran before a concurrent registration committed; the constraint catches it, the retry explains."""
    register(alice, "alice")
    real_refusal = selectors.registration_refusal
    calls = []

    def too_early(**kwargs: object) -> object:
        calls.append(kwargs)
        return None if len(calls) == 1 else real_refusal(**kwargs)

    monkeypatch.setattr(selectors, "registration_refusal", too_early)
    refusal = hold_refused(bob, "a1ice")
    assert refusal.code == "name_confusable"
    assert len(calls) == 2


def test_a_race_lost_twice_is_refused_as_taken(alice: Owner, bob: Owner, monkeypatch: pytest.MonkeyPatch) -> None:
    register(alice, "alice")
    monkeypatch.setattr(selectors, "registration_refusal", lambda **kwargs: None)
    monkeypatch.setattr(services, "check_successor", lambda previous, new: None)
    assert hold_refused(bob, "alice").code == "name_taken"


# ------------------------------------------------------------------------------------------------------ expiry


def test_an_unanswered_hold_is_freed_after_the_hold_time(alice: Owner, bob: Owner) -> None:
    hold(alice, "alice")
    NameRecord.objects.update(status_changed_at=NameRecord.objects.get().status_changed_at - timedelta(minutes=11))
    assert services.name_holds_expire(older_than=timedelta(minutes=10)) == 1
    assert (NameRecord.objects.count(), StatementRecord.objects.count()) == (0, 0)
    assert register(bob, "alice").owner_key == bob.key


def test_a_recent_hold_and_an_active_name_are_kept(alice: Owner) -> None:
    hold(alice, "recent")
    register(alice, "active")
    NameRecord.objects.filter(name="active").update(
        status_changed_at=NameRecord.objects.get(name="active").status_changed_at - timedelta(days=1)
    )
    assert services.name_holds_expire(older_than=timedelta(minutes=10)) == 0
    assert dict(NameRecord.objects.values_list("name", "status")) == {"recent": "pending", "active": "active"}


def test_an_expired_hold_of_a_released_name_puts_the_release_back(alice: Owner, bob: Owner, carol: Owner) -> None:
    register(alice, "alice")
    release = alice.sign("release", "alice", 2)
    services.statement_apply(signed=release, source="api")
    hold(bob, "alice", 3)
    NameRecord.objects.update(status_changed_at=NameRecord.objects.get().status_changed_at - timedelta(hours=1))
    assert services.name_holds_expire(older_than=timedelta(minutes=10)) == 1
    record = NameRecord.objects.get()
    assert (record.status, record.seq, record.statement, record.owner_key) == (
        "released",
        2,
        release.statement.to_dict(),
        "",
    )
    assert list(record.statements.values_list("seq", flat=True)) == [1, 2]
    assert register(carol, "alice", 3).status == "active"


def test_expiring_twice_frees_a_hold_once(alice: Owner) -> None:
    hold(alice, "alice")
    NameRecord.objects.update(status_changed_at=NameRecord.objects.get().status_changed_at - timedelta(hours=1))
    assert services.name_holds_expire(older_than=timedelta(minutes=10)) == 1
    assert services.name_holds_expire(older_than=timedelta(minutes=10)) == 0
