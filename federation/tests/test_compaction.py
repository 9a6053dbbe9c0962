"""Log compaction: each log kept here is cut down to a floor its peers' positions allow, its tombstones kept until
no message they deleted can live; a pull from below a floor is answered ``compacted``, and the puller applies the
range's tombstones and catches up by reconciliation instead of waiting for ops that will never come."""

import hashlib
import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from federation import selectors, services
from federation.models import LogHead, Operation, Peer
from federation.services import oplog, snapshots
from federation.tests.support import FakePeer, gateway, peer_b, peer_c, sent_sync  # noqa: F401 (fixtures)
from federation.tests.test_reconcile import Holder
from mailboxes.models import Message
from mailboxes.tests.support import Owner
from mns_client.protocol import sync
from mns_client.protocol.errors import Refusal
from mns_client.protocol.reconcile import item_hash
from registry.tests.support import GATEWAY

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("keep_ten")]


@pytest.fixture
def keep_ten(settings: Any) -> None:
    settings.MNS_FEDERATION_LOG_KEEP = 10
    settings.MNS_FEDERATION_COMPACT_SILENT_SECONDS = 3600
    settings.MNS_RETENTION_DAYS = 30


def own_log(count: int, *, deletes: tuple[int, ...] = (), days_ago: int = 0) -> None:
    """This gateway's own log of ``count`` numbered ops, the ``deletes`` positions tombstones."""
    created_at = timezone.now() - timedelta(days=days_ago)
    for seq in range(1, count + 1):
        tombstone = seq in deletes
        Operation.objects.create(
            origin=GATEWAY,
            seq=seq,
            kind="delete" if tombstone else "suspend",
            payload={"name": "shared", "uid": f"u-{seq}"} if tombstone else {"n": seq},
            created_at=created_at,
            outcome="own",
        )
    LogHead.objects.update_or_create(origin=GATEWAY, defaults={"seq": count})


def held(origin: str = GATEWAY) -> list[int]:
    return list(Operation.objects.filter(origin=origin).order_by("seq").values_list("seq", flat=True))


def told(peer: FakePeer, position: int, *, seconds_ago: int = 0) -> None:
    """The peer said it holds our log up to ``position`` (a pull's ``since``) that long ago."""
    Peer.objects.filter(identity_key=peer.key).update(
        log_position=position, log_position_at=timezone.now() - timedelta(seconds=seconds_ago)
    )


# --- The floor of this gateway's own log ------------------------------------------------------------------------
def test_alone_the_log_keeps_its_window_behind_the_head_and_its_tombstones(gateway: object) -> None:  # noqa: F811
    own_log(30, deletes=(3, 12))

    report = services.compact()

    assert report.floor == 20
    assert held() == [3, 12, *range(21, 31)]
    head = LogHead.objects.get()
    assert (head.floor, head.compacted_ops) == (20, 18)
    assert head.compact_note.startswith("floor 20 (10 ops kept behind the head 30)")


def test_a_second_compaction_removes_nothing_more(gateway: object) -> None:  # noqa: F811
    own_log(30, deletes=(3,))
    services.compact()

    report = services.compact()

    assert (report.floor, report.removed, report.tombstones_dropped) == (20, 0, 0)
    assert LogHead.objects.get().compacted_ops == 19


def test_the_floor_never_passes_what_an_active_peer_holds(peer_b: FakePeer, peer_c: FakePeer) -> None:  # noqa: F811
    own_log(30)
    told(peer_b, 25)
    told(peer_c, 7)

    report = services.compact()

    assert (report.floor, report.why) == (7, "gw-c holds it up to 7")
    assert held() == list(range(8, 31))


def test_a_pull_tells_how_far_the_peer_holds_the_log(peer_b: FakePeer) -> None:  # noqa: F811
    own_log(30)

    assert peer_b.says(sync.message("pull", origin=GATEWAY, since=12)) == "done"

    assert Peer.objects.get(name="gw-b").log_position == 12
    assert services.compact().floor == 12


