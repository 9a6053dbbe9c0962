"""The outbox against simnet: sent only on delivered:true, retried with backoff, failed for good when hopeless."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from core.errors import DomainError
from maxima.models import OutboundMessage
from maxima.selectors import batch_in_flight, outbound_due, outbound_lease, stale_sending
from maxima.services import (
    Outgoing,
    _batch_claim,
    _sending,
    backoff,
    outbound_cancel,
    outbound_enqueue,
    outbound_enqueue_many,
    outbound_retry,
    outbound_send,
    outbound_send_batch,
    sweep_mark_enqueued,
)
from maxima.timing import BATCH_BYTES, lease_classes
from mns_client.protocol import batch
from mns_client.protocol.codecs import MaximaAddress, from_hex, to_hex
from mns_client.protocol.crypto import generate_maxima_keypair
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork
from simnet.testing import WebhookReceiver
from testsupport.locks import locked_elsewhere
from testsupport.processes import wait_for

pytestmark = pytest.mark.django_db


def queue(
    simnet: SimNetwork, payload: bytes = b'{"v":1,"type":"test"}', key: str = "k1", **kw: object
) -> OutboundMessage:
    return outbound_enqueue(
        destination=simnet.nodes[1].address, application="mns", payload=payload, idempotency_key=key, **kw
    )


def make_due(message: OutboundMessage) -> None:
    OutboundMessage.objects.filter(id=message.id).update(next_attempt_at=timezone.now())


def test_a_message_is_sent_once_and_marked_with_the_nodes_msgid(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver
) -> None:
    message = queue(simnet)
    assert outbound_send(message_id=message.id, client=gateway_node) == "sent"
    assert outbound_send(message_id=message.id, client=gateway_node) == "skipped"
    arrived = user_inbox.wait_for(1)[0].json()["data"]
    message.refresh_from_db()
    assert (message.status, message.attempts, message.msgid) == ("sent", 1, arrived["msgid"])
    assert arrived["data"] == to_hex(b'{"v":1,"type":"test"}')
    assert arrived["from"] == simnet.nodes[0].publickey_hex
    assert len(user_inbox.requests) == 1


@pytest.mark.parametrize("returning", [True, False], ids=["insert-on-conflict", "sqlite-before-3.35"])
def test_the_same_idempotency_key_queues_one_message(
    simnet: SimNetwork, returning: bool, monkeypatch: pytest.MonkeyPatch
) -> None:

    if not returning and connection.vendor != "sqlite":
        pytest.skip("only SQLite (before 3.35) lacks RETURNING")
    # One INSERT … ON CONFLICT DO NOTHING RETURNING, or (an SQLite without RETURNING) Django's save in a savepoint.
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", returning)
    first, second = queue(simnet, key="same"), queue(simnet, payload=b"other", key="same")
    assert first.id == second.id
    assert bytes(second.payload) == b'{"v":1,"type":"test"}'  # the message queued first, as stored
    assert first.created_at is not None
    assert first.created_at == second.created_at
    assert OutboundMessage.objects.count() == 1
    third = queue(simnet, key="another")  # the transaction goes on after the repeat
    assert OutboundMessage.objects.filter(id=third.id, idempotency_key="another").exists()


def test_an_insert_of_a_shape_seen_before_binds_what_the_orm_binds(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_insert_new`` compiles its statement once per shape (model, unique field, number of rows) and binds each
    value itself after that: the statement and the values must be the ORM's own."""
    from django.db import connections
    from django.db.models.sql import InsertQuery

    from maxima import services

    if not connections["default"].features.can_return_columns_from_insert:
        pytest.skip("an SQLite before 3.35 saves each row")
    now = timezone.now()
    monkeypatch.setattr("django.utils.timezone.now", lambda: now)  # auto_now_add: the same instant for both
    monkeypatch.setattr(services, "_INSERTS", {})
    db, unique = connections["default"], OutboundMessage._meta.get_field("idempotency_key")
    fields = [f for f in OutboundMessage._meta.concrete_fields if not f.primary_key]

    def rows(tag: str, count: int) -> list[OutboundMessage]:
        return [
            OutboundMessage(
                destination=f"Mx{tag}@127.0.0.1:9001",
                application="mns",
                payload=bytes([i, 0, 255]) * (i + 1),
                size=3 * (i + 1),
                idempotency_key=f"{tag}-{i}",
                next_attempt_at=now - timedelta(seconds=i),
                batchable=bool(i % 2),
                last_error="" if i else "an error",
            )
            for i in range(count)
        ]

    def normal(params: list[Any]) -> list[Any]:  # psycopg's Binary wraps bytes without comparing them
        return [bytes(p.obj) if hasattr(p, "obj") else p for p in params]

    compiled = services._insert_statement(db, rows("a", 2), unique)
    assert list(services._INSERTS) == [("default", OutboundMessage, "idempotency_key", 2)]
    again = rows("b", 2)
    memo = services._insert_statement(db, again, unique)
    query = InsertQuery(OutboundMessage)
    query.insert_values(fields, again)
    [(insert, params)] = query.get_compiler(connection=db).as_sql()
    assert (
        memo[0]
        == compiled[0]
        == f'{insert} ON CONFLICT ("idempotency_key") DO NOTHING RETURNING "id", "idempotency_key"'
    )
    assert normal(memo[1]) == normal(list(params))
    assert len(normal(memo[1])) == 2 * len(fields)
    services._insert_statement(db, rows("c", 3), unique)  # another number of rows: a statement of its own
    assert len(services._INSERTS) == 2


