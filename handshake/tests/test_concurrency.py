"""Races on PostgreSQL: two answers, two pickups, two challenges at once; the database lets exactly one win."""

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from handshake import selectors, services
from handshake.models import Answer, Challenge, Session
from handshake.tests.support import Started, answer, receive, start
from mns_client.protocol.errors import MNSError
from mns_client.protocol.handshake import new_verifier, verifier_hash
from registry.tests.support import Owner, register

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres", "gateway"),
]


def race(
    monkeypatch: pytest.MonkeyPatch, at: str, attempts: list[Callable[[], object]], where: object = services
) -> list[Any]:
    """Run the attempts in threads that all get past ``<where>.<at>`` (``services`` unless told) before any of them
    goes on."""
    barrier = threading.Barrier(len(attempts), timeout=10)
    real = getattr(where, at)

    def then_wait(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        barrier.wait()
        return result

    monkeypatch.setattr(where, at, then_wait)
    outcomes: list[Any] = []

    def run(attempt: Callable[[], object]) -> None:
        try:
            outcomes.append(attempt())
        except MNSError as refused:
            outcomes.append(refused.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(attempt,)) for attempt in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes, key=str)


@pytest.fixture
def started(alice: Owner) -> Started:
    register(alice, "alice")
    return start()


def test_two_right_answers_at_once_verify_the_challenge_exactly_once(
    monkeypatch: pytest.MonkeyPatch, started: Started, alice: Owner
) -> None:
    messages = [answer(alice, started.id, started.code) for _ in range(2)]
    outcomes = race(monkeypatch, "secret_matches", [lambda m=m: receive(m) for m in messages])
    assert outcomes == ["challenge_used", "verified"]
    assert sorted(Answer.objects.values_list("reason", flat=True)) == ["", "challenge_used"]
    assert Challenge.objects.get().status == "verified"


def test_one_message_processed_twice_at_once_is_judged_and_counted_once(
    monkeypatch: pytest.MonkeyPatch, started: Started, alice: Owner
) -> None:
    """A claim taken over while its first worker still runs: both reach the answer's log together; the second
    waits for the first to commit and finds the message logged."""
    message = answer(alice, started.id, "not-the-code")
    outcomes = race(monkeypatch, "answer_arrived_at", [lambda: receive(message)] * 2, where=selectors)
    assert outcomes == ["code_wrong", "duplicate"]
    assert list(Answer.objects.values_list("msgid", "reason")) == [(message.msgid, "code_wrong")]
    assert Challenge.objects.get().attempts == 1


def test_the_conditional_update_alone_lets_one_of_two_answers_win(
    monkeypatch: pytest.MonkeyPatch, started: Started, alice: Owner
) -> None:
    """Without the name's row lock in between, both reach the UPDATE together: still exactly one verifies."""
    monkeypatch.setattr(services, "_name_changed", lambda challenge, at: None)
    messages = [answer(alice, started.id, started.code) for _ in range(2)]
    outcomes = race(monkeypatch, "_name_changed", [lambda m=m: receive(m) for m in messages])
    assert outcomes == ["challenge_used", "verified"]


def test_two_pickups_at_once_open_exactly_one_session(
    monkeypatch: pytest.MonkeyPatch, started: Started, alice: Owner
) -> None:
    receive(answer(alice, started.id, started.code))

    def pick() -> str:
        services.session_open(challenge_id=started.id, verifier=started.verifier)
        return "opened"

    outcomes = race(monkeypatch, "secret_matches", [pick, pick])
    assert outcomes == ["opened", "session_already_issued"]
    assert Session.objects.count() == 1


def test_wrong_answers_at_once_are_all_counted_and_fail_the_challenge_once(
    monkeypatch: pytest.MonkeyPatch, started: Started, alice: Owner
) -> None:
    Challenge.objects.update(max_attempts=3)
    messages = [answer(alice, started.id, f"guess-{n}") for n in range(4)]
    outcomes = race(monkeypatch, "secret_matches", [lambda m=m: receive(m) for m in messages])
    assert outcomes.count("too_many_attempts") == 2  # the third, and the fourth finding it failed
    assert outcomes.count("code_wrong") == 2
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.attempts) == ("failed", 3)


def test_concurrent_challenges_never_exceed_the_limit_per_name_and_client(
    monkeypatch: pytest.MonkeyPatch, alice: Owner, settings: Any
) -> None:
    settings.MNS_HANDSHAKE_OPEN_PER_NAME = 1
    register(alice, "alice")

    def issue() -> str:
        services.challenge_issue(
            name="alice", purpose="read", verifier_hash=verifier_hash(new_verifier()), client_address="203.0.113.5"
        )
        return "issued"

    outcomes = race(monkeypatch, "normalise", [issue, issue, issue])
    assert outcomes == ["issued", "too_many_challenges", "too_many_challenges"]
    assert Challenge.objects.count() == 1