def test_a_peer_silent_longer_than_the_bound_no_longer_holds_the_floor(peer_b: FakePeer, peer_c: FakePeer) -> None:  # noqa: F811
    own_log(30)
    told(peer_b, 25)
    told(peer_c, 3, seconds_ago=3601)

    assert services.compact().floor == 20


def test_a_peer_heard_that_never_said_its_position_holds_the_floor_where_it_is(peer_b: FakePeer) -> None:  # noqa: F811
    own_log(30)
    Peer.objects.update(last_heard_at=timezone.now())

    report = services.compact()

    assert (report.floor, report.why) == (0, "gw-b has not said how far it holds the log")
    assert held() == list(range(1, 31))


def test_a_peer_below_the_floor_catches_up_by_reconciliation_and_does_not_hold_it(peer_b: FakePeer) -> None:  # noqa: F811
    own_log(30)
    told(peer_b, 2, seconds_ago=3601)
    assert services.compact().floor == 20
    told(peer_b, 2)  # back: its pull from below the floor is answered ``compacted``
    for seq in range(31, 41):
        Operation.objects.create(origin=GATEWAY, seq=seq, kind="suspend", payload={}, created_at=timezone.now())
    LogHead.objects.update(seq=40)

    assert services.compact().floor == 30


def test_a_log_recovering_from_a_restored_backup_is_not_compacted(peer_b: FakePeer) -> None:  # noqa: F811
    own_log(30)
    LogHead.objects.update(recovering=True)

    report = services.compact()

    assert report.why.startswith("recovering")
    assert held() == list(range(1, 31))


def test_tombstones_below_the_floor_are_dropped_once_no_message_they_deleted_can_live(gateway: object) -> None:  # noqa: F811
    own_log(30, deletes=(3, 25))
    services.compact()

    kept = services.compact(now=timezone.now() + timedelta(days=30))
    assert kept.tombstones_dropped == 0
    dropped = services.compact(now=timezone.now() + timedelta(days=31, minutes=1))

    assert dropped.tombstones_dropped == 1  # the one above the floor stays: a peer may still need to replay it
    assert held() == list(range(21, 31))


def test_the_command_prints_what_it_did(gateway: object) -> None:  # noqa: F811
    own_log(15)
    out = StringIO()

    call_command("federation_compact", stdout=out)

    assert json.loads(out.getvalue()) | {"copy_floors": {}} == {
        "floor": 5,
        "why": "10 ops kept behind the head 15",
        "removed": 5,
        "copies_removed": 0,
        "tombstones_dropped": 0,
        "copy_floors": {},
    }


def test_health_says_how_far_the_log_is_compacted(gateway: object) -> None:  # noqa: F811
    own_log(30)
    services.compact()

    assert selectors.log_check().endswith("compacted up to 20 (20 ops removed)")


# --- The copies of the peers' logs ------------------------------------------------------------------------------
def peer_log(peer: FakePeer, count: int, *, deletes: tuple[int, ...] = ()) -> None:
    for seq in range(1, count + 1):
        kind, payload = ("delete", {"name": "shared", "uid": f"u-{seq}"}) if seq in deletes else ("suspend", {})
        Operation.objects.create(
            origin=peer.key, seq=seq, kind=kind, payload=payload, created_at=timezone.now(), outcome="applied"
        )
    Peer.objects.filter(identity_key=peer.key).update(cursor=count, remote_head=count)


def test_a_peer_s_log_kept_here_is_compacted_behind_its_cursor_keeping_tombstones(peer_b: FakePeer) -> None:  # noqa: F811
    peer_log(peer_b, 25, deletes=(4,))

    report = services.compact()

    assert report.copy_floors == {"gw-b": 15}
    assert held(peer_b.key) == [4, *range(16, 26)]
    assert Peer.objects.get(name="gw-b").copy_floor == 15