def test_an_insert_the_compiler_binds_by_column_is_compiled_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's compiler binds several rows of plain columns as one array a column (``UNNEST``), which is not the
    shape a kept statement binds: such a statement is never kept, and stays right."""
    from django.db import connections

    from core.models import Heartbeat
    from maxima import services

    db = connections["default"]
    if not db.features.can_return_columns_from_insert:
        pytest.skip("an SQLite before 3.35 saves each row")
    monkeypatch.setattr(services, "_INSERTS", {})
    unique = Heartbeat._meta.get_field("name")

    def rows(tag: str) -> list[Heartbeat]:
        return [Heartbeat(name=f"{tag}-{i}", at=timezone.now(), host="h", pid=i) for i in range(2)]

    for tag in ("a", "b"):
        sql, params = services._insert_statement(db, rows(tag), unique)
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            assert sorted(name for _, name in cursor.fetchall()) == [f"{tag}-0", f"{tag}-1"]
    by_column = db.vendor == "postgresql"
    assert ("UNNEST" in sql) is by_column
    assert len(services._INSERTS) == (0 if by_column else 1)
    assert sorted(Heartbeat.objects.values_list("name", "pid")) == [("a-0", 0), ("a-1", 1), ("b-0", 0), ("b-1", 1)]


@pytest.mark.parametrize("returning", [True, False], ids=["insert-on-conflict", "sqlite-before-3.35"])
def test_many_messages_are_queued_in_one_statement_each_key_once(
    simnet: SimNetwork, returning: bool, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from django.test.utils import CaptureQueriesContext

    if not returning and connection.vendor != "sqlite":
        pytest.skip("only SQLite (before 3.35) lacks RETURNING")
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", returning)
    before = queue(simnet, key="queued-before")
    to = simnet.nodes[1].address
    outgoing = [
        Outgoing(to, "mns", b"a", "k-a", batchable=True),
        Outgoing(to, "mns", b"b", "queued-before"),
        Outgoing(to, "mns", b"c", "k-c", max_attempts=2),
        Outgoing(to, "mns", b"a again", "k-a", batchable=True),
    ]

    sent_alone: list[tuple[int, int]] = []
    monkeypatch.setattr("maxima.tasks.enqueue_send", lambda message_id, size: sent_alone.append((message_id, size)))
    with CaptureQueriesContext(connection) as captured, django_capture_on_commit_callbacks() as soon:
        rows = outbound_enqueue_many(outgoing)

    assert [bytes(row.payload) for row in rows] == [b"a", b'{"v":1,"type":"test"}', b"c", b"a"]
    assert (rows[1].id, rows[3].id) == (before.id, rows[0].id)
    assert OutboundMessage.objects.count() == 3
    assert all(row.pk is not None and not row._state.adding for row in rows)
    stored = {row.idempotency_key: row for row in OutboundMessage.objects.all()}
    assert (stored["k-a"].batchable, stored["k-c"].batchable, stored["k-c"].max_attempts) == (True, False, 2)
    assert (stored["k-a"].id, stored["k-c"].id) == (rows[0].id, rows[2].id)
    # Sent: the one new message that goes alone has its task; the batchable one, its destination's batch after the
    # commit (once, whatever the number of new messages to it); the repeats, nothing.
    assert sent_alone == [(rows[2].id, 1)]
    assert [(callback.func.__name__, callback.args) for callback in soon] == [("_batch_send_soon", (to, "mns"))]
    inserts = [q["sql"] for q in captured.captured_queries if "INSERT" in q["sql"]]
    if returning:  # one INSERT for the four, and one SELECT for the two keys already queued
        assert len(inserts) == 1
        assert len(captured.captured_queries) == 2
    else:
        assert len(inserts) == 4


def test_a_bad_message_among_many_queues_none_of_them(simnet: SimNetwork) -> None:
    to = simnet.nodes[1].address
    with pytest.raises(DomainError) as refused:
        outbound_enqueue_many([Outgoing(to, "mns", b"a", "k-a"), Outgoing(to, "not an app!", b"b", "k-b")])
    assert refused.value.code == "application_invalid"
    assert not OutboundMessage.objects.exists()


def test_a_stopped_node_is_retried_later_and_the_message_sent_when_it_is_back(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver, settings: object
) -> None:
    settings.MNS_OUTBOX_BACKOFF_SECONDS = 60
    message = queue(simnet)
    simnet.nodes[1].stop()
    before = timezone.now()
    assert outbound_send(message_id=message.id, client=gateway_node) == "queued"
    message.refresh_from_db()
    assert message.last_error == "java.net.ConnectException: Connection refused"
    assert before + timedelta(seconds=44) < message.next_attempt_at < before + timedelta(seconds=76)
    assert outbound_due(limit=10) == []
    simnet.nodes[1].start()
    make_due(message)
    assert outbound_due(limit=10) == [message.id]
    assert outbound_send(message_id=message.id, client=gateway_node) == "sent"
    assert len(user_inbox.wait_for(1)) == 1


def test_the_sweep_leaves_a_new_message_to_its_own_task_and_enqueues_a_retry_once_when_due(
    simnet: SimNetwork, gateway_node: MinimaRPC, settings: object
) -> None:
    settings.MNS_INBOUND_SWEEP_AFTER_SECONDS = 30
    message = queue(simnet)
    assert outbound_due(limit=10) == []  # its task was enqueued with it
    make_due(message)  # a failed attempt's backoff is over: due again, and not enqueued since
    assert outbound_due(limit=10) == [message.id]
    sweep_mark_enqueued(outbound=[message.id])
    assert outbound_due(limit=10) == []  # the next sweeps do not pile copies on the queued task
    OutboundMessage.objects.filter(id=message.id).update(enqueued_at=timezone.now() - timedelta(seconds=31))
    assert outbound_due(limit=10) == [message.id]  # that task was lost: enqueued again


def test_an_unreachable_gateway_node_counts_as_a_transient_failure(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    message = queue(simnet)
    simnet.nodes[0].stop()
    assert outbound_send(message_id=message.id, client=MinimaRPC(simnet.nodes[0].rpc_url, timeout=2)) == "queued"
    message.refresh_from_db()
    assert message.last_error.startswith("maxima: ")


def test_an_unknown_address_fails_at_once_without_retries(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    _, stranger = generate_maxima_keypair()
    node1 = MaximaAddress.parse(simnet.nodes[1].address)
    message = outbound_enqueue(
        destination=str(MaximaAddress(stranger, node1.host, node1.port)),
        application="mns",
        payload=b"x",
        idempotency_key="k",
    )
    assert outbound_send(message_id=message.id, client=gateway_node) == "failed"
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("failed", 1, "Unknown Address")


def test_a_message_fails_for_good_when_its_attempts_are_used_up(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    message = queue(simnet, max_attempts=2)
    simnet.nodes[1].stop()
    assert outbound_send(message_id=message.id, client=gateway_node) == "queued"
    make_due(message)
    assert outbound_send(message_id=message.id, client=gateway_node) == "failed"


def test_staff_can_retry_a_failed_message_and_cancel_a_queued_one(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    failed = queue(simnet, key="a", max_attempts=1)
    simnet.nodes[1].stop()
    outbound_send(message_id=failed.id, client=gateway_node)
    simnet.nodes[1].start()
    assert outbound_retry(message_id=failed.id) is True
    assert outbound_send(message_id=failed.id, client=gateway_node) == "sent"
    queued = queue(simnet, key="b")
    assert outbound_cancel(message_id=queued.id) is True
    assert outbound_send(message_id=queued.id, client=gateway_node) == "skipped"
    assert OutboundMessage.objects.get(id=queued.id).status == "cancelled"


def test_a_message_tried_again_by_staff_has_its_budget_afresh_and_no_more(
    simnet: SimNetwork, gateway_node: MinimaRPC
) -> None:
    """Tries that went uncounted before (dark addresses, the gateway's faults) are not carried into the new
    budget: it is the one the message was enqueued with."""
    message = queue(simnet, max_attempts=2)
    OutboundMessage.objects.filter(id=message.id).update(status="failed", attempts=9, uncounted=7, released=3)
    assert outbound_retry(message_id=message.id) is True
    message.refresh_from_db()
    assert (message.attempts, message.uncounted, message.released, message.max_attempts) == (0, 0, 0, 2)
    simnet.nodes[1].stop()
    assert outbound_send(message_id=message.id, client=gateway_node) == "queued"
    make_due(message)
    assert outbound_send(message_id=message.id, client=gateway_node) == "failed"


@pytest.mark.parametrize(
    ("destination", "application", "payload", "code"),
    [
        ("Mx123@127.0.0.1:9001", "mns", b"x", "destination_invalid"),
        ("0x1234", "mns", b"x", "destination_invalid"),
        ("MxG18@127.0.0.1:9001;maxima", "mns", b"x", "destination_invalid"),
        (None, "mns app;", b"x", "application_invalid"),
        (None, "mns", b"x" * 250_001, "payload_too_large"),
    ],
)
def test_a_message_that_could_never_be_sent_is_refused_and_not_stored(
    simnet: SimNetwork, destination: str | None, application: str, payload: bytes, code: str
) -> None:
    with pytest.raises(DomainError) as refused:
        outbound_enqueue(
            destination=destination or simnet.nodes[1].address,
            application=application,
            payload=payload,
            idempotency_key="k",
        )
    assert refused.value.code == code
    assert OutboundMessage.objects.count() == 0


def test_a_contact_can_be_addressed_by_its_identity_key(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    gateway_node.maxcontacts_add(simnet.nodes[1].address)
    key = simnet.nodes[1].publickey_hex
    wait_for(lambda: key in [c["publickey"] for c in gateway_node.maxcontacts_list()], timeout=10, what="the contact")
    message = outbound_enqueue(
        destination=simnet.nodes[1].publickey_hex, application="mns", payload=b"hi", idempotency_key="k"
    )
    assert outbound_send(message_id=message.id, client=gateway_node) == "sent"


def test_backoff_doubles_with_jitter_and_is_capped(settings: object) -> None:
    settings.MNS_OUTBOX_BACKOFF_SECONDS = 5
    settings.MNS_OUTBOX_BACKOFF_MAX_SECONDS = 60
    for attempts, base in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (20, 60)]:
        delays = {backoff(attempts).total_seconds() for _ in range(50)}
        assert all(base * 0.75 <= d <= base * 1.25 for d in delays)
        assert len(delays) > 1


def test_payloads_are_never_in_an_error_or_log(simnet: SimNetwork, gateway_node: MinimaRPC, caplog: object) -> None:
    secret_payload = json.dumps({"ciphertext": "SECRET-PAYLOAD"}).encode()
    message = queue(simnet, payload=secret_payload)
    simnet.nodes[1].stop()
    outbound_send(message_id=message.id, client=gateway_node)
    message.refresh_from_db()
    assert "SECRET" not in message.last_error
    assert "SECRET" not in caplog.text


# --- Batches ---------------------------------------------------------------------------------------------------


def receipt(n: int, size: int = 0) -> bytes:
    body = {"v": 1, "type": "receipt", "id": f"delivery-{n:012d}", "status": "stored", "pad": "x" * size}
    return json.dumps(body, separators=(",", ":"))


def test_replies_due_to_one_destination_travel_in_one_batch_and_each_is_marked_sent(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver
) -> None:
    replies = [queue(simnet, payload=receipt(n).encode(), key=f"r{n}", batchable=True) for n in range(5)]
    other_app = queue(simnet, payload=b'{"v":1,"type":"test"}', key="alone")  # not batchable: its own send
    assert outbound_send(message_id=replies[2].id, client=gateway_node) == "sent"
    arrived = user_inbox.wait_for(1)[0].json()["data"]
    assert batch.unpack(from_hex(arrived["data"])) == [bytes(r.payload) for r in replies]  # in order, each once
    statuses = set(OutboundMessage.objects.filter(id__in=[r.id for r in replies]).values_list("status", "msgid"))
    assert statuses == {("sent", arrived["msgid"])}
    other_app.refresh_from_db()
    assert other_app.status == "queued"
    assert outbound_send(message_id=replies[0].id, client=gateway_node) == "skipped"  # its own task: nothing left


def test_a_batch_takes_no_more_than_its_size_limit_and_the_rest_follows_in_another(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver
) -> None:
    replies = [queue(simnet, payload=receipt(n, 20_000).encode(), key=f"r{n}", batchable=True) for n in range(5)]
    sent, more = outbound_send_batch(destination=replies[0].destination, application="mns", client=gateway_node)
    assert (sent, more) == (2, True)  # two of 20 kB fit in 60 000 bytes, not three
    assert outbound_send_batch(destination=replies[0].destination, application="mns", client=gateway_node)[0] == 2
    assert outbound_send_batch(destination=replies[0].destination, application="mns", client=gateway_node) == (1, False)
    bodies = [from_hex(r.json()["data"]["data"]) for r in user_inbox.wait_for(3)]
    assert [len(batch.messages_of(body)) for body in bodies] == [2, 2, 1]
    assert max(len(body) for body in bodies) <= BATCH_BYTES
    assert json.loads(bodies[2])["type"] == "receipt"  # one alone travels in its own form


def test_a_reply_too_big_for_a_batch_is_sent_alone(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    big = queue(simnet, payload=receipt(1, BATCH_BYTES).encode(), key="big", batchable=True)
    assert big.batchable is False


def test_a_batch_the_node_could_not_deliver_is_retried_as_a_whole_with_each_message_counted(
    simnet: SimNetwork, gateway_node: MinimaRPC
) -> None:
    replies = [queue(simnet, payload=receipt(n).encode(), key=f"r{n}", batchable=True) for n in range(3)]
    simnet.nodes[1].stop()
    sent, _ = outbound_send_batch(destination=replies[0].destination, application="mns", client=gateway_node)
    assert sent == 0
    rows = OutboundMessage.objects.filter(id__in=[r.id for r in replies])
    assert set(rows.values_list("status", "attempts")) == {("queued", 1)}
    assert len(set(rows.values_list("next_attempt_at", flat=True))) == 1  # they wait together, to travel together


def failed_batch(simnet: SimNetwork, gateway_node: MinimaRPC, count: int) -> tuple[list[OutboundMessage], list[str]]:
    """``count`` replies to node 1, sent as one batch while node 1 is stopped; the rows and the statements that
    marked them (everything after the node's answer)."""
    from django.test.utils import CaptureQueriesContext

    replies = [queue(simnet, payload=receipt(n).encode(), key=f"r{n}", batchable=True) for n in range(count)]
    simnet.nodes[1].stop()
    with CaptureQueriesContext(connection) as queries:
        outbound_send_batch(destination=replies[0].destination, application="mns", client=gateway_node)
    # the UPDATEs that write last_error (the claim, on PostgreSQL, only returns it)
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    marks = [sql for sql in updates if "last_error" in sql.partition(" RETURNING ")[0]]
    return replies, marks


def test_a_failed_batch_is_marked_in_one_statement_however_many_it_carried(
    simnet: SimNetwork, gateway_node: MinimaRPC
) -> None:
    replies, marks = failed_batch(simnet, gateway_node, 12)
    assert len(marks) == 1
    rows = OutboundMessage.objects.filter(id__in=[r.id for r in replies])
    assert set(rows.values_list("status", "attempts")) == {("queued", 1)}
    assert set(rows.values_list("last_error", flat=True)) == {"java.net.ConnectException: Connection refused"}


def test_a_failed_batch_fails_for_good_those_out_of_attempts_and_queues_the_others(
    simnet: SimNetwork, gateway_node: MinimaRPC
) -> None:
    # one of them has been tried before, up to its limit: this try was its last
    first = queue(simnet, payload=receipt(99).encode(), key="tried", batchable=True, max_attempts=2)
    OutboundMessage.objects.filter(id=first.id).update(attempts=1)
    _, marks = failed_batch(simnet, gateway_node, 3)
    assert len(marks) == 2  # one statement for each outcome
    statuses = dict(OutboundMessage.objects.values_list("idempotency_key", "status"))
    assert statuses == {"tried": "failed", "r0": "queued", "r1": "queued", "r2": "queued"}


def test_one_batch_to_a_destination_at_a_time(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    # another sender's batch to the same destination is in flight: its claim is fresh
    in_flight = queue(simnet, payload=receipt(0).encode(), key="in-flight", batchable=True)
    OutboundMessage.objects.filter(id=in_flight.id).update(status="sending", claimed_at=timezone.now(), attempts=1)
    replies = [queue(simnet, payload=receipt(n).encode(), key=f"r{n}", batchable=True) for n in range(1, 4)]

    assert outbound_send_batch(destination=in_flight.destination, application="mns", client=gateway_node) == (0, False)
    rows = OutboundMessage.objects.filter(id__in=[r.id for r in replies])
    assert set(rows.values_list("status", "attempts")) == {("queued", 0)}  # left for that one to hand on

    # a claim older than its lease is a sender that died: it holds nothing back
    OutboundMessage.objects.filter(id=in_flight.id).update(claimed_at=timezone.now() - timedelta(hours=1))
    assert outbound_send_batch(destination=in_flight.destination, application="mns", client=gateway_node) == (3, False)


def test_in_flight_is_the_stale_rule_of_every_lease_class(db: None) -> None:
    now = timezone.now()
    second = timedelta(seconds=1)
    # destination: size, the claim's age, status, batchable, whether in flight
    cases: dict[str, tuple[int, timedelta | None, str, bool, bool]] = {}
    for n, (above, up_to, lease) in enumerate(lease_classes()):
        for size in (max(above + 1, 0), up_to):
            cases[f"0x{n}A{size}"] = (size, lease - second, "sending", True, True)
            cases[f"0x{n}E{size}"] = (size, lease, "sending", True, True)  # stale only once older than its lease
            cases[f"0x{n}B{size}"] = (size, lease + second, "sending", True, False)
    cases["0xPAST"] = (lease_classes()[-1][1] + 1, timedelta(days=1), "sending", True, True)  # in no class: never stale
    cases["0xUNCLAIMED"] = (10, None, "sending", True, True)  # no claim time: never stale
    cases["0xQUEUED"] = (10, timedelta(0), "queued", True, False)
    cases["0xALONE"] = (10, timedelta(0), "sending", False, False)
    for destination, (size, age, status, batchable, _) in cases.items():
        OutboundMessage.objects.create(
            idempotency_key=destination, destination=destination, application="mns", payload=b"", size=size,
            max_attempts=3, next_attempt_at=now, status=status, batchable=batchable,
            claimed_at=None if age is None else now - age,
        )  # fmt: skip
    sending = OutboundMessage.objects.filter(status="sending", batchable=True, application="mns")
    for destination, (*_, expected) in cases.items():
        the_orms = sending.filter(destination=destination).exclude(stale_sending(now)).exists()
        assert batch_in_flight(destination, "mns", now) is the_orms is expected, destination
        assert batch_in_flight(destination, "other", now) is False


def test_a_batch_task_that_finds_this_process_sending_to_its_destination_asks_nothing_of_the_database(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver
) -> None:
    from django.test.utils import CaptureQueriesContext

    first = queue(simnet, payload=receipt(0).encode(), key="r0", batchable=True)
    seen: list[tuple[tuple[int, bool], int]] = []

    def another_task() -> None:  # a batch task to the same destination, run while the node has the first one
        queue(simnet, payload=receipt(1).encode(), key="r1", batchable=True)
        with CaptureQueriesContext(connection) as queries:
            seen.append((outbound_send_batch(destination=first.destination, application="mns"), len(queries)))

    sending = Meanwhile(gateway_node, another_task)
    assert outbound_send_batch(destination=first.destination, application="mns", client=sending) == (1, True)
    assert seen == [((0, False), 0)]  # in flight here: no EXISTS, no claim
    assert _sending == {}  # and no longer once the node answered
    # what it held back is due, and goes with the next batch (the task the first one hands on to)
    assert outbound_send_batch(destination=first.destination, application="mns", client=gateway_node) == (1, False)
    assert len(user_inbox.wait_for(2)) == 2


def test_a_send_here_older_than_the_lease_holds_nothing_back(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = queue(simnet, payload=receipt(0).encode(), key="r0", batchable=True)
    seen: list[tuple[int, bool]] = []

    def past_the_lease() -> None:  # this send hung past its lease: the database takes its rows for stale, and so here
        queue(simnet, payload=receipt(1).encode(), key="r1", batchable=True)
        later = timezone.now() + max(outbound_lease(), lease_classes()[0][2]) + timedelta(seconds=1)
        with monkeypatch.context() as patched:
            patched.setattr("django.utils.timezone.now", lambda: later)
            seen.append(outbound_send_batch(destination=first.destination, application="mns", client=gateway_node))

    hung = Meanwhile(gateway_node, past_the_lease)
    outbound_send_batch(destination=first.destination, application="mns", client=hung)
    assert seen == [(1, False)]  # r1 went, from the later task, while the first send was still at the node
    assert OutboundMessage.objects.get(idempotency_key="r1").status == "sent"
    assert _sending == {}


def test_a_send_that_raised_leaves_no_mark_of_being_in_flight(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    first = queue(simnet, payload=receipt(0).encode(), key="r0", batchable=True)
    during: list[dict] = []
    with pytest.raises(RuntimeError):
        outbound_send_batch(
            destination=first.destination, application="mns", client=Faulty(lambda: during.append(dict(_sending)))
        )
    assert list(during[0]) == [(first.destination, "mns")]  # marked while the node had it
    assert _sending == {}


def test_a_batch_that_failed_hands_on_to_what_is_still_due(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    replies = [queue(simnet, payload=receipt(n, 20_000).encode(), key=f"r{n}", batchable=True) for n in range(3)]
    simnet.nodes[1].stop()
    sent, more = outbound_send_batch(destination=replies[0].destination, application="mns", client=gateway_node)
    assert (sent, more) == (0, True)  # two failed (and wait their backoff); the third is due and gets its own try
    assert outbound_send_batch(destination=replies[0].destination, application="mns", client=gateway_node) == (0, False)
    rows = OutboundMessage.objects.filter(id__in=[r.id for r in replies])
    assert set(rows.values_list("status", "attempts")) == {("queued", 1)}


class Meanwhile:
    """The gateway's node, with something else happening while it sends (another sender, new replies)."""

    def __init__(self, node: MinimaRPC, meanwhile: Any) -> None:
        self.node, self.meanwhile = node, meanwhile

    def maxima_send(self, **send: Any) -> Any:
        self.meanwhile()
        return self.node.maxima_send(**send)


def test_a_send_that_outlived_its_claim_leaves_the_row_to_whoever_claimed_it_again(
    simnet: SimNetwork, gateway_node: MinimaRPC
) -> None:
    from django.db.models import F

    message = queue(simnet)
    later = timezone.now() + timedelta(seconds=1)
    rows = OutboundMessage.objects.filter(id=message.id)
    claimed_again = Meanwhile(gateway_node, lambda: rows.update(claimed_at=later, attempts=F("attempts") + 1))

    assert outbound_send(message_id=message.id, client=claimed_again) == "skipped"
    assert rows.values_list("status", "msgid", "claimed_at").get() == ("sending", "", later)  # the other send's to mark

    simnet.nodes[1].stop()  # and a failure leaves it alike
    OutboundMessage.objects.filter(id=message.id).update(claimed_at=timezone.now() - timedelta(hours=1))
    outbound_send(message_id=message.id, client=Meanwhile(gateway_node, lambda: rows.update(claimed_at=later)))
    assert rows.values_list("status", "last_error").get() == ("sending", "")


def test_a_retry_in_its_own_task_hands_on_to_the_replies_that_came_while_it_was_sent(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver
) -> None:
    retried = queue(simnet, payload=receipt(0).encode(), key="r0", batchable=True)
    arrivals = Meanwhile(
        gateway_node, lambda: [queue(simnet, payload=receipt(n).encode(), key=f"r{n}", batchable=True) for n in (1, 2)]
    )

    assert outbound_send(message_id=retried.id, client=arrivals) == "sent"

    # held back while it was in flight (one batch to a destination at a time), then sent by the batch it handed on to
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert len(user_inbox.wait_for(2)) == 2


class Faulty:
    """A client that raises what no node answer is (a fault of the gateway's own), after ``meanwhile``."""

    def __init__(self, meanwhile: Any = lambda: None) -> None:
        self.meanwhile = meanwhile

    def maxima_send(self, **send: Any) -> Any:
        self.meanwhile()
        raise RuntimeError("a fault the client does not name, quoting 0xSECRETPAYLOAD")


def test_a_send_that_raised_queues_what_it_carried_and_hands_on_to_what_it_held_back(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver
) -> None:
    replies = [queue(simnet, payload=receipt(n).encode(), key=f"r{n}", batchable=True) for n in range(2)]
    came_meanwhile = Faulty(lambda: queue(simnet, payload=receipt(9).encode(), key="r9", batchable=True))
    with pytest.raises(RuntimeError):
        outbound_send_batch(destination=replies[0].destination, application="mns", client=came_meanwhile)
    rows = OutboundMessage.objects.filter(id__in=[r.id for r in replies])
    assert set(rows.values_list("status", "attempts", "uncounted", "last_error")) == {
        ("queued", 1, 0, "the send raised RuntimeError")  # a try that counts, as a timeout's; the type alone
    }
    assert all(at > timezone.now() for at in rows.values_list("next_attempt_at", flat=True))  # after its backoff
    # what came while it was in flight was handed on and sent, not held until the lease ended
    assert OutboundMessage.objects.get(idempotency_key="r9").status == "sent"
    assert len(user_inbox.wait_for(1)) == 1

    # and what comes next to that destination goes at once
    later = queue(simnet, payload=receipt(10).encode(), key="r10", batchable=True)
    assert outbound_send_batch(destination=later.destination, application="mns", client=gateway_node) == (1, False)


def failing_marks(times: int) -> Any:
    """The database refuses the statement that marks messages sent, ``times`` times (then lets it through)."""
    from django.db import DataError

    left = [times]

    def refuse(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if left[0] and sql.startswith("UPDATE") and '"msgid"' in sql and "sent" in (params or ()):
            left[0] -= 1
            raise DataError("value too long for type character varying(66)")
        return execute(sql, params, many, context)

    return connection.execute_wrapper(refuse)


@pytest.mark.parametrize("max_attempts", [1, 8], ids=["its-last-attempt", "attempts-left"])
def test_a_send_whose_mark_did_not_commit_is_queued_again_even_on_its_last_attempt(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver, max_attempts: int
) -> None:
    from django.db import DataError

    message = queue(simnet, max_attempts=max_attempts)
    with failing_marks(1), pytest.raises(DataError):
        outbound_send(message_id=message.id, client=gateway_node)
    assert len(user_inbox.wait_for(1)) == 1  # the node sent it: it must not end as failed for good
    message.refresh_from_db()
    # sent again after its backoff (the receiver drops the copy)
    assert (message.status, message.msgid, message.attempts) == ("queued", "", 1)
    # the try does not count: on its last, it has one more
    assert (message.max_attempts, message.uncounted, message.released) == (max_attempts, 1, 1)
    assert message.last_error == "the send raised DataError"  # the type alone
    make_due(message)
    assert outbound_send(message_id=message.id, client=gateway_node) == "sent"


def test_a_mark_that_fails_every_time_still_ends(simnet: SimNetwork, gateway_node: MinimaRPC) -> None:
    from django.db import DataError

    from maxima.services import RELEASED_UNCOUNTED_MAX

    message = queue(simnet, max_attempts=2)
    statuses = []
    with failing_marks(RELEASED_UNCOUNTED_MAX + 5):
        for _ in range(RELEASED_UNCOUNTED_MAX + 2):
            make_due(message)
            with pytest.raises(DataError):
                outbound_send(message_id=message.id, client=gateway_node)
            message.refresh_from_db()
            statuses.append((message.status, message.attempts - message.uncounted))
        make_due(message)
        assert outbound_send(message_id=message.id, client=gateway_node) == "skipped"
    # the first RELEASED_UNCOUNTED_MAX tries do not count, then they do: two more, and it ends
    assert statuses == [("queued", 0)] * RELEASED_UNCOUNTED_MAX + [("queued", 1), ("failed", 2)]
    assert (message.attempts, message.uncounted, message.released) == (RELEASED_UNCOUNTED_MAX + 2, 12, 12)


def test_a_send_that_raised_is_not_counted_whatever_the_budget(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver
) -> None:
    """The tries left uncounted are a count of their own, not a ceiling on the budget: a message with a budget
    larger than that count (MNS_OUTBOX_MAX_ATTEMPTS up to 100) still has its last try given back."""
    from django.db import DataError

    from maxima.services import RELEASED_UNCOUNTED_MAX

    budget = RELEASED_UNCOUNTED_MAX * 3
    message = queue(simnet, max_attempts=budget)
    OutboundMessage.objects.filter(id=message.id).update(attempts=budget - 1)
    with failing_marks(1), pytest.raises(DataError):
        outbound_send(message_id=message.id, client=gateway_node)
    message.refresh_from_db()
    assert (message.status, message.attempts, message.uncounted) == ("queued", budget, 1)
    make_due(message)
    assert outbound_send(message_id=message.id, client=gateway_node) == "sent"


def test_a_send_taken_again_after_its_lease_on_its_last_try_still_gets_one_more(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver
) -> None:
    from django.db import DataError

    message = queue(simnet, max_attempts=1)
    # its first try's worker died while it was sending: the lease is over, and the next claim makes a second try
    OutboundMessage.objects.filter(id=message.id).update(
        status="sending", attempts=1, claimed_at=timezone.now() - timedelta(days=1)
    )
    with failing_marks(1), pytest.raises(DataError):
        outbound_send(message_id=message.id, client=gateway_node)
    message.refresh_from_db()
    # two tries made on a budget of one: enough of them go uncounted to leave one, so it is not failed for the
    # gateway's fault
    assert (message.status, message.attempts, message.max_attempts, message.uncounted) == ("queued", 2, 1, 2)
    assert len(user_inbox.wait_for(1)) == 1
    make_due(message)
    assert outbound_send(message_id=message.id, client=gateway_node) == "sent"


def test_a_send_that_raised_before_the_node_had_it_gives_its_last_try_back(
    simnet: SimNetwork, gateway_node: MinimaRPC, user_inbox: WebhookReceiver
) -> None:
    from django.db import OperationalError

    retried = queue(simnet, payload=receipt(0).encode(), key="r0", batchable=True, max_attempts=1)
    waiting = queue(simnet, payload=receipt(1).encode(), key="r1", batchable=True)
    claims = [0]

    def second_claim_fails(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if sql.startswith("UPDATE") and "sending" in (params or ()):
            claims[0] += 1
            if claims[0] == 2:  # the retry's own claim went through; the batch's claim of what joins it fails
                raise OperationalError("the batch's claim failed after its UPDATE")  # which rolls back
        return result

    with connection.execute_wrapper(second_claim_fails), pytest.raises(OperationalError):
        outbound_send(message_id=retried.id, client=gateway_node)
    retried.refresh_from_db()
    assert (retried.status, retried.attempts, retried.uncounted) == ("queued", 1, 1)  # not failed for good
    assert retried.last_error == "the send raised OperationalError"
    assert retried.next_attempt_at > timezone.now()  # after its backoff
    waiting.refresh_from_db()
    assert waiting.status == "sent"  # its claim rolled back with the batch's; handed on, and sent alone
    assert from_hex(user_inbox.wait_for(1)[0].json()["data"]["data"]) == receipt(1).encode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")
def test_two_batch_claims_at_once_take_different_messages_and_neither_waits() -> None:
    destination, now = "MxG18HGG6FJ038614Y8CW46US6G20810K0070CD00Z83282G60G1@127.0.0.1:9001", timezone.now()
    rows = [
        OutboundMessage.objects.create(
            destination=destination,
            application="mns",
            payload=b"r%d" % n,
            size=2,
            idempotency_key=f"claim-{n}",
            batchable=True,
            next_attempt_at=now - timedelta(seconds=1),
        )
        for n in range(4)
    ]
    with locked_elsewhere(OutboundMessage.objects.filter(id__in=[rows[0].id, rows[1].id])):  # another sender's
        claimed = _batch_claim(destination, "mns", now)  # a claim that waited would fail
    assert [m.id for m in claimed] == [rows[2].id, rows[3].id]
    stored = {m.id: m for m in OutboundMessage.objects.filter(id__in=[m.id for m in claimed])}
    for message in claimed:  # returned as the claim left them
        kept = stored[message.id]
        assert (message.status, message.attempts, message.claimed_at) == ("sending", 1, now)
        assert (kept.status, kept.attempts, kept.claimed_at, bytes(kept.payload)) == (
            message.status,
            message.attempts,
            message.claimed_at,
            bytes(message.payload),
        )
    assert [m.id for m in _batch_claim(destination, "mns", now)] == [rows[0].id, rows[1].id]
