"""The owner's node answers over Maxima: who may answer, with what, how often, until when, and the reply."""

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from handshake import selectors, services
from handshake.models import Answer, Challenge, Session
from handshake.tests.support import Started, answer, receive, snapshot, start
from maxima import routing
from maxima.models import InboundEvent, OutboundMessage
from maxima.routing import Ignored
from maxima.services import MaximaEvent, inbound_process, inbound_process_batch, inbound_store
from mns_client.protocol.handshake import Result
from registry import services as registry
from registry.models import NameRecord
from registry.tests.support import Owner, hold, register
from testsupport import maxima_fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gateway")]

NODE_B_ADDRESS = maxima_fixture("02-")["parsed"]["response"]["p2pidentity"]


@pytest.fixture
def started(alice: Owner) -> Started:
    register(alice, "alice")
    return start()


def results() -> list[tuple[str, dict[str, Any]]]:
    """The verdicts queued in the outbox: (destination, message)."""
    rows = OutboundMessage.objects.order_by("id")
    return [(row.destination, json.loads(bytes(row.payload))) for row in rows]


def counted_only(before: dict, after: dict) -> dict:
    """``after`` with the attempt count, the answer log and the reply put back as they were ``before``."""
    challenges = [{**row, "attempts": 0} for row in after["challenges"]]
    return {**after, "challenges": challenges, "answers": before["answers"], "outbox": before["outbox"]}


# ------------------------------------------------------------------------------------------------- accepted


def test_the_owners_node_sending_the_right_code_verifies_the_challenge(started: Started, alice: Owner) -> None:
    message = answer(alice, started.id, started.code, reply_to=NODE_B_ADDRESS)
    assert receive(message) == "verified"
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.attempts, challenge.failure_reason) == ("verified", 0, "")
    assert challenge.answered_at is not None
    assert challenge.pickup_until - challenge.answered_at == timedelta(seconds=300)
    assert list(Answer.objects.values_list("msgid", "sender", "outcome", "reason")) == [
        (message.msgid, alice.key, "verified", "")
    ]
    assert not Session.objects.exists()  # only the verifier's holder gets one


def test_the_verdict_goes_back_to_reply_to_through_the_outbox_without_the_code(started: Started, alice: Owner) -> None:
    message = answer(alice, started.id, started.code, reply_to=NODE_B_ADDRESS)
    receive(message)
    (row,) = OutboundMessage.objects.all()
    assert (row.destination, row.application, row.max_attempts) == (NODE_B_ADDRESS, "mns", 5)
    assert row.idempotency_key == f"handshake-result:{started.id}:{message.msgid}"
    assert Result.from_bytes(bytes(row.payload)) == Result(started.id, "verified")
    assert started.code not in bytes(row.payload).decode()


def test_without_reply_to_the_verdict_goes_to_the_senders_key(started: Started, alice: Owner) -> None:
    receive(answer(alice, started.id, started.code))
    verdict = {"v": 1, "type": "handshake-result", "challenge": started.id, "status": "verified"}
    assert results() == [(alice.key, verdict)]


def test_an_answer_that_arrived_in_time_counts_even_if_processed_late(started: Started, alice: Owner) -> None:
    """The webhook stored it before the expiry; a queue backlog must not make it late."""
    message = answer(alice, started.id, started.code)
    row, _ = inbound_store(event=_event(message), now_ms=_now_ms())
    InboundEvent.objects.filter(id=row.id).update(received_at=timezone.now() - timedelta(seconds=30))
    Challenge.objects.update(expires_at=timezone.now() - timedelta(seconds=10))
    assert inbound_process(event_id=row.id, claim="late") == "done"
    assert Challenge.objects.get().status == "verified"


def test_an_answer_is_judged_at_the_time_its_message_says_the_webhook_stored_it(
    started: Started, alice: Owner, django_assert_num_queries: object
) -> None:
    """The inbound task hands the stored time over with the message: nothing is read again to know it."""
    stored_at = timezone.now() - timedelta(seconds=30)
    message = dataclasses.replace(answer(alice, started.id, started.code), received_at=stored_at)
    with django_assert_num_queries(0):
        assert selectors.answer_arrived_at(message=message) == stored_at
    Challenge.objects.update(expires_at=timezone.now() - timedelta(seconds=10))
    assert receive(message) == "verified"
    assert Answer.objects.get().received_at == stored_at


