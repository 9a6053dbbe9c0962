"""Reading a delivery's receipt over REST: what the gateway queued for the sender's node, for a web page."""

import json
from typing import Any

import pytest
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from mailboxes.models import Message
from mailboxes.tests.support import FakeNode, Opened, Owner, body, deliver, error, send_all, snapshot
from maxima.models import OutboundMessage
from mns_client.protocol import batch
from mns_client.protocol.codecs import from_hex
from mns_client.protocol.mailbox import new_delivery_id

pytestmark = pytest.mark.django_db


def receipt(client: Client, delivery_id: str, sender: str, **extra: Any) -> Any:
    return client.get(f"/api/v1/receipts/{delivery_id}", {"sender": sender}, **extra)


def outbox() -> list[dict[str, Any]]:
    return list(OutboundMessage.objects.order_by("id").values())


def test_a_stored_delivery_answers_its_receipt_with_the_message_id(
    client: Client, opened: Opened, sender: Owner
) -> None:
    delivery_id = new_delivery_id()
    assert deliver(sender, id=delivery_id, reply_to=sender.address) == "stored"
    response = receipt(client, delivery_id, sender.key)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    uid = Message.objects.get().uid
    assert body(response) == {"id": delivery_id, "status": "stored", "message_id": uid, "sent": False}


def test_the_receipt_says_sent_once_the_gateways_node_delivered_it(
    client: Client, opened: Opened, sender: Owner
) -> None:
    delivery_id = new_delivery_id()
    deliver(sender, id=delivery_id)
    assert set(send_all(FakeNode())) == {"sent"}
    assert body(receipt(client, delivery_id, sender.key))["sent"] is True


def test_a_refused_delivery_answers_the_reason_in_words(client: Client, opened: Opened, sender: Owner) -> None:
    delivery_id = new_delivery_id()
    assert deliver(sender, "nobody", id=delivery_id) == "unknown_name"
    answer = body(receipt(client, delivery_id, sender.key))
    assert (answer["id"], answer["status"], answer["reason"], answer["sent"]) == (
        delivery_id,
        "refused",
        "unknown_name",
        False,
    )
    assert "nobody" in answer["detail"]
    assert "message_id" not in answer


def test_a_stored_receipt_wins_over_an_earlier_refusal_of_the_same_id(
    client: Client, opened: Opened, sender: Owner
) -> None:
    delivery_id = new_delivery_id()
    assert deliver(sender, "nobody", id=delivery_id) == "unknown_name"
    assert deliver(sender, id=delivery_id) == "stored"
    assert OutboundMessage.objects.filter(idempotency_key__startswith=f"receipt:{delivery_id}:").count() == 2
    assert body(receipt(client, delivery_id, sender.key))["status"] == "stored"


def test_the_key_may_be_given_in_lower_case_hex(client: Client, opened: Opened, sender: Owner) -> None:
    delivery_id = new_delivery_id()
    deliver(sender, id=delivery_id)
    lower = "0x" + sender.key[2:].lower()
    assert body(receipt(client, delivery_id, lower))["status"] == "stored"
    assert from_hex(lower) == from_hex(sender.key)


def test_an_unknown_delivery_id_is_not_found(client: Client, opened: Opened, sender: Owner) -> None:
    deliver(sender)
    assert error(receipt(client, new_delivery_id(), sender.key)) == (404, "receipt_not_found")


def test_another_senders_key_does_not_find_the_receipt(
    client: Client, opened: Opened, sender: Owner, bob: Owner
) -> None:
    delivery_id = new_delivery_id()
    deliver(sender, id=delivery_id)
    assert error(receipt(client, delivery_id, bob.key)) == (404, "receipt_not_found")


@pytest.mark.parametrize(
    ("delivery_id", "sender_key"),
    [
        ("short", None),
        ("x" * 65, None),
        ("bad.id.with.dots.and.more", None),
        (None, "0x1234"),
        (None, "not a key"),
        (None, ""),
    ],
)
def test_a_malformed_delivery_id_or_sender_key_is_refused(
    client: Client, opened: Opened, sender: Owner, delivery_id: str | None, sender_key: str | None
) -> None:
    existing = new_delivery_id()
    deliver(sender, id=existing)
    response = receipt(client, delivery_id or existing, sender_key if sender_key is not None else sender.key)
    assert error(response) == (400, "invalid")


def test_a_missing_sender_is_refused(client: Client, opened: Opened) -> None:
    assert error(client.get(f"/api/v1/receipts/{new_delivery_id()}")) == (400, "invalid")


def test_reading_a_receipt_writes_nothing(client: Client, opened: Opened, sender: Owner) -> None:
    delivery_id = new_delivery_id()
    deliver(sender, id=delivery_id)
    before = (snapshot(), outbox())
    for key in (sender.key, "0x12"):
        receipt(client, delivery_id, key)
    receipt(client, new_delivery_id(), sender.key)
    assert (snapshot(), outbox()) == before


def test_receipt_lookups_are_rate_limited_per_client(
    client: Client, opened: Opened, sender: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery_id = new_delivery_id()
    deliver(sender, id=delivery_id)
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "lookup", "2/min")
    statuses = [receipt(client, delivery_id, sender.key).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert error(receipt(client, delivery_id, sender.key)) == (429, "throttled")
    assert receipt(client, delivery_id, sender.key, REMOTE_ADDR="10.0.0.9").status_code == 200


def test_the_receipt_operation_is_in_the_openapi_schema(client: Client) -> None:
    schema = body(client.get("/api/schema/", {"format": "json"}))
    operation = schema["paths"]["/api/v1/receipts/{delivery_id}"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {"delivery_id", "sender"}
    assert set(operation["responses"]) >= {"200", "400", "404", "429"}


def test_receipts_sent_together_in_one_batch_are_each_answered_over_rest_as_sent(
    client: Client, opened: Opened, sender: Owner
) -> None:
    OutboundMessage.objects.all().delete()  # what opening the mailbox queued is not what this test is about
    ids = [new_delivery_id() for _ in range(3)]
    outcomes = [deliver(sender, id=ids[0]), deliver(sender, id=ids[1], to="nobody"), deliver(sender, id=ids[2])]
    assert outcomes == ["stored", "unknown_name", "stored"]
    node = FakeNode()
    assert send_all(node) == ["sent", "skipped", "skipped"]
    assert len(node.sent) == 1  # one Maxima message carried the three receipts
    carried = [json.loads(item)["id"] for item in batch.unpack(node.sent[0][1])]
    assert carried == ids
    answers = [body(receipt(client, delivery_id, sender.key)) for delivery_id in ids]
    assert [(a["status"], a["sent"]) for a in answers] == [("stored", True), ("refused", True), ("stored", True)]
