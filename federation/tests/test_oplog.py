"""The operation log: what this gateway appends, in which order, and how it leaves for the peers (push, pull)."""

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from federation import services
from federation.models import Operation, Peer
from federation.tests.support import FakePeer, gateway, peer_b, sent_sync  # noqa: F401 (fixtures)
from mailboxes import services as mailbox_services
from mailboxes.models import Message
from mailboxes.tests.support import Owner, deliver, open_mailbox
from maxima.models import OutboundMessage
from mns_client.protocol import sync
from mns_client.protocol.codecs import to_hex
from registry.tests.support import GATEWAY

pytestmark = pytest.mark.django_db


def own_ops() -> list[tuple[int, str]]:
    """Our log as a peer reads it: numbered first, as a push or a pull does."""
    services.op_sequence()
    return list(Operation.objects.filter(origin=GATEWAY).order_by("seq").values_list("seq", "kind"))


def test_a_confirmed_registration_logs_its_statement_then_its_mailbox(gateway: object) -> None:  # noqa: F811
    opened = open_mailbox(Owner.fresh(), "alice")
    assert own_ops() == [(1, "statement"), (2, "mailbox")]
    statement, mailbox = Operation.objects.filter(origin=GATEWAY).order_by("seq")
    assert statement.payload == {
        "statement": opened.mailbox.record.statement,
        "signature": opened.mailbox.record.signature,
    }
    assert mailbox.payload["replicas"] == [GATEWAY]


def test_a_stored_delivery_logs_one_message_op_and_its_repeat_none(gateway: object) -> None:  # noqa: F811
    open_mailbox(Owner.fresh(), "alice")
    sender = Owner.fresh()
    assert deliver(sender, "alice", id="delivery-0000000001") == "stored"
    assert deliver(sender, "alice", id="delivery-0000000001") == "stored"
    assert own_ops()[2:] == [(3, "message")]
    message = Message.objects.get()
    assert Operation.objects.get(seq=3).payload["uid"] == message.uid
    assert "ciphertext" not in Operation.objects.get(seq=3).payload  # the log keeps no copy of it


def test_an_owners_delete_logs_a_tombstone_and_expiry_does_not(gateway: object) -> None:  # noqa: F811
    opened = open_mailbox(Owner.fresh(), "alice")
    sender = Owner.fresh()
    deliver(sender, "alice", id="delivery-0000000001")
    deliver(sender, "alice", id="delivery-0000000002")
    first, second = Message.objects.order_by("id")
    mailbox_services.message_delete(mailbox=opened.mailbox, uid=first.uid)
    mailbox_services.mailbox_messages_expire(mailbox_id=opened.mailbox.id, now=second.expires_at)
    assert [kind for _, kind in own_ops()] == ["statement", "mailbox", "message", "message", "delete"]
    assert Operation.objects.get(kind="delete").payload == {"name": "alice", "uid": first.uid}


def test_a_message_op_travels_with_its_ciphertext_and_says_gone_once_deleted(gateway: object) -> None:  # noqa: F811
    opened = open_mailbox(Owner.fresh(), "alice")
    deliver(Owner.fresh(), "alice", ciphertext=b"\x05" * 40)
    op = Operation.objects.get(kind="message")
    assert services.op_wire(op)["payload"]["ciphertext"] == to_hex(b"\x05" * 40)
    mailbox_services.message_delete(mailbox=opened.mailbox, uid=op.payload["uid"])
    assert services.op_wire(op)["payload"]["gone"] is True


def test_batches_stay_under_the_size_limit_and_keep_every_op_in_order() -> None:
    ops = [{"seq": seq, "kind": "message", "payload": {"pad": "x" * 30_000}, "created_at": 0} for seq in range(1, 41)]
    batches = list(sync.batches(origin="0xAB", head=40, ops=ops, max_bytes=100_000))
    assert all(len(sync.encode(batch)) <= 100_000 for batch in batches)
    assert [op["seq"] for batch in batches for op in batch["ops"]] == list(range(1, 41))
    assert len(batches) == 14  # three ops of ~30 kB fit in 100 kB


