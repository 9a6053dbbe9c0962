"""Staff moderation: reserve, unreserve, suspend and restore, each with a reason kept in the audit log."""

import pytest
from django.contrib.auth.models import User

from registry import services
from registry.models import AuditEntry, NameRecord
from registry.tests.support import FULL_WIDTH_ALICE, Owner, refused, register

pytestmark = pytest.mark.django_db


def audit_trail() -> list[tuple[str, str, str, str, str, str]]:
    return list(
        AuditEntry.objects.order_by("id").values_list(
            "name", "action", "actor_username", "reason", "status_before", "status_after"
        )
    )


def test_reserving_an_unknown_name_creates_a_reserved_record_and_an_audit_entry(staff: User) -> None:
    record = services.name_reserve(name="PayPal", actor=staff, reason="brand protection")
    assert (record.name, record.status, record.owner_key, record.seq) == ("paypal", "reserved", "", None)
    assert audit_trail() == [("paypal", "reserve", "moderator", "brand protection", "", "reserved")]
    assert AuditEntry.objects.get().actor == staff


def test_reserving_a_released_name_keeps_its_history(alice: Owner, staff: User) -> None:
    register(alice, "alice")
    services.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    record = services.name_reserve(name="alice", actor=staff, reason="abused for years")
    assert (record.status, record.seq) == ("reserved", 2)
    assert record.statements.count() == 2


def test_a_held_name_cannot_be_reserved(alice: Owner, staff: User) -> None:
    register(alice, "alice")
    refusal = refused(lambda: services.name_reserve(name="alice", actor=staff, reason="mine now"))
    assert (refusal.code, refusal.status) == ("name_not_reservable", 409)


def test_a_lookalike_of_a_live_name_cannot_be_reserved(alice: Owner, staff: User) -> None:
    register(alice, "alice")
    refusal = refused(lambda: services.name_reserve(name="a1ice", actor=staff, reason="block it"))
    assert refusal.code == "name_confusable"


def test_unreserving_a_never_registered_name_forgets_it_but_keeps_the_audit(staff: User) -> None:
    services.name_reserve(name="paypal", actor=staff, reason="brand")
    assert services.name_unreserve(name="paypal", actor=staff, reason="the brand asked us to") is None
    assert not NameRecord.objects.exists()
    assert audit_trail()[-1] == ("paypal", "unreserve", "moderator", "the brand asked us to", "reserved", "")


def test_unreserving_a_once_registered_name_releases_it_again(alice: Owner, bob: Owner, staff: User) -> None:
    register(alice, "alice")
    services.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    services.name_reserve(name="alice", actor=staff, reason="cool-off")
    assert services.name_unreserve(name="alice", actor=staff, reason="cool-off over").status == "released"
    assert register(bob, "alice", 3).owner_key == bob.key


def test_suspending_and_restoring_keep_the_owners_keys_and_log_who_when_why(alice: Owner, staff: User) -> None:
    before = register(alice, "alice")
    suspended = services.name_suspend(name="alice", actor=staff, reason="phishing reports")
    assert (suspended.status, suspended.owner_key, suspended.box_key) == ("suspended", alice.key, before.box_key)
    restored = services.name_restore(name="alice", actor=staff, reason="owner proved it was a mistake")
    assert (restored.status, restored.seq, restored.statement) == ("active", 1, before.statement)
    assert audit_trail() == [
        ("alice", "suspend", "moderator", "phishing reports", "active", "suspended"),
        ("alice", "restore", "moderator", "owner proved it was a mistake", "suspended", "active"),
    ]
    assert all(entry.at is not None for entry in AuditEntry.objects.all())


@pytest.mark.parametrize("reason", ["", "   "])
def test_every_staff_action_needs_a_reason(alice: Owner, staff: User, reason: str) -> None:
    register(alice, "alice")
    for action in (services.name_reserve, services.name_unreserve, services.name_suspend, services.name_restore):
        refusal = refused(lambda action=action: action(name="alice", actor=staff, reason=reason))
        assert refusal.code == "reason_required"


def test_actions_on_a_name_in_the_wrong_state_are_refused(alice: Owner, staff: User) -> None:
    register(alice, "alice")
    assert refused(lambda: services.name_restore(name="alice", actor=staff, reason="x")).code == "name_not_suspended"
    assert refused(lambda: services.name_unreserve(name="alice", actor=staff, reason="x")).code == "name_not_reserved"
    services.name_reserve(name="paypal", actor=staff, reason="brand")
    assert refused(lambda: services.name_suspend(name="paypal", actor=staff, reason="x")).code == "name_not_active"
    assert refused(lambda: services.name_suspend(name="nobody", actor=staff, reason="x")).code == "name_not_found"


def test_staff_actions_take_any_spelling_of_a_name(alice: Owner, staff: User) -> None:
    register(alice, "alice")
    assert services.name_suspend(name=FULL_WIDTH_ALICE, actor=staff, reason="spam").name == "alice"
