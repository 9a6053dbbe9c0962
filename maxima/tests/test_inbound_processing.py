"""Processing stored events: exactly one claim wins, handlers are isolated, and nothing stays stuck."""

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from core import queue
from maxima import routing
from maxima.models import InboundEvent
from maxima.routing import InboundMessage
from maxima.selectors import inbound_due, inbound_lease
from maxima.services import (
    MaximaEvent,
    _claim_batch,
    _process_claimed,
    inbound_process,
    inbound_process_batch,
    inbound_retry,
    inbound_store,
    sweep_mark_enqueued,
)
from mns_client.protocol.codecs import to_hex
from mns_site.celery import app as celery_app
from testsupport import maxima_fixture
from testsupport.locks import locked_elsewhere

pytestmark = pytest.mark.django_db

SENDER = json.loads(maxima_fixture("11-")["raw_body"])["data"]["from"]


def event(n: int, *, application: str = "app-test", data: bytes = b"hello") -> MaximaEvent:
    return MaximaEvent(
        msgid="0x" + f"{n:064X}",
        sender=SENDER,
        recipient_key="0x00",
        application=application,
        data=data,
        timemilli=1_700_000_000_000,
        random="0x01",
    )


def store(n: int, **kwargs: object) -> InboundEvent:
    row, created = inbound_store(event=event(n, **kwargs), now_ms=1_700_000_000_000)
    assert created
    return row


@pytest.fixture
def handled() -> Iterator[list[InboundMessage]]:
    seen: list[InboundMessage] = []

    def handler(message: InboundMessage) -> None:
        if message.data == b"boom":
            raise ValueError("the handler broke")
        seen.append(message)

    routing._applications["app-test"] = handler
    yield seen
    routing._applications.pop("app-test", None)


def test_the_first_claim_runs_the_handler_and_a_second_is_skipped(handled: list) -> None:
    row = store(1)
    assert inbound_process(event_id=row.id, claim="task-a") == "done"
    assert inbound_process(event_id=row.id, claim="task-b") == "skipped"
    assert len(handled) == 1
    assert handled[0].sender == SENDER
    row.refresh_from_db()
    assert (row.status, row.attempts, row.claimed_by) == ("done", 1, "task-a")


def test_a_handler_is_told_when_the_webhook_stored_its_message(handled: list) -> None:
    """As the task read it with the event, so a handler that judges an arrival time needs no query of its own."""
    row = store(1)
    stored_at = timezone.now() - timedelta(seconds=42)
    InboundEvent.objects.filter(id=row.id).update(received_at=stored_at)
    inbound_process_batch(claim="t1", limit=10)
    assert [(m.event_id, m.received_at) for m in handled] == [(row.id, stored_at)]


def test_a_failing_handler_marks_its_event_failed_and_others_still_run(handled: list) -> None:
    broken, fine = store(1, data=b"boom"), store(2)
    assert inbound_process(event_id=broken.id, claim="t1") == "failed"
    assert inbound_process(event_id=fine.id, claim="t2") == "done"
    broken.refresh_from_db()
    assert broken.last_error == "ValueError: the handler broke"
    assert [m.event_id for m in handled] == [fine.id]


def test_a_failed_event_runs_again_when_staff_retry_it(
    handled: list, django_capture_on_commit_callbacks: object
) -> None:
    row = store(1, data=b"boom")
    inbound_process(event_id=row.id, claim="t1")
    InboundEvent.objects.filter(id=row.id).update(data=b"fixed")
    with django_capture_on_commit_callbacks(execute=True):
        assert inbound_retry(event_id=row.id) is True
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("done", 2)


def test_a_handler_failure_rolls_back_its_own_writes(handled: list) -> None:
    def writes_then_fails(message: InboundMessage) -> None:
        InboundEvent.objects.filter(id=message.event_id).update(random="0xWRITTEN")
        raise RuntimeError("after writing")

    routing._applications["app-test"] = writes_then_fails
    row = store(1)
    inbound_process(event_id=row.id, claim="t1")
    row.refresh_from_db()
    assert (row.status, row.random) == ("failed", "0x01")


