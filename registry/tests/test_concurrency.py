"""Two registrations at once on PostgreSQL: the database's constraints let exactly one win."""

import logging
import threading
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
