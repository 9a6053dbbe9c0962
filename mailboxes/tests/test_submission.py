"""Delivering over REST (off by default): the same checks as over Maxima, and the sender marked unverified."""

from typing import Any

import pytest
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from mailboxes import services
from mailboxes.models import Message
from mailboxes.tests.support import Opened, Owner, body, deliver, deliver_body, error, quota_set, snapshot, usage
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.mailbox import new_delivery_id
from registry import services as registry_services

# Outside a transaction, as served: on PostgreSQL that is the one-statement way (delivery._submitted), which must
# answer each case as delivery_store does.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def rest_on(settings: Any) -> None:
    settings.MNS_REST_SUBMISSION = True


def submit(client: Client, name: str = "alice", address: str = "127.0.0.1", **fields: Any) -> Any:
    data = {"id": new_delivery_id(), "scheme": "nacl-sealedbox-v1", "ciphertext": to_hex(b"\x02" * 50), **fields}
    return client.post(f"/api/v1/names/{name}/messages", data, content_type="application/json", REMOTE_ADDR=address)


def test_submission_is_off_by_default_and_stores_nothing(client: Client, opened: Opened) -> None:
    before = snapshot()
    assert error(submit(client)) == (403, "submission_disabled")
    assert snapshot() == before


def test_a_submission_is_stored_with_an_unverified_sender(
    client: Client, opened: Opened, sender: Owner, rest_on: None
) -> None:
    delivery_id = new_delivery_id()
    response = submit(client, id=delivery_id, sender=sender.key)
    message = Message.objects.get()
    assert (response.status_code, body(response)) == (
        201,
        {"id": delivery_id, "status": "stored", "message_id": message.uid},
    )
    assert (message.sender_key, message.sender_verified, message.size) == (sender.key, False, 50)
    again = submit(client, id=delivery_id, sender=sender.key)
    assert (again.status_code, body(again)["message_id"]) == (200, message.uid)
    assert usage()[0] == 1


def test_an_anonymous_submission_has_no_sender(client: Client, opened: Opened, rest_on: None) -> None:
    assert submit(client).status_code == 201
    assert Message.objects.get().sender_key == ""


def test_a_rest_submission_never_counts_as_the_verified_senders_delivery(
    client: Client, opened: Opened, sender: Owner, rest_on: None
) -> None:
    body_ = deliver_body()
    submit(client, id=body_["id"], sender=sender.key)
    deliver(sender, body=body_)
    assert sorted(Message.objects.values_list("sender_verified", flat=True)) == [False, True]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"scheme": "rot13"}, (400, "bad_scheme")),
        ({"ciphertext": to_hex(b"x" * 65537)}, (413, "too_large")),
        ({"ciphertext": "0xZZ"}, (400, "invalid")),
        ({"id": "short"}, (400, "invalid")),
    ],
)
def test_a_refused_submission_answers_its_reason_and_stores_nothing(
    client: Client, opened: Opened, rest_on: None, fields: dict[str, Any], expected: tuple[int, str]
) -> None:
    before = snapshot()
    assert error(submit(client, **fields)) == expected
    assert snapshot() == before


def test_unknown_name_quota_and_block_refusals_answer_their_reason(
    client: Client, opened: Opened, sender: Owner, rest_on: None
) -> None:
    before = snapshot()
    assert error(submit(client, "nobody")) == (404, "unknown_name")
    assert snapshot() == before
    quota_set(max_messages=0)
    before = snapshot()
    assert error(submit(client)) == (507, "over_quota")
    assert snapshot() == before
    quota_set(max_messages=1000)
    services.mailbox_configure(mailbox=opened.mailbox, allowed=[sender.key])
    before = snapshot()
    assert error(submit(client, sender=sender.key)) == (403, "blocked")  # a claimed key is not on an allow list
    assert snapshot() == before


def test_suspended_names_and_senders_blocked_by_staff_are_refused_and_not_counted(
    client: Client, opened: Opened, sender: Owner, rest_on: None, settings: Any, staff: Any
) -> None:
    settings.MNS_DELIVERY_RATE_PER_MINUTE = 1
    services.sender_block(sender_key=sender.key, actor=staff, reason="spam run")
    before = snapshot()
    assert [error(submit(client, sender=sender.key)) for _ in range(2)] == [(403, "blocked")] * 2
    assert snapshot() == before
    registry_services.name_suspend(name="alice", actor=staff, reason="abuse")
    before = snapshot()
    assert [error(submit(client)) for _ in range(2)] == [(403, "suspended")] * 2
    assert snapshot() == before
    registry_services.name_restore(name="alice", actor=staff, reason="cleared")
    assert submit(client).status_code == 201
    assert error(submit(client)) == (429, "rate_limited")