def test_an_answer_without_its_stored_time_reads_it_from_its_event(started: Started, alice: Owner) -> None:
    """A message made outside the inbound task (no ``received_at``) still counts from when the webhook stored it."""
    message = answer(alice, started.id, started.code)
    row, _ = inbound_store(event=_event(message), now_ms=_now_ms())
    stored_at = timezone.now() - timedelta(seconds=30)
    InboundEvent.objects.filter(id=row.id).update(received_at=stored_at)
    by_hand = dataclasses.replace(message, event_id=row.id)
    assert by_hand.received_at is None
    assert selectors.answer_arrived_at(message=by_hand) == stored_at


def test_a_verified_answer_leaves_the_challenge_as_stored_without_reading_it_again(
    started: Started, alice: Owner
) -> None:
    row, _ = inbound_store(event=_event(answer(alice, started.id, started.code)), now_ms=_now_ms())
    with CaptureQueriesContext(connection) as looked_up:  # what the read of a challenge sends on this connection
        selectors.challenge_find(challenge_id=started.id)
    challenge_read = " ".join(looked_up[-1]["sql"].split()[:2])  # "EXECUTE mns_…" (PostgreSQL) or "SELECT c.id,"
    with CaptureQueriesContext(connection) as queries:
        assert inbound_process(event_id=row.id, claim="t") == "done"
    challenge_reads = [
        q["sql"] for q in queries if q["sql"].startswith((challenge_read, 'SELECT "handshake_challenge"'))
    ]
    event_reads = [q["sql"] for q in queries if q["sql"].startswith('SELECT "maxima_inboundevent"."received_at"')]
    assert (len(challenge_reads), event_reads) == (1, [])  # the challenge read once, to judge; the event not again
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.attempts) == ("verified", 0)
    assert challenge.pickup_until - challenge.answered_at == timedelta(seconds=300)


@pytest.mark.usefixtures("postgres")
def test_an_answer_whose_prepared_read_was_lost_is_tried_again_not_failed(started: Started, alice: Owner) -> None:
    """The challenge's read is kept prepared on the connection; if the session lost it (a pooler's reset, ``DISCARD
    ALL``) inside the inbound batch's transaction, the event goes back to pending, as for any transient error, and
    is judged on the next run. (A plan that no longer fits is lost the same way: ``core.postgresql``'s tests.)"""
    row, _ = inbound_store(event=_event(answer(alice, started.id, started.code)), now_ms=_now_ms())
    with CaptureQueriesContext(connection) as read:  # prepared on this connection: its name
        selectors.challenge_find(challenge_id=started.id)
    execute, name = read[-1]["sql"].split()[:2]
    assert execute == "EXECUTE"
    with connection.cursor() as cursor:
        cursor.execute(f"DEALLOCATE {name}")  # that one only: the claim's statement is not the point here
    assert inbound_process_batch(claim="first", limit=10) == {"pending": 1}
    event = InboundEvent.objects.get(id=row.id)
    assert (event.status, event.last_error.startswith("will retry: ")) == ("pending", True)
    assert Challenge.objects.get().status == "pending"
    assert inbound_process_batch(claim="second", limit=10) == {"done": 1}
    assert Challenge.objects.get().status == "verified"


# -------------------------------------------------------------------------------------------------- refused


def test_the_code_sent_from_another_key_is_refused_counted_and_not_answered(started: Started, mallory: Owner) -> None:
    before = snapshot()
    assert receive(answer(mallory, started.id, started.code, reply_to=NODE_B_ADDRESS)) == "wrong_sender"
    after = snapshot()
    assert counted_only(before, after) == before  # nothing but the count and the log entry
    assert Challenge.objects.get().attempts == 1
    assert list(Answer.objects.values_list("sender", "outcome", "reason")) == [(mallory.key, "refused", "wrong_sender")]
    assert results() == []  # the gateway does not message strangers


def test_a_wrong_code_is_refused_counted_and_answered(started: Started, alice: Owner) -> None:
    before = snapshot()
    assert receive(answer(alice, started.id, "not-the-code", reply_to=NODE_B_ADDRESS)) == "code_wrong"
    assert counted_only(before, snapshot()) == before
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.attempts) == ("pending", 1)
    assert results()[0][1] == {
        "v": 1,
        "type": "handshake-result",
        "challenge": started.id,
        "status": "failed",
        "reason": "code_wrong",
    }