def test_an_unknown_application_is_recorded_as_ignored() -> None:
    row = store(1, application="somebody-elses-app")
    assert inbound_process(event_id=row.id, claim="t1") == "ignored"
    row.refresh_from_db()
    assert row.last_error == "no handler for application 'somebody-elses-app'"


def test_an_mns_message_goes_to_the_handler_of_its_type() -> None:
    seen = []
    routing.register_type("mns", "ping-test", lambda message, body: seen.append(body))
    try:
        ok = store(1, application="mns", data=b'{"v":1,"type":"ping-test","n":7}')
        unknown = store(2, application="mns", data=b'{"v":1,"type":"nope"}')
        garbage = store(3, application="mns", data=b"not json")
        assert inbound_process(event_id=ok.id, claim="t") == "done"
        assert inbound_process(event_id=unknown.id, claim="t") == "ignored"
        assert inbound_process(event_id=garbage.id, claim="t") == "ignored"
    finally:
        routing._types.pop(("mns", "ping-test"))
    assert seen == [{"v": 1, "type": "ping-test", "n": 7}]


def test_a_redelivered_task_takes_back_its_own_claim_after_its_worker_died(handled: list) -> None:
    row = store(1)
    InboundEvent.objects.filter(id=row.id).update(status="processing", claimed_by="task-a", claimed_at=timezone.now())
    assert inbound_process(event_id=row.id, claim="task-b") == "skipped"
    assert inbound_process(event_id=row.id, claim="task-a") == "done"


def test_the_sweep_finds_old_pending_events_and_abandoned_claims_only() -> None:
    old_pending, fresh_pending, abandoned, live_claim, done = (store(n) for n in range(1, 6))
    an_hour_ago = timezone.now() - timedelta(hours=1)
    InboundEvent.objects.filter(id__in=[old_pending.id, abandoned.id, live_claim.id, done.id]).update(
        received_at=an_hour_ago
    )
    InboundEvent.objects.filter(id=abandoned.id).update(status="processing", claimed_at=an_hour_ago)
    InboundEvent.objects.filter(id=live_claim.id).update(status="processing", claimed_at=timezone.now())
    InboundEvent.objects.filter(id=done.id).update(status="done")
    assert inbound_due(limit=10) == [old_pending.id, abandoned.id]
    assert fresh_pending.id not in inbound_due(limit=10)


def test_the_sweep_does_not_enqueue_an_event_again_while_its_last_task_may_still_be_queued(settings: object) -> None:
    settings.MNS_INBOUND_SWEEP_AFTER_SECONDS = 30
    row = store(1)
    now = timezone.now()
    InboundEvent.objects.filter(id=row.id).update(received_at=now - timedelta(seconds=100))
    assert inbound_due(limit=10) == [row.id]
    sweep_mark_enqueued(inbound=[row.id])
    assert inbound_due(limit=10) == []  # the next sweeps leave it alone: its task is in the queue
    # Enqueued 60 s after it arrived, it waits 60 s more before the sweep enqueues it again (doubling).
    InboundEvent.objects.filter(id=row.id).update(enqueued_at=now - timedelta(seconds=40))
    assert inbound_due(limit=10) == []
    # Enqueued 45 s after it arrived and 55 s ago: its wait is over, that task was lost.
    InboundEvent.objects.filter(id=row.id).update(enqueued_at=now - timedelta(seconds=55))
    assert inbound_due(limit=10) == [row.id]


def test_a_backlog_gets_a_few_copies_per_event_from_the_sweep_not_one_per_sweep(settings: object) -> None:
    settings.MNS_INBOUND_SWEEP_AFTER_SECONDS = 10
    row = store(1)
    start = timezone.now()
    InboundEvent.objects.filter(id=row.id).update(received_at=start)
    enqueued = 0
    for second in range(0, 600):  # ten minutes of sweeps every second while the task waits in a backlog
        clock = start + timedelta(seconds=second)
        with mock.patch("django.utils.timezone.now", return_value=clock):  # the sweep's clock, a second later
            if inbound_due(limit=10):
                sweep_mark_enqueued(inbound=[row.id])
                enqueued += 1
    assert enqueued == 6  # at 10, 20, 40, 80, 160, 320 s