def test_push_queues_each_unsent_op_once_and_moves_the_peers_mark(
    gateway: object,  # noqa: F811
    peer_b: FakePeer,  # noqa: F811
) -> None:
    Peer.objects.update(enabled=False)  # registered alone (the claim is tested in test_claims)
    open_mailbox(Owner.fresh(), "alice")
    Peer.objects.update(enabled=True)
    assert services.push_to_peer(peer_id=Peer.objects.get().id) == 2
    assert services.push_to_peer(peer_id=Peer.objects.get().id) == 0
    pushed = sent_sync("ops")
    assert [(dest, [op["seq"] for op in body["ops"]]) for dest, body in pushed] == [(peer_b.address, [1, 2])]
    assert Peer.objects.get().pushed == 2


def ops_batches() -> list[list[int]]:
    return [[op["seq"] for op in body["ops"]] for _, body in sent_sync("ops")]


def registered_alone(name: str) -> None:
    """A registration whose ops are pushed by hand (the peer disabled meanwhile: no claim, no push)."""
    Peer.objects.update(enabled=False)
    open_mailbox(Owner.fresh(), name)
    Peer.objects.update(enabled=True)


def test_while_a_batch_waits_for_a_retry_new_ops_coalesce_and_go_in_one_batch_once_it_is_sent(
    gateway: object,  # noqa: F811
    peer_b: FakePeer,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    peer_id = Peer.objects.get().id
    registered_alone("alice")
    assert services.push_to_peer(peer_id=peer_id) == 2
    waiting = OutboundMessage.objects.get(idempotency_key__startswith="fed-ops:")
    later = timezone.now() + timedelta(seconds=60)
    OutboundMessage.objects.filter(id=waiting.id).update(attempts=1, next_attempt_at=later)  # the peer did not answer
    registered_alone("bobby")
    registered_alone("carol")
    assert services.push_to_peer(peer_id=peer_id) == 0
    assert ops_batches() == [[1, 2]]
    assert Peer.objects.get().pushed == 2

    OutboundMessage.objects.filter(id=waiting.id).update(status=OutboundMessage.Status.SENT)
    waiting.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.ops_batch_sent(waiting)  # the outbox's sent callback for fed-ops:
    assert ops_batches() == [[1, 2], [3, 4, 5, 6]]
    assert Peer.objects.get().pushed == 6


def test_a_peer_heard_again_gets_what_waits_for_it_in_the_outbox_now(
    gateway: object,  # noqa: F811
    peer_b: FakePeer,  # noqa: F811
) -> None:
    registered_alone("alice")
    services.push_to_peer(peer_id=Peer.objects.get().id)
    later = timezone.now() + timedelta(seconds=60)
    OutboundMessage.objects.filter(idempotency_key__startswith="fed-ops:").update(attempts=1, next_attempt_at=later)
    assert peer_b.says(sync.message("pull", origin=GATEWAY, since=2)) == "done"
    waiting = OutboundMessage.objects.get(idempotency_key__startswith="fed-ops:")
    assert waiting.next_attempt_at <= timezone.now()


def test_a_pull_is_answered_with_the_ops_after_the_peers_cursor(
    gateway: object,  # noqa: F811
    peer_b: FakePeer,  # noqa: F811
) -> None:
    Peer.objects.update(enabled=False)  # nothing pushed meanwhile
    open_mailbox(Owner.fresh(), "alice")
    Peer.objects.update(enabled=True)
    services.op_sequence()  # as the sync round does (a pull answers what is numbered)
    assert peer_b.says(sync.message("pull", origin=GATEWAY, since=1)) == "done"
    [(destination, answer)] = sent_sync("ops")
    assert destination == peer_b.address
    assert (answer["head"], [op["seq"] for op in answer["ops"]]) == (2, [2])


def test_a_pull_repeated_while_its_answer_waits_in_the_outbox_is_not_answered_twice(
    gateway: object,  # noqa: F811
    peer_b: FakePeer,  # noqa: F811
) -> None:
    Peer.objects.update(enabled=False)  # nothing pushed meanwhile
    open_mailbox(Owner.fresh(), "alice")
    Peer.objects.update(enabled=True)
    services.op_sequence()
    pull = sync.message("pull", origin=GATEWAY, since=1)
    assert [peer_b.says(pull), peer_b.says(pull)] == ["done", "done"]  # the next sync round's pull, same cursor
    assert len(sent_sync("ops")) == 1
    assert peer_b.says(sync.message("pull", origin=GATEWAY, since=0)) == "done"  # another cursor: answered
    assert len(sent_sync("ops")) == 2


def test_a_pull_from_a_stranger_is_ignored_and_answered_with_nothing(gateway: object) -> None:  # noqa: F811
    stranger = FakePeer.fresh("stranger")
    assert stranger.says(sync.message("pull", origin=GATEWAY, since=0)) == "ignored: ignored"
    assert sent_sync() == []


def test_an_append_numbers_nothing_and_the_sequencer_numbers_in_append_order_once(gateway: object) -> None:  # noqa: F811
    for name in ("a", "b", "c"):
        services.op_append(kind="suspend", payload={"name": name})
    assert list(Operation.objects.filter(origin=GATEWAY).values_list("seq", flat=True)) == [None, None, None]

    assert services.op_sequence() == 3
    with CaptureQueriesContext(connection) as queries:
        assert services.op_sequence() == 0  # nothing new: nothing renumbered, no lock taken, nothing written
    assert [query["sql"].split()[0] for query in queries.captured_queries] == ["SELECT", "SELECT"]
    assert [op.payload["name"] for op in Operation.objects.filter(origin=GATEWAY).order_by("seq")] == ["a", "b", "c"]
    services.op_append(kind="suspend", payload={"name": "d"})
    assert services.op_sequence(chunk=2) == 1
    assert [seq for seq, _ in own_ops()] == [1, 2, 3, 4]


def test_the_beat_round_numbers_the_log_even_without_peers(gateway: object) -> None:  # noqa: F811
    from federation.tasks import sync as sync_round

    services.op_append(kind="suspend", payload={"name": "x"})
    assert sync_round() == 0  # no peer to push to
    assert Operation.objects.get(origin=GATEWAY).seq == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")
def test_concurrent_appends_and_sequencers_on_postgresql_give_distinct_consecutive_seqs(
    gateway: object,  # noqa: F811
) -> None:
    barrier = threading.Barrier(8, timeout=10)
    errors: list[BaseException] = []

    def append(sequencer: bool) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                with transaction.atomic():
                    services.op_append(kind="suspend", payload={"name": "x"})
                if sequencer:
                    services.op_sequence()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(n % 2 == 0,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert [seq for seq, _ in own_ops()] == list(range(1, 41))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")
def test_an_op_still_in_its_transaction_is_not_numbered_and_comes_after_those_numbered_meanwhile(
    gateway: object,  # noqa: F811
) -> None:
    appended, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                services.op_append(kind="suspend", payload={"name": "slow"})
                appended.set()
                release.wait(timeout=10)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert appended.wait(timeout=10)
    services.op_append(kind="suspend", payload={"name": "quick"})
    assert services.op_sequence() == 1  # the quick one; the slow one is not committed, so not seen
    release.set()
    writer.join(timeout=10)
    assert errors == []
    assert services.op_sequence() == 1
    numbered = Operation.objects.filter(origin=GATEWAY).order_by("seq").values_list("seq", "payload__name")
    assert list(numbered) == [(1, "quick"), (2, "slow")]
