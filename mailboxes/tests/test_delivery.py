"""Delivering over Maxima: stored once with a receipt, or refused with its reason and nothing stored."""

import json
import secrets
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from federation.models import Operation
from mailboxes import services
from mailboxes.models import MailboxCounter, Message, SenderRule
from mailboxes.tests.support import (
    Opened,
    Owner,
    deliver,
    deliver_body,
    inbound,
    open_mailbox,
    pages_read,
    quota_set,
    sent,
    snapshot,
    usage,
)
from maxima.models import InboundEvent, OutboundMessage
from maxima.routing import Ignored
from maxima.services import MaximaEvent, inbound_process, inbound_process_batch, inbound_store
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.mailbox import new_delivery_id
from registry import services as registry_services

pytestmark = pytest.mark.django_db


def test_a_delivery_is_stored_with_its_metadata_and_receipted_at_reply_to(
    opened: Opened, sender: Owner, settings: Any
) -> None:
    settings.MNS_RETENTION_DAYS = 30
    delivery_id = new_delivery_id()
    outcome = deliver(sender, id=delivery_id, ciphertext=b"sealed" * 10, reply_to=sender.address)
    assert outcome == "stored"
    message = Message.objects.get()
    assert (message.delivery_id, message.sender_key, message.sender_verified) == (delivery_id, sender.key, True)
    assert (bytes(message.ciphertext), message.size, message.scheme) == (b"sealed" * 10, 60, "nacl-sealedbox-v1")
    assert (message.expires_at - message.received_at).days == 30
    assert message.state == "stored"
    assert usage() == (1, 60)
    assert sent("receipt") == [
        (sender.address, {"v": 1, "type": "receipt", "id": delivery_id, "status": "stored", "message_id": message.uid})
    ]


def test_without_reply_to_the_receipt_goes_to_the_senders_key(opened: Opened, sender: Owner) -> None:
    deliver(sender)
    [(destination, receipt)] = sent("receipt")
    assert (destination, receipt["status"]) == (sender.key, "stored")


def test_the_same_id_delivered_twice_is_stored_once_and_receipted_the_same_way(opened: Opened, sender: Owner) -> None:
    body = deliver_body(reply_to=sender.address)
    assert [deliver(sender, body=body), deliver(sender, body=body)] == ["stored", "stored"]
    assert Message.objects.count() == 1
    assert usage()[0] == 1
    assert len(sent("receipt")) == 1


def test_the_same_id_from_another_sender_is_another_message(opened: Opened, sender: Owner, bob: Owner) -> None:
    body = deliver_body()
    deliver(sender, body=body)
    deliver(bob, body=body)
    assert Message.objects.count() == 2
    assert len(sent("receipt")) == 2


def test_a_name_in_another_spelling_reaches_the_mailbox(opened: Opened, sender: Owner) -> None:
    assert deliver(sender, "ALICE") == "stored"


def refusal(sender: Owner, **fields: Any) -> dict[str, Any]:
    """Deliver, check that nothing was stored, and return the one refusal receipt."""
    before = snapshot()
    body = deliver_body(**{"reply_to": sender.address, **fields})
    outcome = deliver(sender, body=body)
    assert snapshot() == before
    [(destination, receipt)] = sent("receipt")
    assert destination == sender.address
    assert (receipt["id"], receipt["status"], receipt["reason"]) == (body["id"], "refused", outcome)
    assert "message_id" not in receipt
    return receipt


def test_a_delivery_to_an_unknown_name_is_refused(opened: Opened, sender: Owner) -> None:
    receipt = refusal(sender, to="nobody")
    assert receipt == {**receipt, "reason": "unknown_name", "detail": "No mailbox of 'nobody' is kept by this gateway."}


def test_a_delivery_to_something_that_is_not_a_name_is_refused_as_unknown(opened: Opened, sender: Owner) -> None:
    assert refusal(sender, to="not a name!")["reason"] == "unknown_name"


def test_a_delivery_to_a_suspended_name_is_refused(opened: Opened, sender: Owner, staff: User) -> None:
    registry_services.name_suspend(name="alice", actor=staff, reason="abuse")
    assert refusal(sender)["reason"] == "suspended"