def test_payloads_are_hex_on_the_wire_and_bytes_in_the_handler(handled: list) -> None:
    row = store(1, data=bytes(range(256)))
    inbound_process(event_id=row.id, claim="t")
    assert handled[0].data == bytes(range(256))
    assert to_hex(handled[0].data).startswith("0x000102")


def test_a_deliberate_refusal_by_a_handler_is_recorded_as_ignored_not_failed(handled: list) -> None:
    from core.errors import DomainError

    def refuses(message: InboundMessage) -> None:
        raise DomainError("statement_wrong_sender", "Not from its owner.")

    routing._applications["app-test"] = refuses
    row = store(1)
    assert inbound_process(event_id=row.id, claim="t") == "ignored"
    row.refresh_from_db()
    assert row.last_error == "refused: statement_wrong_sender: Not from its owner."


def test_a_transient_database_error_leaves_the_event_for_the_sweep(handled: list) -> None:
    from django.db import OperationalError

    def database_blinks(message: InboundMessage) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    routing._applications["app-test"] = database_blinks
    row = store(1)
    assert inbound_process(event_id=row.id, claim="t") == "pending"
    row.refresh_from_db()
    assert (row.status, row.claimed_by, row.attempts) == ("pending", "", 1)
    assert row.last_error.startswith("will retry: OperationalError")
    InboundEvent.objects.filter(id=row.id).update(attempts=10)
    assert inbound_process(event_id=row.id, claim="t2") == "failed"


def test_finished_transport_rows_are_purged_and_live_ones_kept() -> None:
    from maxima.models import OutboundMessage
    from maxima.services import transport_purge

    old = timezone.now() - timedelta(days=3)
    done, pending = store(1), store(2)
    InboundEvent.objects.filter(id=done.id).update(status="done", received_at=old)
    InboundEvent.objects.filter(id=pending.id).update(received_at=old)
    sent = OutboundMessage.objects.create(
        destination="0x00",
        application="mns",
        payload=b"x",
        size=1,
        idempotency_key="a",
        status="sent",
        next_attempt_at=old,
    )
    queued = OutboundMessage.objects.create(
        destination="0x00", application="mns", payload=b"x", size=1, idempotency_key="b", next_attempt_at=old
    )
    OutboundMessage.objects.filter(id__in=[sent.id, queued.id]).update(created_at=old)
    assert transport_purge(older_than=timedelta(hours=24)) == (1, 1)
    assert list(InboundEvent.objects.values_list("id", flat=True)) == [pending.id]
    assert list(OutboundMessage.objects.values_list("id", flat=True)) == [queued.id]


# --- Batches -----------------------------------------------------------------------------------------------------


class WorkerKilled(BaseException):
    """What a killed worker looks like from inside its task: nothing after this point runs, nothing is caught."""


def test_a_batch_claims_many_events_and_marks_each_with_its_own_outcome(handled: list) -> None:
    rows = [store(1), store(2, data=b"boom"), store(3), store(4, application="nobody")]
    outcomes = inbound_process_batch(claim="batch-a", limit=10)
    assert outcomes == {"done": 2, "failed": 1, "ignored": 1}
    statuses = dict(InboundEvent.objects.filter(id__in=[r.id for r in rows]).values_list("id", "status"))
    assert [statuses[r.id] for r in rows] == ["done", "failed", "done", "ignored"]
    assert [m.event_id for m in handled] == [rows[0].id, rows[2].id]
    assert set(InboundEvent.objects.values_list("claimed_by", flat=True)) == {"batch-a"}


def test_a_batch_takes_at_most_its_limit_at_a_time_and_goes_on_until_nothing_is_left(handled: list) -> None:
    rows = [store(n) for n in range(1, 8)]
    assert [e.id for e in _claim_batch("look", 3)] == [r.id for r in rows[:3]]  # oldest first, three of them
    InboundEvent.objects.update(status="pending", claimed_by="", claimed_at=None, attempts=0)
    assert inbound_process_batch(claim="batch-a", limit=3) == {"done": 7}
    assert sorted(m.event_id for m in handled) == [r.id for r in rows]
    assert inbound_process_batch(claim="batch-b", limit=3) == {}


