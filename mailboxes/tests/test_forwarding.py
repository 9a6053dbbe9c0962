"""Forwarding (option 2): each stored message goes to the owner's address through the outbox and is marked
forwarded only once the node said delivered:true; failures are retried; forwarded messages may be deleted."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from mailboxes import services, tasks
from mailboxes.models import Mailbox, Message
from mailboxes.tests.support import FakeNode, Opened, Owner, body, deliver, error, send_all, sent, session, usage
from maxima.models import OutboundMessage
from mns_client.protocol import batch
from mns_client.protocol.mailbox import Forwarded

pytestmark = pytest.mark.django_db


def forward(client: Client, opened: Opened, **data: Any) -> Any:
    return client.post("/api/v1/mailboxes/alice/forward", data, content_type="application/json", **opened.auth)


def outbound_ready() -> None:
    """Make every queued message due now (skipping the backoff)."""
    OutboundMessage.objects.filter(status="queued").update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_forwarding_queues_each_stored_message_to_the_owners_address(
    client: Client, opened: Opened, sender: Owner, alice: Owner
) -> None:
    deliver(sender, ciphertext=b"one")
    deliver(sender, ciphertext=b"two")
    response = forward(client, opened)
    assert (response.status_code, body(response)) == (202, {"queued": 2, "retried": 0, "in_flight": 0})
    messages = list(Message.objects.order_by("id"))
    assert [m.state for m in messages] == ["forwarding", "forwarding"]
    forwards = sent("forwarded")
    assert [destination for destination, _ in forwards] == [alice.address, alice.address]
    first = Forwarded.from_bytes(json.dumps(forwards[0][1]).encode())
    assert first == Forwarded(
        name="alice",
        message_id=messages[0].uid,
        sender=sender.key,
        sender_verified=True,
        scheme="nacl-sealedbox-v1",
        ciphertext=b"one",
        received_at=int(messages[0].received_at.timestamp() * 1000),
    )


def test_a_message_is_marked_forwarded_only_when_the_node_delivered_it(
    client: Client, opened: Opened, sender: Owner
) -> None:
    deliver(sender)
    OutboundMessage.objects.all().delete()  # the receipt is not what this test is about
    forward(client, opened)
    assert send_all(FakeNode(delivered=False)) == ["queued"]
    message = Message.objects.get()
    assert (message.state, message.forwarded_at) == ("forwarding", None)
    outbound_ready()
    assert send_all(FakeNode()) == ["sent"]
    message.refresh_from_db()
    assert message.state == "forwarded"
    assert message.forwarded_at is not None
    assert usage()[0] == 1


def test_asking_again_leaves_forwards_in_flight_and_does_not_queue_twice(
    client: Client, opened: Opened, sender: Owner
) -> None:
    deliver(sender)
    forward(client, opened)
    assert body(forward(client, opened)) == {"queued": 0, "retried": 0, "in_flight": 1}
    assert len(sent("forwarded")) == 1


def test_a_forward_that_failed_for_good_is_retried_when_asked_again(
    client: Client, opened: Opened, sender: Owner
) -> None:
    deliver(sender)
    forward(client, opened)
    OutboundMessage.objects.filter(idempotency_key__startswith="forward:").update(status="failed", attempts=12)
    assert body(forward(client, opened)) == {"queued": 0, "retried": 1, "in_flight": 0}
    outbound = OutboundMessage.objects.get(idempotency_key__startswith="forward:")
    assert (outbound.status, outbound.attempts) == ("queued", 0)


def test_forwarded_messages_can_be_deleted_once_delivered(client: Client, opened: Opened, sender: Owner) -> None:
    deliver(sender, ciphertext=b"x" * 40)
    deliver(sender, ciphertext=b"y" * 60)
    forward(client, opened, delete_after=True)
    send_all(FakeNode())
    assert not Message.objects.exists()
    assert usage() == (0, 0)


def test_automatic_forwarding_sends_each_new_message_as_it_arrives(
    client: Client, opened: Opened, sender: Owner
) -> None:
    services.mailbox_configure(mailbox=opened.mailbox, auto_forward=True, delete_forwarded=True)
    deliver(sender)
    assert Message.objects.get().state == "forwarding"
    assert len(sent("forwarded")) == 1
    send_all(FakeNode())
    assert not Message.objects.exists()


def test_a_missed_mark_is_made_by_the_beat_sweep(client: Client, opened: Opened, sender: Owner) -> None:
    deliver(sender)
    forward(client, opened)
    OutboundMessage.objects.filter(idempotency_key__startswith="forward:").update(status="sent")  # mark lost
    assert tasks.expire() == 1
    assert Message.objects.get().state == "forwarded"
    assert tasks.expire() == 0


def test_forwarding_needs_a_forward_session_or_the_token(client: Client, opened: Opened, alice: Owner) -> None:
    read = session(alice, "alice", "read")
    assert error(client.post("/api/v1/mailboxes/alice/forward", **read)) == (403, "session_out_of_scope")
    forward_session = session(alice, "alice", "forward")
    response = client.post("/api/v1/mailboxes/alice/forward", {}, content_type="application/json", **forward_session)
    assert response.status_code == 202


def test_forwarding_without_an_address_is_refused(client: Client, opened: Opened, sender: Owner) -> None:
    deliver(sender)
    Mailbox.objects.update(address="")
    assert error(forward(client, opened)) == (409, "address_missing")
    assert Message.objects.get().state == "stored"


def test_many_forwards_go_in_one_batch_send_and_each_message_is_marked_forwarded(
    client: Client, opened: Opened, sender: Owner, alice: Owner
) -> None:
    for n in range(5):
        deliver(sender, ciphertext=f"message {n}".encode())
    OutboundMessage.objects.all().delete()  # the receipts are not what this test is about
    forward(client, opened)
    node = FakeNode()
    assert send_all(node) == ["sent", "skipped", "skipped", "skipped", "skipped"]
    assert len(node.sent) == 1
    destination, data = node.sent[0]
    items = [Forwarded.from_bytes(item) for item in batch.unpack(data)]
    assert destination == alice.address
    assert [item.ciphertext for item in items] == [f"message {n}".encode() for n in range(5)]
    assert set(Message.objects.values_list("state", flat=True)) == {"forwarded"}