def test_a_replayed_message_with_the_same_msgid_changes_nothing(started: Started, alice: Owner) -> None:
    message = answer(alice, started.id, "not-the-code")
    receive(message)
    before = snapshot()
    assert receive(message) == "duplicate"
    assert snapshot() == before
    assert Challenge.objects.get().attempts == 1  # counted once


def test_a_replayed_webhook_is_stored_once_by_the_inbox(started: Started, alice: Owner) -> None:
    message = answer(alice, started.id, started.code)
    _, first = inbound_store(event=_event(message), now_ms=_now_ms())
    before = snapshot()
    _, again = inbound_store(event=_event(message), now_ms=_now_ms())
    assert (first, again) == (True, False)
    assert snapshot() == before


def test_a_second_valid_answer_finds_the_challenge_used(started: Started, alice: Owner) -> None:
    receive(answer(alice, started.id, started.code))
    before = snapshot()
    assert receive(answer(alice, started.id, started.code)) == "challenge_used"
    after = snapshot()
    assert after["challenges"] == before["challenges"]
    assert after["sessions"] == before["sessions"]
    assert results()[-1][1]["reason"] == "challenge_used"


def test_an_answer_after_the_expiry_is_refused_and_not_counted(started: Started, alice: Owner) -> None:
    Challenge.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    before = snapshot()
    assert receive(answer(alice, started.id, started.code)) == "challenge_expired"
    after = snapshot()
    assert after["challenges"] == before["challenges"]
    assert after["sessions"] == before["sessions"] == []
    assert results()[0][1]["reason"] == "challenge_expired"


def test_brute_force_past_the_attempt_limit_fails_the_challenge_for_good(
    started: Started, alice: Owner, mallory: Owner
) -> None:
    verdicts = [receive(answer(alice, started.id, f"guess-{n}")) for n in range(3)]
    verdicts.append(receive(answer(mallory, started.id, started.code)))
    verdicts.append(receive(answer(alice, started.id, "guess-4")))
    assert verdicts == ["code_wrong"] * 3 + ["wrong_sender", "too_many_attempts"]
    challenge = Challenge.objects.get()
    assert (challenge.status, challenge.failure_reason, challenge.attempts) == ("failed", "too_many_attempts", 5)
    before = snapshot()
    assert receive(answer(alice, started.id, started.code)) == "too_many_attempts"  # even the right code now
    assert snapshot()["challenges"] == before["challenges"]
    assert Challenge.objects.get().attempts == 5


def test_the_limit_is_configurable(started: Started, alice: Owner, settings: object) -> None:
    settings.MNS_HANDSHAKE_MAX_ATTEMPTS = 1
    limited = start()
    assert receive(answer(alice, limited.id, "guess")) == "too_many_attempts"


def test_a_challenge_whose_name_changed_hands_cannot_be_verified(started: Started, alice: Owner) -> None:
    registry.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    assert receive(answer(alice, started.id, started.code)) == "name_changed"
    assert Challenge.objects.get().failure_reason == "name_changed"


@pytest.mark.parametrize(
    "data",
    [
        b'{"v":1,"type":"handshake","challenge":"AAAAAAAAAAAAAAAAAAAAAA","code":"x"}',  # unknown challenge
        b'{"v":1,"type":"handshake","challenge":"AAAAAAAAAAAAAAAAAAAAAA"}',  # no code
        b'{"v":1,"type":"handshake","challenge":"AAAAAAAAAAAAAAAAAAAAAA","code":"x","reply_to":"nowhere"}',
    ],
)
def test_what_is_not_an_answer_is_ignored_and_changes_nothing(started: Started, alice: Owner, data: bytes) -> None:
    message = answer(alice, started.id, started.code)
    before = snapshot()
    with pytest.raises(Ignored):
        routing.dispatch(dataclasses.replace(message, data=data))
    assert snapshot() == before


@pytest.mark.parametrize(
    "change",
    [{"v": True}, {"v": 1.0}, {"reply_to": None}, {"code": None}],
    ids=["v-true", "v-float", "reply_to-null", "code-null"],
)
def test_the_right_code_in_a_second_spelling_is_not_an_answer_and_changes_nothing(
    started: Started, alice: Owner, change: dict[str, Any]
) -> None:
    message = answer(alice, started.id, started.code)
    data = json.dumps({**json.loads(message.data), **change}).encode()
    before = snapshot()

    with pytest.raises(Ignored):
        routing.dispatch(dataclasses.replace(message, data=data))
    with pytest.raises(Ignored):  # the service refuses it too, whoever calls it
        receive(dataclasses.replace(message, data=data))

    assert snapshot() == before