def test_a_delivery_to_a_released_name_is_refused_as_unknown(opened: Opened, sender: Owner, alice: Owner) -> None:
    registry_services.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    assert refusal(sender)["reason"] == "unknown_name"


def test_an_unknown_scheme_is_refused(opened: Opened, sender: Owner) -> None:
    receipt = refusal(sender, scheme="rot13")
    assert receipt["reason"] == "bad_scheme"
    assert receipt["detail"] == "The scheme must be one of nacl-sealedbox-v1, maxima-rsa-v1."


def test_a_ciphertext_over_the_advertised_limit_is_refused(opened: Opened, sender: Owner, settings: Any) -> None:
    settings.MNS_MAX_MESSAGE_BYTES = 1024
    assert deliver(sender, ciphertext=b"x" * 1024) == "stored"
    services.messages_ack(mailbox=opened.mailbox, uids=list(Message.objects.values_list("uid", flat=True)))
    sent_before = len(sent("receipt"))
    assert refusal_after(sender, sent_before, ciphertext=b"x" * 1025)["reason"] == "too_large"


def refusal_after(sender: Owner, already: int, **fields: Any) -> dict[str, Any]:
    """Like ``refusal``, when receipts were queued before."""
    before = snapshot()
    outcome = deliver(sender, body=deliver_body(**{"reply_to": sender.address, **fields}))
    assert snapshot() == before
    receipts = sent("receipt")
    assert len(receipts) == already + 1
    assert receipts[-1][1]["reason"] == outcome
    return receipts[-1][1]


def test_a_full_mailbox_refuses_by_count(opened: Opened, sender: Owner) -> None:
    quota_set(max_messages=2)
    assert [deliver(sender), deliver(sender)] == ["stored", "stored"]
    receipt = refusal_after(sender, 2)
    assert (receipt["reason"], receipt["detail"]) == (
        "over_quota",
        "The mailbox is full; its owner has to read and delete messages first.",
    )


def test_a_full_mailbox_refuses_by_bytes(opened: Opened, sender: Owner) -> None:
    quota_set(max_bytes=250)
    assert deliver(sender, ciphertext=b"x" * 200) == "stored"
    assert refusal_after(sender, 1, ciphertext=b"x" * 51)["reason"] == "over_quota"
    assert deliver(sender, ciphertext=b"x" * 50) == "stored"
    assert usage() == (2, 250)


def test_a_sender_over_the_rate_is_refused_until_the_next_minute(
    opened: Opened, sender: Owner, bob: Owner, settings: Any
) -> None:
    settings.MNS_DELIVERY_RATE_PER_MINUTE = 2
    assert [deliver(sender), deliver(sender)] == ["stored", "stored"]
    assert refusal_after(sender, 2)["reason"] == "rate_limited"
    assert deliver(bob) == "stored"  # the limit is per sender


def test_a_sender_on_the_mailboxs_block_list_is_refused(opened: Opened, sender: Owner) -> None:
    services.mailbox_configure(mailbox=opened.mailbox, blocked=[sender.key])
    receipt = refusal(sender)
    assert (receipt["reason"], receipt["detail"]) == ("blocked", "The owner of this mailbox blocked this sender.")


def test_a_non_empty_allow_list_admits_only_its_senders(opened: Opened, sender: Owner, bob: Owner) -> None:
    services.mailbox_configure(mailbox=opened.mailbox, allowed=[bob.key])
    assert deliver(bob) == "stored"
    receipt = refusal_after(sender, 1)
    assert (receipt["reason"], receipt["detail"]) == (
        "blocked",
        "This mailbox accepts messages from the senders it lists only.",
    )


def test_a_sender_blocked_by_staff_is_refused_by_every_mailbox(
    opened: Opened, sender: Owner, staff: User, alice: Owner
) -> None:
    services.sender_block(sender_key=sender.key, actor=staff, reason="spam run")
    assert refusal(sender)["detail"] == "This gateway does not accept messages from this sender."
    assert SenderRule.objects.count() == 0


