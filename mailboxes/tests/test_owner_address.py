"""Addresses move: the owner's address follows every message Maxima authenticated as the owner's, and what the
outbox holds for the old address (forwards, tokens, verdicts) goes to the new one."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from handshake import services as handshake_services
from mailboxes.models import Mailbox
from mailboxes.tests.support import (
    VERIFIER,
    FakeNode,
    Opened,
    Owner,
    deliver,
    deliver_body,
    inbound,
    send_all,
    sent,
)
from maxima.models import OutboundMessage
from maxima.routing import dispatch
from mns_client.protocol import batch
from mns_client.protocol.codecs import MaximaAddress, from_hex
from mns_client.protocol.handshake import Answer, verifier_hash

pytestmark = pytest.mark.django_db


def moved(owner: Owner, port: int = 47001) -> str:
    """The owner's node after a restart on another port: the same key, a new ``Mx…@host:port``."""
    return str(MaximaAddress(from_hex(owner.key), "127.0.0.1", port))


def handled(sender: Owner, body: dict[str, Any]) -> None:
    """A Maxima message from ``sender``'s node, run as the inbound task runs it (through the routing)."""
    dispatch(inbound(sender, body))


def forward_failing_at_the_old_address(client: Client, opened: Opened, sender: Owner) -> OutboundMessage:
    deliver(sender)
    OutboundMessage.objects.all().delete()  # the receipt and the token are not what these tests are about
    client.post("/api/v1/mailboxes/alice/forward", {}, content_type="application/json", **opened.auth)
    assert send_all(FakeNode(delivered=False)) == ["queued"]
    return OutboundMessage.objects.get()


def test_a_message_from_the_owner_with_a_new_reply_address_moves_the_mailbox_there(
    opened: Opened, alice: Owner
) -> None:
    handled(alice, deliver_body("alice", reply_to=moved(alice)))

    assert Mailbox.objects.get().address == moved(alice)


def test_a_forward_queued_to_the_old_address_goes_to_the_new_one_at_once_with_a_fresh_budget(
    client: Client, opened: Opened, sender: Owner, alice: Owner
) -> None:
    waiting = forward_failing_at_the_old_address(client, opened, sender)
    assert waiting.next_attempt_at > timezone.now()
    OutboundMessage.objects.filter(id=waiting.id).update(uncounted=3, released=2)  # tries it had left uncounted

    handled(alice, deliver_body("alice", reply_to=moved(alice)))

    waiting.refresh_from_db()
    assert (waiting.destination, waiting.status, waiting.attempts) == (moved(alice), "queued", 0)
    assert (waiting.uncounted, waiting.released) == (0, 0)  # the budget it was enqueued with, afresh
    assert waiting.next_attempt_at <= timezone.now()
    node = FakeNode()
    send_all(node)
    waiting.refresh_from_db()
    assert waiting.status == "sent"
    forwards = [
        to for to, data in node.sent for item in batch.messages_of(data) if json.loads(item)["type"] == "forwarded"
    ]
    assert forwards == [moved(alice)]


def test_a_forward_that_failed_for_good_at_the_old_address_goes_to_the_new_one(
    client: Client, opened: Opened, sender: Owner, alice: Owner
) -> None:
    waiting = forward_failing_at_the_old_address(client, opened, sender)
    OutboundMessage.objects.filter(id=waiting.id).update(status="failed")

    handled(alice, deliver_body("alice", reply_to=moved(alice)))

    waiting.refresh_from_db()
    assert (waiting.destination, waiting.status) == (moved(alice), "queued")


def test_a_reply_address_from_another_key_moves_nothing(
    client: Client, opened: Opened, sender: Owner, alice: Owner
) -> None:
    waiting = forward_failing_at_the_old_address(client, opened, sender)

    handled(sender, deliver_body("alice", reply_to=moved(alice)))

    waiting.refresh_from_db()
    assert Mailbox.objects.get().address == alice.address
    assert (waiting.destination, waiting.attempts) == (alice.address, 1)


def test_a_handshake_answer_with_a_reply_address_moves_the_mailbox(opened: Opened, alice: Owner) -> None:
    issued = handshake_services.challenge_issue(name="alice", purpose="read", verifier_hash=verifier_hash(VERIFIER))

    handled(alice, Answer(challenge=issued.challenge.id, code=issued.code, reply_to=moved(alice)).to_dict())

    assert Mailbox.objects.get().address == moved(alice)


def test_a_mailbox_whose_owner_cleared_its_address_stays_without_one(
    client: Client, opened: Opened, alice: Owner
) -> None:
    Mailbox.objects.update(address="")

    handled(alice, deliver_body("alice", reply_to=moved(alice)))

    assert Mailbox.objects.get().address == ""


def test_the_owner_setting_the_address_redirects_what_waits_for_the_old_one(
    client: Client, opened: Opened, sender: Owner, alice: Owner
) -> None:
    waiting = forward_failing_at_the_old_address(client, opened, sender)

    response = client.patch(
        "/api/v1/mailboxes/alice", {"address": moved(alice)}, content_type="application/json", **opened.auth
    )

    assert response.status_code == 200
    waiting.refresh_from_db()
    assert (waiting.destination, waiting.status, waiting.attempts) == (moved(alice), "queued", 0)


def test_asking_again_retries_a_forward_that_failed_for_good_at_where_the_owner_is_now(
    client: Client, opened: Opened, sender: Owner, alice: Owner
) -> None:
    waiting = forward_failing_at_the_old_address(client, opened, sender)
    OutboundMessage.objects.filter(id=waiting.id).update(status="failed", destination=moved(alice, 47002))
    Mailbox.objects.update(address=moved(alice))

    client.post("/api/v1/mailboxes/alice/forward", {}, content_type="application/json", **opened.auth)

    waiting.refresh_from_db()
    assert (waiting.destination, waiting.status) == (moved(alice), "queued")
    assert [to for to, _ in sent("forwarded")] == [moved(alice)]
    assert waiting.next_attempt_at <= timezone.now() + timedelta(seconds=1)
