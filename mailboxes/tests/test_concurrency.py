"""Parallel writers on PostgreSQL: the quota holds across the mailbox's counter shards, a delivery id is stored once,
a delete gives room back once (to the shard that counted the message), and a delivery never deadlocks with a peer's
batch."""

import importlib
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from federation.models import Operation
from federation.tests.support import FakePeer
from mailboxes import services
from mailboxes.models import Mailbox, MailboxCounter, Message
from mailboxes.services import counters
from mailboxes.services import delivery as delivery_module
from mailboxes.services.delivery import message_op
from mailboxes.tests.support import Opened, Owner, deliver, deliver_body, open_mailbox, quota_set, snapshot, usage
from maxima.models import NodeState
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.mailbox import new_delivery_id
from registry.tests.support import GATEWAY

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres")]


def together(
    monkeypatch: pytest.MonkeyPatch,
    attempts: list[Callable[[], object]],
    at: str = "delivery._store_new",
    *,
    atomic: bool = True,
    first_only: bool = False,
) -> list:
    """Run the attempts in threads that all reach ``mailboxes.services.<at>`` (``module.function``) before any of
    them goes on; each in a transaction of its own (as the inbound task runs a handler), or without one (``atomic``
    false: as a REST request runs, each statement committing on its own). ``first_only``: a thread that reaches the
    function again (a batch) goes straight on."""
    barrier = threading.Barrier(len(attempts), timeout=20)
    module_name, function = at.split(".")
    module = importlib.import_module(f"mailboxes.services.{module_name}")
    real = getattr(module, function)

    arrived = threading.local()

    def wait_then(*args: object, **kwargs: object) -> object:
        if not (first_only and getattr(arrived, "before", False)):
            arrived.before = True
            barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, function, wait_then)
    outcomes: list = []

    def run(attempt: Callable[[], object]) -> None:
        try:
            with transaction.atomic() if atomic else nullcontext():
                outcomes.append(attempt())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(attempt,)) for attempt in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


def shards(name: str = "alice") -> dict[int, tuple[int, int]]:
    """The mailbox's counter shards, (messages, bytes) each, after checking that each counts exactly the messages
    that record it, within its allowance, and that the allowances sum to the quota."""
    mailbox = Mailbox.objects.get(record__name=name)
    rows = MailboxCounter.objects.filter(mailbox=mailbox).order_by("shard")
    counted = {row.shard: (row.message_count, row.byte_count) for row in rows}
    held = Message.objects.filter(mailbox=mailbox).values("shard").annotate(n=Count("id"), size=Sum("size"))
    assert {shard: used for shard, used in counted.items() if used != (0, 0)} == {
        row["shard"]: (row["n"], row["size"]) for row in held
    }
    assert all(row.message_count <= row.max_messages and row.byte_count <= row.max_bytes for row in rows)
    assert (sum(row.max_messages for row in rows), sum(row.max_bytes for row in rows)) == (
        mailbox.max_messages,
        mailbox.max_bytes,
    )
    return counted


def test_a_mailbox_opens_with_its_quota_split_among_its_shards(opened: Opened, settings: object) -> None:
    allowances = MailboxCounter.objects.filter(mailbox=opened.mailbox).order_by("shard")
    assert list(allowances.values_list("shard", "max_messages", "max_bytes")) == [
        (0, 250, 4 * 1024 * 1024),
        (1, 250, 4 * 1024 * 1024),
        (2, 250, 4 * 1024 * 1024),
        (3, 250, 4 * 1024 * 1024),
    ]