def test_a_malformed_delivery_with_an_id_is_refused_as_malformed(opened: Opened, sender: Owner) -> None:
    before = snapshot()
    body = {**deliver_body(reply_to=sender.address), "ciphertext": "not hex"}
    assert deliver(sender, body=body) == "malformed"
    assert snapshot() == before
    [(_, receipt)] = sent("receipt")
    assert (receipt["reason"], receipt["detail"]) == ("malformed", "ciphertext: expected 0x and hex digits")


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"v": True}, "v: must be 1"),
        ({"v": 1.0}, "v: must be 1"),
        ({"reply_to": None}, "reply_to: must be omitted rather than null"),
    ],
    ids=["v-true", "v-float", "reply_to-null"],
)
def test_a_delivery_in_a_second_spelling_is_refused_as_malformed_and_nothing_is_stored(
    opened: Opened, sender: Owner, change: dict[str, Any], detail: str
) -> None:
    before = snapshot()
    body = {**deliver_body(reply_to=sender.address), **change}

    assert deliver(sender, body=body) == "malformed"

    assert snapshot() == before
    [(destination, receipt)] = sent("receipt")
    expected = sender.key if change.get("reply_to", "") is None else sender.address  # a null reply_to is no address
    assert (destination, receipt["reason"], receipt["detail"]) == (expected, "malformed", detail)


def test_the_transport_does_not_route_a_deliver_whose_version_is_true(opened: Opened, sender: Owner) -> None:
    body = {**deliver_body(reply_to=sender.address), "v": True}
    event = MaximaEvent(
        msgid="0x" + secrets.token_hex(32).upper(),
        sender=sender.key,
        recipient_key="0x00",
        application="mns",
        data=json.dumps(body).encode(),
        timemilli=int(time.time() * 1000),
        random="0x00",
    )
    row, _ = inbound_store(event=event)
    before = snapshot()

    assert inbound_process(event_id=row.id, claim="test") == "ignored"

    assert snapshot() == before
    assert sent("receipt") == []


def test_a_delivery_without_a_usable_id_is_ignored_and_not_receipted(opened: Opened, sender: Owner) -> None:
    before = snapshot()
    body = {**deliver_body(), "id": "short"}
    with pytest.raises(Ignored):
        services.deliver_received(message=inbound(sender, body), body=body)
    assert snapshot() == before
    assert sent("receipt") == []


def test_a_refused_id_is_stored_when_sent_again_later_and_gets_its_stored_receipt(
    opened: Opened, sender: Owner
) -> None:
    quota_set(max_messages=0)
    body = deliver_body(reply_to=sender.address)
    assert deliver(sender, body=body) == "over_quota"
    quota_set(max_messages=10)
    assert deliver(sender, body=body) == "stored"
    assert [receipt["status"] for _, receipt in sent("receipt")] == ["refused", "stored"]


def test_the_receipt_never_carries_the_ciphertext(opened: Opened, sender: Owner) -> None:
    deliver(sender, ciphertext=b"\xab" * 64)
    [(_, receipt)] = sent("receipt")
    assert to_hex(b"\xab" * 64)[2:] not in str(receipt)


def test_the_transport_routes_a_deliver_to_the_mailbox_and_marks_the_event_done(opened: Opened, sender: Owner) -> None:
    refused_body = deliver_body(to="nobody")
    for body in (deliver_body(), refused_body):
        event = MaximaEvent(
            msgid="0x" + secrets.token_hex(32).upper(),
            sender=sender.key,
            recipient_key="0x00",
            application="mns",
            data=json.dumps(body).encode(),
            timemilli=int(time.time() * 1000),
            random="0x00",
        )
        row, _ = inbound_store(event=event)
        assert inbound_process(event_id=row.id, claim="test") == "done"
    assert Message.objects.count() == 1
    assert [receipt["status"] for _, receipt in sent("receipt")] == ["stored", "refused"]


def batch_item(sender: Owner, to: str = "alice", **fields: Any) -> services.Delivery:
    values = {"delivery_id": new_delivery_id(), "scheme": "nacl-sealedbox-v1", "ciphertext": b"\x05" * 40}
    values.update(fields)
    return services.Delivery(to=to, sender_key=sender.key, sender_verified=True, **values)