def test_a_claim_takes_over_old_claims_first_then_pending_events_and_returns_them_as_stored() -> None:
    rows = [store(n) for n in range(1, 7)]
    now = timezone.now()
    lease_over = now - inbound_lease() - timedelta(seconds=1)
    InboundEvent.objects.filter(id=rows[4].id).update(status="processing", claimed_by="dead", claimed_at=lease_over)
    InboundEvent.objects.filter(id=rows[5].id).update(status="processing", claimed_by="alive", claimed_at=now)
    InboundEvent.objects.filter(id=rows[0].id).update(status="done")
    claimed = _claim_batch("look", 3)
    # the abandoned claim first, then the oldest pending; the live claim and the done event are left alone
    assert [e.id for e in claimed] == sorted([rows[4].id, rows[1].id, rows[2].id])
    stored = {e.id: e for e in InboundEvent.objects.filter(claimed_by="look")}
    assert sorted(stored) == [e.id for e in claimed]
    fields = ["status", "claimed_by", "claimed_at", "attempts", "msgid", "data", "received_at", "sender", "size"]
    for event in claimed:
        assert [getattr(event, f) for f in fields] == [getattr(stored[event.id], f) for f in fields]
    assert (claimed[0].status, claimed[0].attempts, type(claimed[0].data)) == ("processing", 1, bytes)
    assert InboundEvent.objects.get(id=rows[5].id).claimed_by == "alive"
    assert [e.id for e in _claim_batch("next", 3)] == [rows[3].id]  # what is left


def test_a_failing_handler_in_a_batch_undoes_its_own_writes_only(handled: list) -> None:
    def writes_then_maybe_fails(message: InboundMessage) -> None:
        InboundEvent.objects.filter(id=message.event_id).update(random="0xWRITTEN")
        if message.data == b"boom":
            raise RuntimeError("after writing")

    routing._applications["app-test"] = writes_then_maybe_fails
    fine, broken = store(1), store(2, data=b"boom")
    inbound_process_batch(claim="batch-a", limit=10)
    fine.refresh_from_db()
    broken.refresh_from_db()
    assert (fine.status, fine.random) == ("done", "0xWRITTEN")
    assert (broken.status, broken.random) == ("failed", "0x01")


def test_a_worker_killed_mid_batch_commits_nothing_and_the_batch_is_taken_again_and_done_once(
    handled: list, settings: object
) -> None:
    rows = [store(n) for n in range(1, 6)]

    def dies_on_the_third(message: InboundMessage) -> None:
        handled.append(message)
        if message.event_id == rows[2].id:
            raise WorkerKilled

    routing._applications["app-test"] = dies_on_the_third
    with pytest.raises(WorkerKilled):
        inbound_process_batch(claim="killed-task", limit=10)
    # The first two were handled in the batch's transaction, which never committed: nothing is marked done, every
    # event is still claimed by the dead task.
    assert set(InboundEvent.objects.values_list("status", "claimed_by")) == {("processing", "killed-task")}
    assert inbound_process_batch(claim="another-task", limit=10) == {}  # a live claim is left alone

    routing._applications["app-test"] = lambda message: handled.append(message)
    handled.clear()
    lease_over = timezone.now() - inbound_lease() - timedelta(seconds=1)
    InboundEvent.objects.update(claimed_at=lease_over)
    assert inbound_process_batch(claim="another-task", limit=10) == {"done": 5}
    assert sorted(m.event_id for m in handled) == [r.id for r in rows]  # each once
    assert set(InboundEvent.objects.values_list("status", "attempts")) == {("done", 2)}