def test_an_answer_with_a_key_written_twice_is_not_read_and_changes_nothing(started: Started, alice: Owner) -> None:
    message = answer(alice, started.id, started.code)
    data = b'{"v":1,"v":1,' + message.data[len(b'{"v":1,') :]
    before = snapshot()

    with pytest.raises(Ignored):
        routing.dispatch(dataclasses.replace(message, data=data))

    assert snapshot() == before


# ------------------------------------------------------------------------------------------------- register


@pytest.fixture
def completions(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The completions registered with the handshake, for a test to replace (restored afterwards)."""
    registered = dict(services._completions)
    monkeypatch.setattr(services, "_completions", registered)
    return registered


@pytest.fixture
def confirmations(completions: dict) -> list[Challenge]:
    """Stands in for the registration flow's completion, which creates the mailbox and activates the name."""
    confirmed: list[Challenge] = []

    def complete(challenge: Challenge) -> bool:
        confirmed.append(challenge)
        registry.name_activate(name=challenge.record.name)
        return True

    services.register_completion("register", complete)
    return confirmed


def test_a_verified_register_handshake_calls_the_registered_completion(alice: Owner, confirmations: list) -> None:
    hold(alice, "alice")
    started = start(purpose="register")
    assert receive(answer(alice, started.id, started.code)) == "verified"
    assert [challenge.id for challenge in confirmations] == [started.id]
    assert NameRecord.objects.get().status == "active"


def test_the_registration_flow_is_the_completion_of_register_handshakes() -> None:
    from registration.services import handshake_verified

    assert services._completions["register"] is handshake_verified


def test_without_a_completion_a_register_answer_verifies_nothing(alice: Owner, completions: dict) -> None:
    """Fail closed: with no flow to complete it, a right answer must not leave a verified register behind."""
    completions.clear()
    hold(alice, "alice")
    started = start(purpose="register")
    row, _ = inbound_store(event=_event(answer(alice, started.id, started.code)), now_ms=_now_ms())
    before = snapshot()
    assert inbound_process(event_id=row.id, claim="t") == "failed"
    assert snapshot() == before
    assert Challenge.objects.get().status == "pending"


def test_a_failing_completion_rolls_the_verification_back(alice: Owner, completions: dict) -> None:
    def broken(challenge: Challenge) -> bool:
        raise RuntimeError("the mailbox could not be created")

    services.register_completion("register", broken)
    hold(alice, "alice")
    started = start(purpose="register")
    row, _ = inbound_store(event=_event(answer(alice, started.id, started.code)), now_ms=_now_ms())
    before = snapshot()
    assert inbound_process(event_id=row.id, claim="t") == "failed"
    assert snapshot() == before


def test_a_register_handshake_is_refused_from_any_other_key(alice: Owner, mallory: Owner) -> None:
    hold(alice, "alice")
    started = start(purpose="register")
    assert receive(answer(mallory, started.id, started.code)) == "wrong_sender"
    assert Challenge.objects.get().status == "pending"


# ------------------------------------------------------------------------------------------------- wiring


def test_an_mns_handshake_message_stored_by_the_webhook_is_judged_by_the_inbound_task(
    started: Started, alice: Owner
) -> None:
    row, _ = inbound_store(event=_event(answer(alice, started.id, started.code)), now_ms=_now_ms())
    assert inbound_process(event_id=row.id, claim="t") == "done"
    assert Challenge.objects.get().status == "verified"


def test_a_refused_answer_still_marks_its_event_done_so_the_count_is_kept(started: Started, alice: Owner) -> None:
    row, _ = inbound_store(event=_event(answer(alice, started.id, "wrong")), now_ms=_now_ms())
    assert inbound_process(event_id=row.id, claim="t") == "done"
    assert Challenge.objects.get().attempts == 1


def _now_ms() -> int:
    return int(timezone.now().timestamp() * 1000)


def _event(message: Any) -> MaximaEvent:
    return MaximaEvent(
        msgid=message.msgid,
        sender=message.sender,
        recipient_key="0x00",
        application="mns",
        data=message.data,
        timemilli=_now_ms(),
        random="0x01",
    )