def test_a_batch_of_deliveries_answers_each_in_its_order_and_stores_only_what_it_accepts(
    opened: Opened, sender: Owner, bob: Owner
) -> None:
    open_mailbox(bob, "bob")
    quota_set("bob", max_messages=1)
    again = new_delivery_id()
    deliver(sender, id=again)
    items = [
        batch_item(sender, "bob"),
        batch_item(sender, "nobody"),
        batch_item(sender, delivery_id=again),
        batch_item(sender, "bob"),
        batch_item(sender, scheme="rot13"),
        batch_item(sender),
    ]
    outcomes = services.deliveries_store(items)
    kinds = [outcome.code if isinstance(outcome, services.DeliveryRefused) else outcome.created for outcome in outcomes]
    assert kinds == [True, "unknown_name", False, "over_quota", "bad_scheme", True]
    stored = {outcome.message.uid for outcome in outcomes if isinstance(outcome, services.Stored)}
    assert stored == set(Message.objects.values_list("uid", flat=True))
    assert (usage("alice")[0], usage("bob")[0]) == (2, 1)


def test_one_delivery_twice_in_a_batch_is_stored_once(opened: Opened, sender: Owner) -> None:
    item = batch_item(sender)
    first, second = services.deliveries_store([item, item])
    assert (first.created, second.created, first.message.uid) == (True, False, second.message.uid)
    assert Message.objects.count() == usage()[0] == 1


