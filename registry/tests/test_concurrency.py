"""Two registrations at once on PostgreSQL: the database's constraints let exactly one win."""

import logging
import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection

from mns_client.protocol.errors import MNSError
from registry import services
from registry.models import NameRecord, StatementRecord
from registry.tests.support import Owner, hold

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres")]


def race(monkeypatch: pytest.MonkeyPatch, attempts: list[Callable[[], object]]) -> list[str]:
    """Run the attempts in threads that all pass the service's checks before any of them writes."""
    barrier = threading.Barrier(len(attempts), timeout=10)
    passed = threading.local()
    real_check = services.check_successor

    def check_then_wait(previous: object, new: object) -> None:
        real_check(previous, new)
        if not getattr(passed, "once", False):
            passed.once = True
            barrier.wait()  # every thread has now seen "free" and is about to write

    monkeypatch.setattr(services, "check_successor", check_then_wait)
    outcomes: list[str] = []

    def run(attempt: Callable[[], object]) -> None:
        try:
            attempt()
            outcomes.append("won")
        except MNSError as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(attempt,)) for attempt in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


def test_two_keys_registering_lookalikes_at_once_exactly_one_wins(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, alice: Owner, bob: Owner
) -> None:
    caplog.set_level(logging.INFO, logger="registry.services")
    outcomes = race(monkeypatch, [lambda: hold(alice, "alice"), lambda: hold(bob, "a1ice")])
    assert outcomes == ["name_confusable", "won"]
    assert "a concurrent registration won" in caplog.text  # the constraint decided, not the checks
    assert NameRecord.objects.count() == StatementRecord.objects.count() == 1


def test_two_keys_registering_one_name_at_once_exactly_one_wins(
    monkeypatch: pytest.MonkeyPatch, alice: Owner, bob: Owner
) -> None:
    outcomes = race(monkeypatch, [lambda: hold(alice, "alice"), lambda: hold(bob, "alice")])
    assert outcomes == ["name_taken", "won"]
    assert NameRecord.objects.count() == StatementRecord.objects.count() == 1


def test_one_key_registering_two_lookalikes_at_once_gets_one(monkeypatch: pytest.MonkeyPatch, alice: Owner) -> None:
    outcomes = race(monkeypatch, [lambda: hold(alice, "modern"), lambda: hold(alice, "rnodern")])
    assert outcomes == ["name_confusable", "won"]
    assert NameRecord.objects.count() == 1


def test_an_accept_and_the_owners_withdrawal_at_once_exactly_one_wins(alice: Owner, bob: Owner) -> None:
    # given alice's name offered to bob; when bob's accept and alice's update (which withdraws the offer) race
    hold(alice, "alice")
    services.name_activate(name="alice")
    now = int(time.time() * 1000)
    offer = alice.sign("transfer", "alice", 2, to=bob.key, expires_at=now + 3600_000, issued_at=now)
    services.statement_apply(signed=offer, source="api")
    accept = bob.sign("accept", "alice", 3, accepts=2, issued_at=now + 1)
    withdrawal = alice.sign("update", "alice", 3)
    barrier = threading.Barrier(2, timeout=10)
    outcomes: dict[str, str] = {}

    def run(who: str, signed: object) -> None:
        barrier.wait()
        try:
            services.statement_apply(signed=signed, source="api")
            outcomes[who] = "won"
        except MNSError as refused:
            outcomes[who] = refused.code
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=args) for args in (("bob", accept), ("alice", withdrawal))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then exactly one won (the row lock orders them), and the record is the winner's
    assert sorted(outcomes.values()) == ["statement_stale_seq", "won"]
    winner = next(who for who, outcome in outcomes.items() if outcome == "won")
    record = NameRecord.objects.get()
    assert record.owner_key == {"bob": bob.key, "alice": alice.key}[winner]
    assert StatementRecord.objects.filter(seq=3).count() == 1