def test_the_killed_task_redelivered_takes_its_own_batch_back_at_once(handled: list) -> None:
    rows = [store(1), store(2)]
    InboundEvent.objects.update(status="processing", claimed_by="task-a", claimed_at=timezone.now())
    assert inbound_process_batch(claim="task-b", limit=10) == {}
    assert inbound_process_batch(claim="task-a", limit=10) == {"done": 2}
    assert [m.event_id for m in handled] == [r.id for r in rows]


def test_a_transient_error_in_one_event_of_a_batch_leaves_it_pending_and_the_others_done(handled: list) -> None:
    from django.db import OperationalError

    def blinks_once(message: InboundMessage) -> None:
        if message.data == b"blink":
            raise OperationalError("canceling statement due to lock timeout")
        handled.append(message)

    routing._applications["app-test"] = blinks_once
    fine, blinked = store(1), store(2, data=b"blink")
    assert inbound_process_batch(claim="t", limit=1) == {"done": 1, "pending": 1}
    blinked.refresh_from_db()
    assert (blinked.status, blinked.claimed_by) == ("pending", "")
    assert [m.event_id for m in handled] == [fine.id]


def test_stored_events_of_a_burst_share_a_few_tasks(settings: object, django_capture_on_commit_callbacks) -> None:
    settings.MNS_MAXIMA_BATCH_WINDOW_MS = 60_000  # one window for the whole test
    queue._windows.clear()
    celery_app.conf.task_always_eager = False  # a worker's app: countdowns wait
    try:
        with mock.patch("core.queue.enqueue_now", return_value=True) as enqueue:
            for n in range(1, 21):
                with django_capture_on_commit_callbacks(execute=True):
                    store(n)
    finally:
        celery_app.conf.task_always_eager = True
    # the first at once, one more at the window's end for the other nineteen
    assert len(enqueue.call_args_list) == 2
    assert "countdown" not in enqueue.call_args_list[0].kwargs
    assert 0 < enqueue.call_args_list[1].kwargs["countdown"] <= 60.005


def test_threads_of_one_process_racing_in_a_window_make_its_two_tasks(settings: object) -> None:
    """Under load a gunicorn process's threads reach the coalescing at the same moment: they still make one task at
    once and one at the window's end between them."""
    import time

    from maxima.tasks import process_inbound_batch

    queue._windows.clear()
    celery_app.conf.task_always_eager = False
    start = threading.Barrier(8)

    def slow_publish(task: object, *args: object, **options: object) -> bool:
        time.sleep(0.05)  # a broker round trip, while the other threads arrive
        return True

    def hook() -> None:
        start.wait()
        for _ in range(5):
            queue.enqueue_coalesced(process_inbound_batch, window=60.0)

    try:
        with mock.patch("core.queue.enqueue_now", side_effect=slow_publish) as enqueue:
            threads = [threading.Thread(target=hook) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        celery_app.conf.task_always_eager = True
    assert len(enqueue.call_args_list) == 2
    assert ["countdown" in call.kwargs for call in enqueue.call_args_list] == [False, True]


def test_a_window_whose_task_could_not_be_published_tries_again_on_the_next_call(settings: object) -> None:
    from maxima.tasks import process_inbound_batch

    queue._windows.clear()
    celery_app.conf.task_always_eager = False
    try:
        with mock.patch("core.queue.enqueue_now", side_effect=[False, True, False, True, True]) as enqueue:
            for _ in range(5):
                queue.enqueue_coalesced(process_inbound_batch, window=60.0)
    finally:
        celery_app.conf.task_always_eager = True
    # leading lost, leading again; trailing lost, trailing again; then the window has both
    assert ["countdown" in call.kwargs for call in enqueue.call_args_list] == [False, False, True, True]


def test_an_eager_app_gets_a_task_for_every_event_of_a_window(
    settings: object, django_capture_on_commit_callbacks
) -> None:
    # In-process Celery runs a countdown task at once: a trailing task would run before the window's third event.
    settings.MNS_MAXIMA_BATCH_WINDOW_MS = 60_000
    queue._windows.clear()
    with mock.patch("core.queue.enqueue_now", return_value=True) as enqueue:
        for n in range(1, 4):
            with django_capture_on_commit_callbacks(execute=True):
                store(n)
    assert len(enqueue.call_args_list) == 3
    assert all("countdown" not in call.kwargs for call in enqueue.call_args_list)


def test_events_a_batch_did_not_reach_in_time_go_back_to_pending_unhandled(handled: list) -> None:
    rows = [store(1), store(2), store(3)]
    claimed = _claim_batch("slow-task", 10)
    outcomes = _process_claimed(claimed, "slow-task", stop_at=0.0)
    assert outcomes == {rows[0].id: "done", rows[1].id: "released", rows[2].id: "released"}  # the first always runs
    assert [m.event_id for m in handled] == [rows[0].id]
    statuses = dict(InboundEvent.objects.values_list("id", "status"))
    assert [statuses[r.id] for r in rows] == ["done", "pending", "pending"]
    # a claim handed back unhandled was no attempt: it does not bring the event nearer to failing for good
    attempts = dict(InboundEvent.objects.values_list("id", "attempts"))
    assert [attempts[r.id] for r in rows] == [1, 0, 0]


def test_a_batch_out_of_its_time_commits_what_it_did_and_the_run_claims_the_rest_again(
    handled: list, settings: object
) -> None:
    from maxima import services

    rows = [store(n) for n in range(1, 4)]
    with mock.patch.object(services, "BATCH_SECONDS", 0.0):  # every batch out of time after its first event
        outcomes = inbound_process_batch(claim="t", limit=10)
    # each batch handled one event (the first always runs) and handed the rest back, claimed again at once
    assert outcomes == {"done": 3, "released": 3}  # 2 handed back by the first batch, 1 by the second
    assert [m.event_id for m in handled] == [r.id for r in rows]
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"done"}