def test_a_batch_counts_each_delivery_on_its_senders_rate_in_order_with_one_call_for_all(
    opened: Opened, sender: Owner, bob: Owner, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate of a run is counted in one round trip (one ``hit_many``), in the run's order: what another check
    refused first is not counted, and the limit is per sender."""
    from core import ratelimit

    settings.MNS_DELIVERY_RATE_PER_MINUTE = 2
    calls: list[int] = []
    hit_many = ratelimit.hit_many
    monkeypatch.setattr(ratelimit, "hit_many", lambda limits, **kw: calls.append(len(limits)) or hit_many(limits, **kw))
    items = [
        batch_item(sender),
        batch_item(sender, scheme="rot13"),
        batch_item(sender),
        batch_item(bob),
        batch_item(sender),
        batch_item(sender),
    ]
    outcomes = services.deliveries_store(items)
    kinds = [outcome.code if isinstance(outcome, services.DeliveryRefused) else outcome.created for outcome in outcomes]
    assert kinds == [True, "bad_scheme", True, True, "rate_limited", "rate_limited"]
    assert calls == [5]
    assert Message.objects.count() == usage()[0] == 3
    assert refusal_after(sender, 0)["reason"] == "rate_limited"  # the window counted them all
    assert deliver(bob) == "stored"


def test_deliveries_stored_before_are_found_by_their_whole_key(opened: Opened, sender: Owner, bob: Owner) -> None:
    from mailboxes import selectors

    mailbox_id = opened.mailbox.id
    ids = [new_delivery_id() for _ in range(3)]
    assert [deliver(sender, id=ids[0]), deliver(sender, id=ids[1]), deliver(bob, id=ids[2])] == ["stored"] * 3
    wanted = [
        (mailbox_id, sender.key, True, ids[0]),
        (mailbox_id, sender.key, True, ids[2]),  # bob's id, not this sender's
        (mailbox_id, sender.key, False, ids[1]),  # not verified: another delivery
        (mailbox_id, bob.key, True, ids[2]),
        (mailbox_id + 1, sender.key, True, ids[1]),  # another mailbox
        (mailbox_id, sender.key, True, ids[0]),  # asked twice
    ]
    found = selectors.deliveries_found(wanted)
    assert sorted(found) == sorted([wanted[0], wanted[3]])
    assert [(m.delivery_id, m.sender_key, m.sender_verified) for m in (found[wanted[0]], found[wanted[3]])] == [
        (ids[0], sender.key, True),
        (ids[2], bob.key, True),
    ]
    assert "ciphertext" in found[wanted[0]].get_deferred_fields()
    assert selectors.deliveries_found([]) == {}


@pytest.mark.django_db(transaction=True)
def test_a_runs_deliveries_stored_before_are_found_one_index_probe_each_whatever_the_sender_stored(
    opened: Opened, sender: Owner, postgres: None
) -> None:
    """A run reads which of its deliveries were stored meanwhile (``selectors.deliveries_found``). As an OR of whole
    keys from one sender to one mailbox, PostgreSQL folded the keys into their shared mailbox and sender and read
    every message of that sender in the mailbox to filter the ids: 19 ms and 19 000 pages a run at 18 000 messages
    (docs/performance.md). Each id is one probe of ``message_delivery_once`` now."""
    from django.db import connection

    from mailboxes import selectors

    mailbox = opened.mailbox
    insert = (
        "INSERT INTO mailboxes_message (uid, delivery_id, sender_key, sender_verified, scheme, ciphertext, size,"
        " received_at, expires_at, state, delete_when_forwarded, mailbox_id, shard)"
        " SELECT md5(%s || g), 'run-' || g, %s, true, 'nacl-sealedbox-v1', decode(md5(g::text), 'hex'),"
        " 16, now(), now() + interval '30 days', 'stored', false, %s, 0 FROM generate_series(1, %s) AS g"
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, ["others-", "0x00", mailbox.id, 18000])  # a table bigger than a run's probes
        # The statistics from before this sender's messages came, as between two of autovacuum's ANALYZE: the
        # plan that folds the keys is chosen when the planner expects few messages from this sender.
        cursor.execute("ANALYZE mailboxes_message")
        cursor.execute(insert, ["sender-", sender.key, mailbox.id, 2000])
    stored = [(mailbox.id, sender.key, True, f"run-{n}") for n in (7, 700, 1999)]
    keys = [*stored, *((mailbox.id, sender.key, True, new_delivery_id()) for _ in range(22))]
    with CaptureQueriesContext(connection) as captured:
        found = selectors.deliveries_found(keys)
    assert sorted(found) == sorted(stored)
    assert all(found[key].delivery_id == key[3] for key in stored)
    unverified = (mailbox.id, sender.key, False, "run-8")  # the same id, not verified: another delivery
    assert sorted(selectors.deliveries_found([*keys, unverified])) == sorted(stored)
    [statement] = captured.captured_queries
    pages = pages_read(statement["sql"])
    assert pages < 300, f"{pages} pages read to find 25 deliveries"


@pytest.mark.parametrize(
    "quota", [{"max_messages": 5}, {"max_bytes": 200}], ids=["five messages", "five messages' bytes"]
)
def test_a_batch_that_fills_its_mailbox_stores_up_to_the_quota_and_counts_every_message_on_one_shard(
    opened: Opened, sender: Owner, settings: Any, quota: dict[str, int]
) -> None:
    """The quota is crossed in the middle of one batch: on PostgreSQL the batch's writes count on the counters it
    locked once (``counters.counted``), and the fifth message moves the shards' unused allowance to its shard
    (``counters.room_find``): with 200 bytes over 4 shards each holds one 40-byte message and 10 bytes more."""
    settings.MNS_MAILBOX_COUNTER_SHARDS = 4
    quota_set(**quota)
    items = [batch_item(sender) for _ in range(7)]
    duplicate = items[2]
    outcomes = services.deliveries_store([*items, duplicate])
    kinds = [outcome.code if isinstance(outcome, services.DeliveryRefused) else outcome.created for outcome in outcomes]
    assert kinds == [True, True, True, True, True, "over_quota", "over_quota", False]
    assert outcomes[7].message.uid == outcomes[2].message.uid
    assert Message.objects.count() == usage()[0] == 5
    counted = MailboxCounter.objects.filter(mailbox__record__name="alice")
    mailbox = counted[0].mailbox
    assert sum(shard.message_count for shard in counted) == 5
    assert sum(shard.byte_count for shard in counted) == 5 * 40
    assert (sum(shard.max_messages for shard in counted), sum(shard.max_bytes for shard in counted)) == (
        mailbox.max_messages,
        mailbox.max_bytes,
    )
    assert all(s.message_count <= s.max_messages and s.byte_count <= s.max_bytes for s in counted)
    held = list(Message.objects.values_list("shard", flat=True))
    assert {shard.shard: shard.message_count for shard in counted} == {s.shard: held.count(s.shard) for s in counted}
    if "max_bytes" in quota:  # the allowance was moved: one shard holds two messages' 80 bytes
        assert sorted(shard.byte_count for shard in counted) == [40, 40, 40, 80]
    quota_set(**{key: value + (1 if key == "max_messages" else 40) for key, value in quota.items()})
    assert services.deliveries_store([batch_item(sender)])[0].created  # room again, counted exactly


def stored_event(sender: Owner, body: dict[str, Any]) -> int:
    event = MaximaEvent(
        msgid="0x" + secrets.token_hex(32).upper(),
        sender=sender.key,
        recipient_key="0x00",
        application="mns",
        data=json.dumps(body).encode(),
        timemilli=int(time.time() * 1000),
        random="0x00",
    )
    return inbound_store(event=event)[0].id


@pytest.mark.parametrize("limit", [1, 100], ids=["one event a batch", "all in one batch"])
def test_maxima_deliveries_in_one_inbound_batch_are_answered_as_one_by_one(
    opened: Opened, sender: Owner, bob: Owner, limit: int
) -> None:
    open_mailbox(bob, "bob")
    quota_set("bob", max_messages=1)
    twice = deliver_body(reply_to=sender.address)
    bodies = [
        twice,
        deliver_body("nobody"),
        twice,
        {**deliver_body(), "id": "short"},
        deliver_body("bob"),
        {"v": 1, "type": "no-such-type"},  # ends the run of deliveries: handled alone, in its place
        deliver_body("bob"),
        deliver_body(scheme="rot13"),
    ]
    ids = [stored_event(sender, body) for body in bodies]
    while inbound_process_batch(claim=f"test-{limit}", limit=limit):
        pass
    statuses = list(InboundEvent.objects.filter(id__in=ids).order_by("id").values_list("status", flat=True))
    assert statuses == ["done", "done", "done", "ignored", "done", "ignored", "done", "done"]
    receipts = [(receipt["status"], receipt.get("reason")) for _, receipt in sent("receipt")]
    # The delivery sent twice re-uses its first receipt (the same idempotency key), sent to its reply_to.
    assert receipts == [
        ("stored", None),
        ("refused", "unknown_name"),
        ("stored", None),
        ("refused", "over_quota"),
        ("refused", "bad_scheme"),
    ]
    assert sent("receipt")[0][0] == sender.address
    assert (usage("alice")[0], usage("bob")[0]) == (1, 1)
    assert Message.objects.count() == 2


def test_a_run_of_maxima_deliveries_is_stored_in_fewer_statements_than_one_by_one(
    opened: Opened, sender: Owner
) -> None:
    def statements(limit: int) -> tuple[int, int]:
        for _ in range(10):
            stored_event(sender, deliver_body())
        with CaptureQueriesContext(connection) as captured:
            while inbound_process_batch(claim=f"count-{limit}", limit=limit):
                pass
        sql = [q["sql"] for q in captured.captured_queries]
        targets = [q for q in sql if " AS did" in q]  # selectors.delivery_targets
        receipts = [q for q in sql if q.startswith('INSERT INTO "maxima_outboundmessage"')]
        locks = [q for q in sql if "FOR NO KEY UPDATE" in q and "mailboxes_mailbox" in q]  # counters.counters_lock
        writes = [q for q in sql if "INSERT INTO mailboxes_message" in q or 'INSERT INTO "mailboxes_message"' in q]
        return len(sql), len(targets), len(receipts), len(locks), len(writes)

    queued = OutboundMessage.objects.count()
    (alone, *each_alone), (together, *each_together) = statements(1), statements(10)
    assert Message.objects.count() == 20
    assert OutboundMessage.objects.count() == queued + 20  # a receipt for each
    assert together < alone
    # The run's ten targets read in one statement, its ten receipts queued in one, and (PostgreSQL) the mailbox's
    # counters locked once and its ten messages, their counts and their ops written in one statement.
    postgresql = connection.vendor == "postgresql"
    locks, writes = ((20, 2), (10, 1)) if postgresql else ((0, 0), (10, 10))
    assert (each_alone, each_together) == ([10, 10, locks[0], writes[0]], [1, 1, locks[1], writes[1]])
    assert Operation.objects.filter(kind="message").count() == 20
