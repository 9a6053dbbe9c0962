"""A gateway restored from an older backup: it finds out (a peer holds its log past its head, or the operator says
so), starts a new incarnation, numbers nothing until its peers said how far they hold its log, takes its lost ops
back from them (verified, at their old positions), then numbers after the highest position. Peers serve an
origin's log back to it, and apply a new op at a position used before rather than drop it as a duplicate."""

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from federation import services
from federation.models import LogHead, Operation, Peer
from federation.tests.support import FakePeer, gateway, peer_b, peer_c, sent_sync  # noqa: F401 (fixtures)
from mailboxes.models import Mailbox
from mailboxes.tests.support import Owner, usage
from maxima.models import OutboundMessage
from mns_client.protocol import sync
from registry.models import NameRecord
from registry.tests.support import GATEWAY

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def one_sync_period(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sync period held still (a test asks for the next one by adding to it): what is sent once per period was
    sent twice when a test ran across the boundary of two (30 s periods by the clock)."""
    from federation.services import restore

    period = [1]
    monkeypatch.setattr(restore, "_period", lambda: period[0])
    return period


def own_op(kind: str, payload: dict[str, Any]) -> Operation:
    """One op of this gateway's own log, numbered."""
    op = services.op_append(kind=kind, payload=payload)
    services.op_sequence()
    op.refresh_from_db()
    return op


def head() -> LogHead:
    return LogHead.objects.get(origin=GATEWAY)


def wire(seq: int, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "kind": kind, "payload": payload, "created_at": 1795660441638 + seq}


def sent_to(peer: FakePeer, message_type: str) -> list[dict[str, Any]]:
    return [body for destination, body in sent_sync(message_type) if destination == peer.address]


def test_a_pull_past_the_head_says_the_gateway_was_restored_and_it_stops_numbering_and_asks_its_peers(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    own_op("statement", Owner.fresh().register("alice", gateway=GATEWAY).to_dict())
    before = head().incarnation

    assert peer_b.says(sync.message("pull", origin=GATEWAY, since=5)) == "done"  # b holds our log up to 5

    log = head()
    assert (log.recovering, log.restored_from, log.seq) == (True, 1, 1)
    assert log.incarnation != before
    assert "gw-b holds this gateway's log up to 5" in log.recovery_note
    assert [body["incarnation"] for body in sent_to(peer_c, "where")] == [log.incarnation]
    assert Peer.objects.get(name="gw-b").log_position == 5
    services.op_append(kind="statement", payload=Owner.fresh().register("bruno", gateway=GATEWAY).to_dict())
    assert services.op_sequence() == 0  # nothing numbered while the positions are not all known
    assert services.push_to_peer(peer_id=Peer.objects.get(name="gw-c").id) == 0
    health = Client().get("/api/v1/health").json()
    assert health["checks"]["log"]["ok"] is False


def test_a_restored_gateway_takes_its_lost_ops_back_from_its_peers_and_numbers_after_the_highest_position(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    own_op("statement", Owner.fresh().register("alice", gateway=GATEWAY).to_dict())  # what the backup had
    bruno = Owner.fresh()
    lost = [  # what this gateway logged after the backup: peers hold it, b up to 3, c up to 2
        wire(2, "statement", bruno.register("bruno", gateway=GATEWAY).to_dict()),
        wire(3, "mailbox", {"name": "bruno", "owner": bruno.key, "address": bruno.address, "replicas": [GATEWAY]}),
    ]
    out = StringIO()
    call_command("backup_restored", stdout=out)
    assert "recovering" in out.getvalue()

    assert peer_b.says(sync.message("position", origin=GATEWAY, seq=3)) == "done"
    assert peer_c.says(sync.message("position", origin=GATEWAY, seq=2)) == "done"
    assert services.restore_progress() is True
    assert head().seq == 3  # moved past the highest position at once: nothing new can take 2 or 3
    (pull,) = sent_to(peer_b, "pull")
    assert (pull["origin"], pull["since"]) == (GATEWAY, 1)

    assert peer_b.says(sync.message("ops", origin=GATEWAY, head=3, ops=lost)) == "done"  # b's copy, sent back
    assert services.restore_progress() is False

    record = NameRecord.objects.get(name="bruno")
    assert (record.status, record.owner_key) == ("active", bruno.key)
    assert Mailbox.objects.filter(record=record).exists()
    stored = Operation.objects.filter(origin=GATEWAY).order_by("seq")
    assert [(op.seq, op.kind, op.outcome) for op in stored] == [
        (1, "statement", "own"),
        (2, "statement", "applied"),
        (3, "mailbox", "applied"),
    ]
    log = head()
    assert (log.recovering, log.recovered_ops) == (False, 2)
    assert "2 lost op(s) recovered" in log.recovery_note
    new = services.op_append(kind="statement", payload=Owner.fresh().register("carla", gateway=GATEWAY).to_dict())
    services.op_sequence()
    new.refresh_from_db()
    assert new.seq == 4
    status = json.loads(_status().splitlines()[-1])
    assert (status["seq"], status["recovering"], status["recovered_ops"]) == (4, False, 2)
    health = Client().get("/api/v1/health").json()
    assert health["checks"]["log"]["ok"] is True
    assert "recovered" in health["checks"]["log"]["detail"]


def _status() -> str:
    out = StringIO()
    call_command("backup_restored", "--status", stdout=out)
    return out.getvalue()


def test_a_restored_gateway_goes_on_after_the_wait_and_names_the_peers_that_did_not_answer(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    own_op("statement", Owner.fresh().register("alice", gateway=GATEWAY).to_dict())
    services.log_restored(reason="test")
    peer_b.says(sync.message("position", origin=GATEWAY, seq=1))
    assert services.restore_progress() is True  # c has not answered
    LogHead.objects.update(restored_at=timezone.now() - timedelta(seconds=61))
    with override_settings(MNS_FEDERATION_RESTORE_WAIT_SECONDS=60):
        assert services.restore_progress() is False
    assert "not answered: gw-c" in head().recovery_note


def test_a_peer_serves_an_origins_own_log_back_to_it(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    batch = peer_b.batch(
        peer_b.register_op(owner, "alice"),
        peer_b.mailbox_op(owner, "alice", [peer_b.key, GATEWAY]),
        peer_b.message_op("alice", "uid-of-message-1", b"\x09" * 40),
    )
    assert peer_b.says(batch) == "done"

    assert peer_b.says(sync.message("pull", origin=peer_b.key, since=1)) == "done"
    (answer,) = sent_to(peer_b, "ops")
    assert (answer["origin"], answer["head"]) == (peer_b.key, 3)
    assert [op["seq"] for op in answer["ops"]] == [2, 3]
    assert answer["ops"][1]["payload"]["ciphertext"] == "0x" + "09" * 40  # completed from the stored message


def test_a_new_op_at_a_position_a_peer_used_before_is_applied_and_the_peer_is_told_our_position(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    peer_b.says(peer_b.batch(peer_b.register_op(Owner.fresh(), "alice")))
    # b was restored from a backup taken before its op 1 and numbered a new op 1 before it found out
    reused = peer_b.op("statement", Owner.fresh().register("bruno", gateway=peer_b.key).to_dict(), seq=1)
    reused["created_at"] += 1000
    assert peer_b.says(peer_b.batch(reused)) == "done"

    assert NameRecord.objects.filter(name="bruno", status="active").exists()
    assert Peer.objects.get(name="gw-b").cursor == 1
    (position,) = sent_to(peer_b, "position")
    assert (position["origin"], position["seq"]) == (peer_b.key, 1)
    # the same op again is a plain duplicate
    assert peer_b.says(peer_b.batch(peer_b.op("statement", {}, seq=1) | {"created_at": 1795660441639})) == "done"
    assert len(sent_to(peer_b, "position")) == 1


def test_a_peers_new_incarnation_or_a_head_below_our_cursor_gets_it_our_position(
    peer_b: FakePeer,  # noqa: F811
    one_sync_period: list[int],
) -> None:
    first = peer_b.batch(peer_b.register_op(Owner.fresh(), "alice")) | {"incarnation": "aaaa"}
    peer_b.says(first)
    assert sent_to(peer_b, "position") == []  # the first incarnation we hear of: nothing to say
    peer_b.says(sync.message("ops", origin=peer_b.key, head=1, ops=[], incarnation="bbbb"))
    assert [body["seq"] for body in sent_to(peer_b, "position")] == [1]
    assert Peer.objects.get(name="gw-b").incarnation == "bbbb"

    assert peer_b.says(sync.message("where", origin=peer_b.key, incarnation="bbbb")) == "done"
    assert len(sent_to(peer_b, "position")) == 1  # the same position in the same period: sent once
    one_sync_period[0] += 1
    assert peer_b.says(sync.message("where", origin=peer_b.key, incarnation="bbbb")) == "done"
    assert [body["seq"] for body in sent_to(peer_b, "position")] == [1, 1]  # and once in the next


def test_while_recovering_a_peers_op_that_does_not_verify_here_waits_instead_of_counting_against_it(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    """c's letter for a mailbox whose replicas we learn from an op we have not recovered yet."""
    owner = Owner.fresh()
    peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice")))
    NameRecord.objects.filter(name="alice").update(gateways=[peer_b.key, GATEWAY])  # c not known as a replica yet
    services.log_restored(reason="test")
    assert peer_c.says(peer_c.batch(peer_c.message_op("alice", "uid-of-message-1"))) == "done"
    peer = Peer.objects.get(name="gw-c")
    assert (peer.cursor, peer.invalid_ops, peer.waiting_seq) == (0, 0, 1)

    peer_b.says(peer_b.batch(peer_b.mailbox_op(owner, "alice", [peer_b.key, GATEWAY, peer_c.key])))
    assert (
        peer_c.says(
            peer_c.batch(peer_c.op("message", peer_c.message_op("alice", "uid-of-message-1")["payload"], seq=1))
        )
        == "done"
    )
    assert Peer.objects.get(name="gw-c").cursor == 1
    assert usage()[0] == 1


def test_a_letter_from_one_peer_that_arrives_before_the_homes_mailbox_op_waits_for_it(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    """What a gateway catching up (restored, or back from an outage) meets: c's letter for a name of b's, before
    b's op that names the mailbox's replicas."""
    owner = Owner.fresh()
    peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice")))
    assert peer_c.says(peer_c.batch(peer_c.message_op("alice", "uid-of-message-1"))) == "done"
    assert (Peer.objects.get(name="gw-c").cursor, Peer.objects.get(name="gw-c").waiting_seq) == (0, 1)

    peer_b.says(peer_b.batch(peer_b.mailbox_op(owner, "alice", [peer_b.key, GATEWAY, peer_c.key])))
    letter = peer_c.op("message", peer_c.message_op("alice", "uid-of-message-1")["payload"], seq=1)
    assert peer_c.says(peer_c.batch(letter)) == "done"
    assert usage()[0] == 1


def test_the_push_batches_a_restored_backup_had_queued_are_not_sent(peer_b: FakePeer) -> None:  # noqa: F811
    own_op("statement", Owner.fresh().register("alice", gateway=GATEWAY).to_dict())
    services.push_to_peer(peer_id=Peer.objects.get().id)
    (queued,) = OutboundMessage.objects.filter(idempotency_key__startswith="fed-ops:")
    services.log_restored(reason="test")
    queued.refresh_from_db()
    assert queued.status == OutboundMessage.Status.CANCELLED