def test_parallel_deliveries_never_pass_the_message_quota(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    quota_set(max_messages=3)
    outcomes = together(monkeypatch, [lambda: deliver(sender) for _ in range(8)])
    assert outcomes == ["over_quota"] * 5 + ["stored"] * 3
    assert usage()[0] == Message.objects.count() == 3
    shards()


def test_parallel_deliveries_never_pass_the_byte_quota(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner
) -> None:
    quota_set(max_bytes=1000)
    outcomes = together(monkeypatch, [lambda: deliver(sender, ciphertext=b"x" * 300) for _ in range(6)])
    assert outcomes == ["over_quota"] * 3 + ["stored"] * 3
    assert usage()[1] == sum(Message.objects.values_list("size", flat=True)) == 900
    shards()


def test_one_delivery_processed_twice_at_once_is_stored_once(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner
) -> None:
    body = deliver_body()
    outcomes = together(monkeypatch, [lambda: deliver(sender, body=body) for _ in range(4)])
    assert outcomes == ["stored"] * 4
    assert Message.objects.count() == usage()[0] == 1


def test_deleting_one_message_from_two_places_at_once_gives_its_room_back_once(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner
) -> None:
    deliver(sender, ciphertext=b"x" * 70)
    deliver(sender, ciphertext=b"y" * 30)
    uid = Message.objects.order_by("id").first().uid
    mailbox = opened.mailbox
    outcomes = together(
        monkeypatch,
        [lambda: services.messages_ack(mailbox=mailbox, uids=[uid]) for _ in range(3)],
        at="reading._messages_delete",
    )
    assert outcomes == [0, 0, 1]
    assert usage() == (1, 30)
    shards()


def submit(sender: Owner, delivery_id: str | None = None, ciphertext: bytes = b"\x02" * 50) -> str:
    """A REST submission as the view makes it: outside any transaction, so its write commits on its own."""
    try:
        stored = services.delivery_submit(
            name="alice",
            delivery_id=delivery_id or new_delivery_id(),
            scheme="nacl-sealedbox-v1",
            ciphertext=ciphertext,
            sender_key=sender.key,
        )
    except services.DeliveryRefused as refused:
        return refused.code
    return stored.message.uid


def test_a_rest_delivery_is_one_statement_that_commits_on_its_own(
    opened: Opened, sender: Owner, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement count is the guard: it was seven, plus BEGIN and COMMIT, then a read and a write
    (docs/performance.md); and one round trip to the cache, the view's limits and the delivery's rate together.
    What the one statement stores is what the two stored: the message with the mailbox's retention, its count,
    and its op with the mailbox's owner."""
    from core import ratelimit

    settings.MNS_REST_SUBMISSION = True
    Mailbox.objects.update(retention_days=3)
    data = {"id": new_delivery_id(), "scheme": "nacl-sealedbox-v1", "ciphertext": to_hex(b"\x02" * 50)}
    data["sender"] = sender.key
    trips: list[list[str]] = []
    hit_many_and_get = ratelimit.hit_many_and_get
    monkeypatch.setattr(
        ratelimit,
        "hit_many_and_get",
        lambda limits, *a, **kw: trips.append(limits) or hit_many_and_get(limits, *a, **kw),
    )
    with CaptureQueriesContext(connection) as queries:
        response = Client().post("/api/v1/names/alice/messages", data, content_type="application/json")
    assert response.status_code == 201
    sent = [query["sql"].split()[0] for query in queries.captured_queries]
    if connection.vendor == "postgresql":  # kept prepared: prepared first if this connection had not yet
        assert sent in (["EXECUTE"], ["PREPARE", "EXECUTE"])
    else:
        assert sent == ["WITH"]
    assert [[key for key, _ in limits] for limits in trips] == [
        ["throttle_ip_127.0.0.1", "throttle_submit_127.0.0.1", "mailbox:alice:unverified"]
    ]
    uid = response.json()["message_id"]
    message = Message.objects.get()
    assert (message.uid, message.sender_verified, bytes(message.ciphertext)) == (uid, False, b"\x02" * 50)
    assert (message.mailbox_id, message.expires_at - message.received_at) == (opened.mailbox.id, timedelta(days=3))
    assert usage() == (1, 50)
    assert shards()[message.shard] == (1, 50)
    op = Operation.objects.get(kind="message")
    assert (op.origin, op.seq, op.outcome) == (GATEWAY, None, "own")
    assert op.payload == message_op(message, Mailbox.objects.select_related("record").get())
    assert op.payload["owner"] == opened.mailbox.owner_key


def test_a_rest_delivery_keeps_its_count_once_committed_though_what_follows_fails(
    opened: Opened, sender: Owner, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its count is kept the moment the statement commits: a failure after that (here, saying the op to the peers)
    cannot give back the count of a message that is stored."""
    settings.MNS_REST_SUBMISSION = True
    settings.MNS_DELIVERY_RATE_PER_MINUTE = 2

    def fails(**_: object) -> None:
        raise RuntimeError("the broker went away")

    monkeypatch.setattr(delivery_module.federation, "op_appended", fails)
    with pytest.raises(RuntimeError):
        submit(sender)
    monkeypatch.undo()
    assert Message.objects.count() == 1
    assert [submit(sender) == "rate_limited" for _ in range(2)] == [False, True]


def test_a_rest_delivery_over_quota_outside_a_transaction_writes_nothing(
    opened: Opened, sender: Owner, settings: object
) -> None:
    settings.MNS_REST_SUBMISSION = True
    quota_set(max_bytes=60)
    submit(sender, ciphertext=b"x" * 40)
    before = snapshot(), list(Operation.objects.values())
    assert submit(sender, ciphertext=b"y" * 40) == "over_quota"
    assert (snapshot(), list(Operation.objects.values())) == before


def test_a_rest_delivery_before_the_node_reported_its_key_is_stored_without_an_op(
    opened: Opened, sender: Owner, settings: object
) -> None:
    settings.MNS_REST_SUBMISSION = True
    NodeState.objects.filter(pk=1).update(publickey="")
    submit(sender)
    assert Message.objects.count() == 1
    assert not Operation.objects.filter(kind="message").exists()


def test_parallel_rest_deliveries_outside_a_transaction_never_pass_the_quota(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    settings.MNS_REST_SUBMISSION = True
    quota_set(max_messages=3)
    outcomes = together(
        monkeypatch, [lambda: submit(sender) for _ in range(6)], atomic=False, at="delivery._submit_at_once"
    )
    assert outcomes.count("over_quota") == 3
    assert usage()[0] == Message.objects.count() == 3
    assert Operation.objects.filter(kind="message").count() == 3
    shards()


def test_parallel_rest_deliveries_outside_a_transaction_never_pass_the_quota_over_many_shards(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    """Two messages' room on each of four shards, twelve deliveries at once: the ones whose shard is full take
    room from the others while the rest write, and the mailbox still holds exactly its quota."""
    settings.MNS_REST_SUBMISSION = True
    quota_set(max_messages=8)
    outcomes = together(
        monkeypatch, [lambda: submit(sender) for _ in range(12)], atomic=False, at="delivery._submit_at_once"
    )
    assert outcomes.count("over_quota") == 4
    assert usage() == (8, 400) == (Message.objects.count(), 400)
    assert sum(messages for messages, _ in shards().values()) == 8


def test_parallel_rest_deliveries_outside_a_transaction_never_pass_the_byte_quota(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    """No shard's allowance (250 bytes) holds one 300-byte message: each one stored moved room over."""
    settings.MNS_REST_SUBMISSION = True
    quota_set(max_bytes=1000)
    outcomes = together(
        monkeypatch,
        [lambda: submit(sender, ciphertext=b"x" * 300) for _ in range(6)],
        atomic=False,
        at="delivery._submit_at_once",
    )
    assert outcomes.count("over_quota") == 3
    assert usage() == (3, 900)
    shards()


def test_the_rebalancing_fallback_stores_the_last_message_that_fits_and_refuses_the_one_after(
    opened: Opened, sender: Owner, settings: object
) -> None:
    settings.MNS_REST_SUBMISSION = True
    quota_set(max_bytes=1000)  # 250 bytes on each of four shards
    assert [submit(sender, ciphertext=b"x" * 300) != "over_quota" for _ in range(3)] == [True, True, True]
    before = snapshot(), list(Operation.objects.values())
    assert submit(sender, ciphertext=b"y" * 101) == "over_quota"
    assert (snapshot(), list(Operation.objects.values())) == before
    assert submit(sender, ciphertext=b"z" * 100) != "over_quota"
    assert usage() == (4, 1000)
    assert submit(sender, ciphertext=b"w") == "over_quota"
    assert usage() == (4, 1000)
    shards()


def test_a_delete_gives_the_room_back_to_the_shard_that_counted_the_message(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    settings.MNS_REST_SUBMISSION = True
    for shard, size in ((1, 10), (2, 20), (2, 30), (3, 40)):
        monkeypatch.setattr(counters, "shard_pick", lambda shard=shard: shard)
        submit(sender, ciphertext=b"x" * size)
    assert shards() == {0: (0, 0), 1: (1, 10), 2: (2, 50), 3: (1, 40)}
    uid = Message.objects.get(size=20).uid
    services.messages_ack(mailbox=opened.mailbox, uids=[uid])
    assert shards() == {0: (0, 0), 1: (1, 10), 2: (1, 30), 3: (1, 40)}


def test_a_mailbox_without_shards_gets_them_counting_what_it_holds_and_its_messages_can_be_deleted(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    """A mailbox whose shards are missing (made before shards, or seeded in bulk) while it holds messages, one of
    them on a shard beyond its number: its first counted write makes them with what it holds, so deleting every
    message brings each shard to zero instead of below it."""
    settings.MNS_REST_SUBMISSION = True
    for shard, size in ((1, 10), (3, 40)):
        monkeypatch.setattr(counters, "shard_pick", lambda shard=shard: shard)
        submit(sender, ciphertext=b"x" * size)
    MailboxCounter.objects.all().delete()
    settings.MNS_MAILBOX_COUNTER_SHARDS = 2  # shard 3 is now beyond the mailbox's shards
    uids = list(Message.objects.order_by("size").values_list("uid", flat=True))
    services.messages_ack(mailbox=opened.mailbox, uids=uids[:1])
    assert usage() == (1, 40)
    services.messages_ack(mailbox=opened.mailbox, uids=uids[1:])
    assert usage() == (0, 0)
    assert shards() == {0: (0, 0), 1: (0, 0)}
    assert sum(shard.max_messages for shard in MailboxCounter.objects.all()) == opened.mailbox.max_messages


def test_one_rest_delivery_sent_four_times_at_once_outside_a_transaction_is_stored_once(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    settings.MNS_REST_SUBMISSION = True
    same = new_delivery_id()
    uids = together(
        monkeypatch, [lambda: submit(sender, same) for _ in range(4)], atomic=False, at="delivery._submit_at_once"
    )
    assert len(uids) == 4
    assert set(uids) == set(Message.objects.values_list("uid", flat=True))
    assert usage()[0] == Message.objects.count() == 1
    assert Operation.objects.filter(kind="message").count() == 1


def test_a_rest_delivery_counts_against_the_rate_while_it_is_checked(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    """The price of counting a REST delivery first (docs/performance.md, "A REST delivery in one statement"): a
    resent delivery holds a count of the window from its arrival until it is answered as stored before, and a new
    delivery at the edge of the limit meanwhile is refused. Once it is answered the count is given back."""
    settings.MNS_REST_SUBMISSION = True
    settings.MNS_DELIVERY_RATE_PER_MINUTE = 2
    again = new_delivery_id()
    first = submit(sender, again)
    inside, release = threading.Event(), threading.Event()
    real = delivery_module._submit_at_once

    def held(delivery: object, name: str, counted: object) -> object:
        if delivery.delivery_id == again:
            inside.set()
            release.wait(20)
        return real(delivery, name, counted)

    monkeypatch.setattr(delivery_module, "_submit_at_once", held)
    answered: list[str] = []

    def resend() -> None:
        try:
            answered.append(submit(sender, again))
        finally:
            connection.close()

    thread = threading.Thread(target=resend)
    thread.start()
    assert inside.wait(20)
    assert submit(sender) == "rate_limited"  # the window: the first delivery, the resend in flight, this one
    release.set()
    thread.join(20)
    assert answered == [first]
    assert submit(sender) == "rate_limited"  # the refused one was counted, as a refusal for the rate always is
    assert Message.objects.count() == 1


def replicate(mailbox: Mailbox, sender: Owner, uid: str, delivery_id: str) -> str:
    """A peer's op for a message of ``sender``'s, applied here (in the caller's transaction, as a batch does)."""
    return services.message_replicate(
        mailbox=mailbox,
        uid=uid,
        delivery_id=delivery_id,
        sender_key=sender.key,
        sender_verified=False,
        scheme="nacl-sealedbox-v1",
        ciphertext=b"\x03" * 40,
        received_at=timezone.now(),
    )


def test_a_delivery_racing_a_peers_batch_for_the_same_message_never_deadlocks(
    opened: Opened, sender: Owner, settings: object
) -> None:
    """The batch takes the mailbox's counters row for one op and then inserts another op's message, the same
    (sender, delivery id) a local delivery is storing at that moment: the delivery must wait for the row before it
    writes anything, or each waits for the other (PostgreSQL's deadlock detector then fails one of them)."""
    settings.MNS_REST_SUBMISSION = True
    mailbox, same = Mailbox.objects.get(), new_delivery_id()
    holds_row, outcomes, errors = threading.Event(), {}, []

    def batch() -> None:
        try:
            with transaction.atomic():
                outcomes["first op"] = replicate(mailbox, sender, "replicated-first", new_delivery_id())
                holds_row.set()
                _wait_for_a_lock_wait()
                outcomes["second op"] = replicate(mailbox, sender, "replicated-same", same)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    def local() -> None:
        try:
            holds_row.wait(timeout=20)
            outcomes["local"] = submit(sender, same)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=batch), threading.Thread(target=local)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert outcomes == {"first op": "applied", "second op": "applied", "local": "replicated-same"}
    assert usage()[0] == Message.objects.count() == 2
    shards()


def test_a_rest_deliverys_fallback_racing_a_peers_batch_for_the_same_message_never_deadlocks(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    """The local delivery's shard is full (no shard holds its 50 bytes), so it locks the mailbox's row and shards
    to move room over just as the peer's batch holds them for one op and then inserts another op's message, the
    same (sender, delivery id): the fallback waits for the batch before it writes anything, then finds the message
    stored."""
    settings.MNS_REST_SUBMISSION = True
    quota_set(max_bytes=160)  # 40 bytes on each of four shards
    mailbox, same = Mailbox.objects.get(), new_delivery_id()
    fell_back, holds_row, outcomes, errors = threading.Event(), threading.Event(), {}, []
    real_write_locked = delivery_module._write_locked

    def write_locked_once_the_batch_holds_the_rows(message: Message, mailbox: Mailbox) -> Message:
        fell_back.set()
        holds_row.wait(timeout=20)
        return real_write_locked(message, mailbox)

    monkeypatch.setattr(delivery_module, "_write_locked", write_locked_once_the_batch_holds_the_rows)

    def batch() -> None:
        try:
            fell_back.wait(timeout=20)
            with transaction.atomic():
                outcomes["first op"] = replicate(mailbox, sender, "replicated-first", new_delivery_id())
                holds_row.set()
                _wait_for_a_lock_wait()
                outcomes["second op"] = replicate(mailbox, sender, "replicated-same", same)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    def local() -> None:
        try:
            outcomes["local"] = submit(sender, same)
        except Exception as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=batch), threading.Thread(target=local)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert outcomes == {"first op": "applied", "second op": "applied", "local": "replicated-same"}
    assert usage() == (2, 80) == (Message.objects.count(), 80)
    shards()


def _wait_for_a_lock_wait() -> None:
    """Until another session of this database waits on a lock (the local delivery, on the counters row)."""
    for _ in range(200):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")  # live, unlike pg_stat_activity
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    raise AssertionError("the local delivery never waited on the batch's lock")


def test_two_batches_over_the_same_mailboxes_in_opposite_orders_never_deadlock(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, bob: Owner
) -> None:
    """Both past their checks before either writes; each then takes the two counters rows in the same order."""
    open_mailbox(bob, "bob")

    def item(to: str) -> services.Delivery:
        return services.Delivery(to, new_delivery_id(), "nacl-sealedbox-v1", b"\x06" * 30, sender.key, True)

    def batch(items: list[services.Delivery]) -> Callable[[], list[bool]]:
        return lambda: [outcome.created for outcome in services.deliveries_store(items)]

    forth, back = [item("alice"), item("bob")], [item("bob"), item("alice")]
    outcomes = together(monkeypatch, [batch(forth), batch(back)], at="delivery._writes")
    assert outcomes == [[True, True], [True, True]]
    assert (usage("alice")[0], usage("bob")[0]) == (2, 2)


def test_a_batch_finds_the_same_delivery_stored_by_another_batch_while_it_waited_for_the_mailbox(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner
) -> None:
    """Two workers' batches carry the same delivery (a resend) and are both past their checks, neither having seen
    the other's message. The second to lock the mailbox's counters finds the first's message there and answers it
    stored before: its transaction goes on (no savepoint a write to catch a duplicate any more)."""
    item = services.Delivery("alice", new_delivery_id(), "nacl-sealedbox-v1", b"\x06" * 30, sender.key, True)
    other = services.Delivery("alice", new_delivery_id(), "nacl-sealedbox-v1", b"\x07" * 30, sender.key, True)

    def batch(items: list[services.Delivery]) -> Callable[[], list[bool]]:
        return lambda: [outcome.created for outcome in services.deliveries_store(items)]

    outcomes = together(monkeypatch, [batch([item]), batch([item, other])], at="delivery._writes")
    assert outcomes in ([[False, True], [True]], [[False], [True, True]])
    assert Message.objects.count() == usage()[0] == 2
    shards()


def test_a_batch_of_deliveries_never_deadlocks_with_a_peers_batch_taking_the_mailboxes_the_other_way(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner
) -> None:
    """The peer's ops name the newer mailbox first; the deliveries go in id order. Both are past their checks
    before either writes: the peer's batch must already hold both counters rows by then (``counters_lock``)."""
    peer = FakePeer.fresh("gw-b")
    peer.add()
    for name in ("carol", "dave"):
        owner = Owner.fresh()
        batch = peer.batch(peer.register_op(owner, name), peer.mailbox_op(owner, name, [peer.key, GATEWAY]))
        assert peer.says(batch) == "done"
    barrier, arrived = threading.Barrier(2, timeout=20), threading.local()

    def first_waits(real: Callable[..., object]) -> Callable[..., object]:
        def wait_then(*args: object, **kwargs: object) -> object:
            if not getattr(arrived, "before", False):
                arrived.before = True
                barrier.wait()
            return real(*args, **kwargs)

        return wait_then

    monkeypatch.setattr(services, "message_replicate", first_waits(services.message_replicate))
    monkeypatch.setattr(delivery_module, "_writes", first_waits(delivery_module._writes))
    ops = peer.batch(peer.message_op("dave", "uid-dave"), peer.message_op("carol", "uid-carol"))
    items = [
        services.Delivery(name, new_delivery_id(), "nacl-sealedbox-v1", b"\x06" * 30, sender.key, True)
        for name in ("dave", "carol")
    ]
    outcomes: dict[str, object] = {}

    def run(key: str, attempt: Callable[[], object]) -> None:
        try:
            outcomes[key] = attempt()
        except Exception as error:
            outcomes[key] = repr(error)
        finally:
            connection.close()

    def deliveries() -> list[bool]:
        return [outcome.created for outcome in services.deliveries_store(items)]

    threads = [
        threading.Thread(target=run, args=("peer", lambda: peer.says(ops))),
        threading.Thread(target=run, args=("local", deliveries)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == {"peer": "done", "local": [True, True]}
    assert (usage("carol")[0], usage("dave")[0]) == (2, 2)