def test_requests_that_are_no_delivery_are_not_counted_against_the_mailbox(
    client: Client, opened: Opened, rest_on: None, settings: Any
) -> None:
    """A body refused, or another method: nothing was delivered, so nothing counts on the mailbox's window."""
    settings.MNS_DELIVERY_RATE_PER_MINUTE = 1
    assert [error(submit(client, id="short")) for _ in range(3)] == [(400, "invalid")] * 3
    garbled = client.post("/api/v1/names/alice/messages", "{", content_type="application/json")
    assert error(garbled)[0] == 400
    assert client.get("/api/v1/names/alice/messages").status_code in (401, 403, 405)
    assert submit(client).status_code == 201
    assert error(submit(client)) == (429, "rate_limited")


def test_submissions_share_one_rate_per_mailbox(client: Client, opened: Opened, rest_on: None, settings: Any) -> None:
    settings.MNS_DELIVERY_RATE_PER_MINUTE = 2
    assert [submit(client).status_code for _ in range(2)] == [201, 201]
    assert error(submit(client)) == (429, "rate_limited")
    assert Message.objects.count() == 2


def test_a_submission_answered_before_the_rate_is_not_counted_by_it(
    client: Client, opened: Opened, sender: Owner, rest_on: None, settings: Any
) -> None:
    """Stored before, or refused by a check that comes before the rate: not counted, whichever way it was stored
    (on PostgreSQL a REST delivery counts first and gives the count back)."""
    settings.MNS_DELIVERY_RATE_PER_MINUTE = 2
    first = new_delivery_id()
    assert submit(client, id=first).status_code == 201
    assert [submit(client, id=first).status_code for _ in range(3)] == [200, 200, 200]
    services.mailbox_configure(mailbox=opened.mailbox, blocked=[sender.key])
    assert [error(submit(client, sender=sender.key)) for _ in range(3)] == [(403, "blocked")] * 3
    assert submit(client).status_code == 201
    assert error(submit(client)) == (429, "rate_limited")
    assert submit(client, id=first).status_code == 200  # the window is full: stored before is still answered
    assert error(submit(client)) == (429, "rate_limited")  # and the one refused, counted, keeps it full
    assert Message.objects.count() == 2


def test_a_submission_the_clients_limit_refused_is_not_counted_against_the_mailbox(
    client: Client, opened: Opened, rest_on: None, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One client hammering a mailbox is held back by its own limit, and the requests it refused leave the
    mailbox's window for the others."""
    settings.MNS_DELIVERY_RATE_PER_MINUTE = 2
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "submit", "1/min")
    assert submit(client).status_code == 201
    assert [error(submit(client)) for _ in range(5)] == [(429, "throttled")] * 5
    assert submit(client, address="10.0.0.2").status_code == 201
    assert error(submit(client, address="10.0.0.3")) == (429, "rate_limited")
    assert Message.objects.count() == 2


@pytest.mark.parametrize("bad_id", ["a" * 300 + "\n!", "x" * 15, "id with spaces 12345", "a" * 65])
def test_a_delivery_id_must_match_as_a_whole(client: Client, opened: Opened, rest_on: None, bad_id: str) -> None:
    before = snapshot()
    assert error(submit(client, id=bad_id)) == (400, "invalid")
    assert snapshot() == before


def test_a_method_submission_does_not_serve_answers_405_before_it_is_called_off(client: Client, opened: Opened) -> None:
    response = client.generic("TRACE", "/api/v1/names/alice/messages")
    assert error(response) == (405, "method_not_allowed")


def test_the_submission_is_documented_in_the_schema_with_its_body_and_refusals(client: Client) -> None:
    operation = body(client.get("/api/schema/", {"format": "json"}))["paths"]["/api/v1/names/{name}/messages"]["post"]
    assert operation["operationId"] == "names_messages_create"
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SubmitRequest")
    assert {"201", "200", "400", "403", "404", "413", "429", "507"} <= set(operation["responses"])