def test_a_restored_peer_asking_its_log_back_from_below_our_copy_s_floor_gets_the_compacted_answer(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    peer_log(peer_b, 25, deletes=(4, 9))
    services.compact()

    assert peer_b.says(sync.message("pull", origin=peer_b.key, since=5)) == "done"

    ((_, answer),) = sent_sync("ops")
    assert (answer["origin"], answer["head"], answer["compacted"]) == (peer_b.key, 25, 15)
    assert [(op["seq"], op["kind"]) for op in answer["ops"]] == [(9, "delete")]


# --- Pulls from below the floor ---------------------------------------------------------------------------------
def test_a_pull_from_below_the_floor_is_answered_compacted_with_the_range_s_tombstones(peer_b: FakePeer) -> None:  # noqa: F811
    own_log(30, deletes=(3, 12, 24))
    LogHead.objects.update(floor=20)
    services.compact()

    assert peer_b.says(sync.message("pull", origin=GATEWAY, since=5)) == "done"

    ((_, answer),) = sent_sync("ops")
    assert (answer["head"], answer["compacted"]) == (30, 20)
    assert [(op["seq"], op["payload"]["uid"]) for op in answer["ops"]] == [(12, "u-12")]


def test_a_pull_from_the_floor_on_is_answered_as_ever(peer_b: FakePeer) -> None:  # noqa: F811
    own_log(30)
    services.compact()

    assert peer_b.says(sync.message("pull", origin=GATEWAY, since=20)) == "done"

    ((_, answer),) = sent_sync("ops")
    assert "compacted" not in answer
    assert [op["seq"] for op in answer["ops"]] == list(range(21, 31))


def test_a_peer_pushed_up_to_below_the_floor_is_told_the_head_only(peer_b: FakePeer) -> None:  # noqa: F811
    own_log(30)
    told(peer_b, 2, seconds_ago=3601)  # it was away
    assert services.compact().floor == 20

    assert services.push_to_peer(peer_id=Peer.objects.get(name="gw-b").id) == 0

    ((_, told_head),) = sent_sync("ops")
    assert (told_head["head"], told_head["ops"]) == (30, [])


def test_answers_with_or_without_compacted_read_and_a_bad_one_is_refused() -> None:
    sync.check({"v": 1, "type": "ops", "origin": "0xAB", "head": 3, "ops": []})
    sync.check({"v": 1, "type": "ops", "origin": "0xAB", "head": 3, "ops": [], "compacted": 2})
    with pytest.raises(Refusal):
        sync.check({"v": 1, "type": "ops", "origin": "0xAB", "head": 3, "ops": [], "compacted": "2"})


# --- The puller, below a peer's floor ---------------------------------------------------------------------------
def shared_mailbox_with(peer: FakePeer, owner: Owner, uids: list[str]) -> None:
    """A mailbox homed at the peer, kept here too, with these messages: the peer's ops 1 … 2 + len(uids)."""
    ops = [peer.register_op(owner, "shared"), peer.mailbox_op(owner, "shared", [peer.key, GATEWAY])]
    assert peer.says(peer.batch(*ops, *(peer.message_op("shared", uid) for uid in uids))) == "done"


def message_item(peer: FakePeer, owner: Owner, uid: str) -> tuple[bytes, dict[str, Any]]:
    payload = peer.message_op("shared", uid, seq=1)["payload"]
    hashed = item_hash(uid, payload["delivery_id"], payload["scheme"], hashlib.sha256(b"\x07" * 50).digest())
    return hashed, {**payload, "owner": owner.key}


def uids() -> set[str]:
    return set(Message.objects.values_list("uid", flat=True))


def test_below_a_peer_s_floor_its_tombstones_are_applied_then_a_reconciliation_moves_the_cursor_past_it(
    peer_b: FakePeer,  # noqa: F811
    monkeypatch: Any,
) -> None:
    enqueued = []
    monkeypatch.setattr("federation.services.replication.enqueue_coalesced", lambda task, *a, **k: enqueued.append(a))
    owner = Owner.fresh()
    shared_mailbox_with(peer_b, owner, ["m-1", "m-2"])  # its ops 1 … 4; then we were away
    peer = Peer.objects.get(name="gw-b")
    # Meanwhile it deleted m-1 (its op 30) and compacted its log up to 35 (head 40).
    tombstone = peer_b.op("delete", {"name": "shared", "uid": "m-1"}, seq=30)

    assert peer_b.says({**peer_b.batch(tombstone, head=40), "compacted": 35}) == "done"

    assert uids() == {"m-2"}
    peer.refresh_from_db()
    assert (peer.cursor, peer.remote_head, peer.remote_floor, peer.tombstones_to) == (4, 40, 35, 30)
    assert Operation.objects.filter(origin=peer_b.key, seq=30, kind="delete").exists()  # the tombstone, kept here
    ((_, pull),) = sent_sync("pull")
    assert pull["since"] == 30  # the tombstones after the last one fetched
    assert enqueued == []
    assert selectors.peers_far_behind() == []  # no round moves the cursor past tombstones not fetched yet

    assert peer_b.says({**peer_b.batch(head=40), "compacted": 35}) == "done"  # no more of them

    assert enqueued == [(peer.id,)]
    peer.refresh_from_db()
    assert peer.reconcile_note.endswith("catching up by reconciliation over its API")
    assert not services.pull_request(peer_id=peer.id)  # nothing more to pull below the floor
    assert selectors.peers_far_behind() == [peer.id]
    assert selectors.peers_health()[0].below_floor == 35

    holder = Holder(peer_b.key, head=40)
    for uid in ("m-1", "m-2", "m-3"):  # its copy of m-1 is an old one (a replica that had not applied the delete)
        holder.add("messages:shared", uid, *message_item(peer_b, owner, uid))
    report = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert uids() == {"m-2", "m-3"}  # m-1 not brought back: its tombstone is here
    assert report.outcomes == {"applied": 1, "deleted": 1}
    assert report.jumped_to == 40
    peer.refresh_from_db()
    assert services.pull_request(peer_id=peer.id)
    assert sent_sync("pull")[-1][1]["since"] == 40
    assert selectors.peers_health()[0].below_floor == 0


def test_a_mailbox_a_round_makes_this_gateway_keep_has_its_messages_fetched_in_the_same_round(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    """The round that moves the cursor past a compacted range must bring what the range's ``message`` ops did, also
    for a mailbox this gateway learnt it keeps from the round itself."""
    owner = Owner.fresh()
    assert peer_b.says(peer_b.batch(peer_b.register_op(owner, "shared"), head=40)) == "done"
    holder = Holder(peer_b.key, head=40)
    announced = {"name": "shared", "owner": owner.key, "address": owner.address, "replicas": [peer_b.key, GATEWAY]}
    holder.add("mailboxes", "shared", item_hash("shared", owner.key, json.dumps(announced["replicas"])), announced)
    holder.add("messages:shared", "m-1", *message_item(peer_b, owner, "m-1"))

    report = snapshots.reconcile_with_peer(peer_id=Peer.objects.get(name="gw-b").id, transport=holder)

    assert uids() == {"m-1"}
    assert (report.applied, report.jumped_to) == (2, 40)


def test_a_deleted_message_stays_deleted_after_our_copy_is_compacted_and_a_peer_serves_it_again(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
    settings: Any,
) -> None:
    settings.MNS_FEDERATION_LOG_KEEP = 1
    owner = Owner.fresh()
    shared_mailbox_with(peer_b, owner, ["m-1", "m-2"])
    assert peer_b.says(peer_b.batch(peer_b.op("delete", {"name": "shared", "uid": "m-1"}))) == "done"
    for index in range(3):  # whatever follows
        assert peer_b.says(peer_b.batch(peer_b.register_op(Owner.fresh(), f"later{index}"))) == "done"
    services.compact()
    assert held(peer_b.key) == [5, 8]  # the tombstone, and the last op

    holder = Holder(peer_b.key, head=8)
    for uid in ("m-1", "m-2"):
        holder.add("messages:shared", uid, *message_item(peer_b, owner, uid))
    snapshots.reconcile_with_peer(peer_id=Peer.objects.get(name="gw-b").id, transport=holder)

    assert uids() == {"m-2"}


def test_a_peer_without_an_api_below_its_floor_is_reconciled_over_maxima_and_unhealthy_meanwhile(
    peer_b: FakePeer,  # noqa: F811
    monkeypatch: Any,
) -> None:
    enqueued = []
    monkeypatch.setattr("federation.services.replication.enqueue_coalesced", lambda task, *a, **k: enqueued.append(a))
    Peer.objects.update(api_url="", last_heard_at=timezone.now())

    assert peer_b.says({**peer_b.batch(head=40), "compacted": 35}) == "done"

    peer = Peer.objects.get(name="gw-b")
    assert enqueued == [(peer.id,)]
    assert peer.reconcile_note.endswith("catching up by reconciliation over Maxima (it has no API URL)")
    (health,) = selectors.peers_health()
    assert (health.healthy, health.below_floor) == (False, 35)
    with pytest.raises(RuntimeError):
        selectors.peers_check()


@override_settings(MNS_RETENTION_DAYS=30)
def test_a_copy_of_a_message_already_past_its_retention_here_is_not_stored(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    shared_mailbox_with(peer_b, owner, [])
    old = peer_b.message_op(
        "shared", "m-old", received_at=int((timezone.now() - timedelta(days=31)).timestamp() * 1000)
    )

    assert peer_b.says(peer_b.batch(old)) == "done"

    assert uids() == set()
    assert Operation.objects.get(origin=peer_b.key, seq=3).outcome == "expired"


def test_a_restored_gateway_does_not_wait_for_positions_its_peers_compacted(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    alice = Owner.fresh().register("alice", gateway=GATEWAY).to_dict()
    services.op_append(kind="statement", payload=alice)
    services.op_sequence()  # what the backup had: position 1
    call_command("backup_restored", stdout=StringIO())
    assert peer_b.says(sync.message("position", origin=GATEWAY, seq=6)) == "done"
    assert peer_c.says(sync.message("position", origin=GATEWAY, seq=6)) == "done"
    assert services.restore_progress() is True

    # b compacted its copy of our log up to 5: no op of 2 … 5 will come back from it, none was a tombstone
    assert peer_b.says({**sync.message("ops", origin=GATEWAY, head=6, ops=[]), "compacted": 5}) == "done"
    assert LogHead.objects.get().floor == 5
    assert services.restore_progress() is True  # 6 is still missing: asked from after the floor
    assert [body["since"] for _, body in sent_sync("pull")][-2:] == [5, 5]
    bruno = Owner.fresh().register("bruno", gateway=GATEWAY).to_dict()
    six = {"seq": 6, "kind": "statement", "payload": bruno, "created_at": 1795660441644}
    assert peer_c.says(sync.message("ops", origin=GATEWAY, head=6, ops=[six])) == "done"

    assert services.restore_progress() is False
    log = LogHead.objects.get()
    assert "positions up to 5 were compacted by the peers" in log.recovery_note
    assert "no peer sent back" not in log.recovery_note


def test_a_tombstone_our_state_is_too_far_behind_to_verify_is_skipped_not_counted_against_the_peer(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    owner = Owner.fresh()
    shared_mailbox_with(peer_c, owner, [])  # as far as we know, b keeps no copy of it
    tombstone = peer_b.op("delete", {"name": "shared", "uid": "m-9"}, seq=12)

    assert peer_b.says({**peer_b.batch(tombstone, head=40), "compacted": 35}) == "done"

    peer = Peer.objects.get(name="gw-b")
    assert (peer.invalid_ops, peer.applied_ops, peer.tombstones_to) == (0, 0, 12)


def test_a_peer_restored_from_below_the_floor_it_told_is_pulled_again_once_a_snapshot_moved_the_cursor(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    # gw-b said its log was compacted up to 100; restored from a backup, its head is now 50, and a snapshot moved
    # our cursor there. Below the old floor the pull would wait for a round that can never pass it.
    peer = Peer.objects.get(name="gw-b")
    Peer.objects.filter(id=peer.id).update(cursor=10, remote_floor=100, remote_head=100)

    assert snapshots._cursor_jump(peer, 50) == 50

    peer.refresh_from_db()
    assert (peer.cursor, peer.remote_floor) == (50, 50)
    assert oplog._pull_since(peer) == 50  # the log again, from the snapshot's head