def test_a_run_out_of_its_time_with_more_due_says_so(handled: list) -> None:
    rows = [store(n) for n in range(1, 4)]
    outcomes = inbound_process_batch(claim="t", limit=1, budget=0.0)  # the first batch always runs
    assert outcomes == {"done": 1, "unfinished": 1}
    assert [m.event_id for m in handled] == [rows[0].id]


def test_a_task_out_of_its_time_with_more_due_hands_on_to_a_new_one_at_once(
    handled: list, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load a task can spend its time on full batches: what is left must not wait for the sweep (seconds)."""
    import functools

    from maxima import services, tasks

    settings.MNS_INBOUND_BATCH = 1
    [store(n) for n in range(1, 4)]
    monkeypatch.setattr(
        services, "inbound_process_batch", functools.partial(services.inbound_process_batch, budget=0.0)
    )
    with mock.patch.object(tasks, "enqueue_now", return_value=True) as enqueue:
        tasks.process_inbound_batch.apply()
    assert [(call.args, call.kwargs) for call in enqueue.call_args_list] == [((tasks.process_inbound_batch,), {})]
    statuses = sorted(InboundEvent.objects.values_list("status", flat=True))
    assert statuses == ["done", "pending", "pending"]


def test_a_task_that_drained_everything_enqueues_nothing_more(handled: list, settings: object) -> None:
    from maxima import tasks

    settings.MNS_INBOUND_BATCH = 2
    [store(n) for n in range(1, 4)]
    with mock.patch.object(tasks, "enqueue_now", return_value=True) as enqueue:
        tasks.process_inbound_batch.apply()
    assert enqueue.call_args_list == []
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"done"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")
def test_concurrent_claims_skip_the_events_another_claim_holds_instead_of_waiting() -> None:
    rows = [store(n) for n in range(1, 5)]
    # committed, each was processed at once (the tests' Celery is eager): as they were when stored
    InboundEvent.objects.update(status="pending", claimed_by="", claimed_at=None, attempts=0, last_error="")
    with locked_elsewhere(InboundEvent.objects.filter(id__in=[rows[0].id, rows[1].id])):  # another task's claim
        assert [e.id for e in _claim_batch("b", 10)] == [rows[2].id, rows[3].id]  # a claim that waited would fail
    assert [e.id for e in _claim_batch("c", 10)] == [rows[0].id, rows[1].id]
