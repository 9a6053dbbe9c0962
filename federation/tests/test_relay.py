"""Relaying: an owner-signed statement a peer sent is applied here and logged again, naming its origin, for the
other peers; a statement already held is not relayed again, a relay never goes back to its origin, stops after
``MNS_FEDERATION_RELAY_HOPS``, and counts against the peer that relayed it; mailbox contents are never relayed."""

import time
from typing import Any

import pytest
from django.test import override_settings

from federation import services
from federation.models import Operation, Peer
from federation.tests.support import FakePeer, gateway, peer_b, peer_c, sent_sync, state  # noqa: F401 (fixtures)
from mailboxes.tests.support import Owner
from mns_client.protocol import sync
from mns_client.protocol.codecs import to_hex
from registry.models import NameRecord
from registry.tests.support import GATEWAY

pytestmark = pytest.mark.django_db
DAY_MS = 24 * 3600 * 1000


def own_log() -> list[dict[str, Any]]:
    """This gateway's own ops, numbered, as its peers get them."""
    services.op_sequence()
    return [services.op_wire(op) for op in Operation.objects.filter(origin=GATEWAY).order_by("seq")]


def relay_op(by: FakePeer, op: dict[str, Any], *, origin: str, hops: int = 1) -> dict[str, Any]:
    """``op`` of ``origin``'s log as ``by`` relays it: an op of ``by``'s own log naming the origin."""
    return by.op(op["kind"], sync.relayed(op["payload"], origin=origin, hops=hops))


def test_a_statement_a_peer_sent_is_applied_and_relayed_to_the_other_peers_naming_its_origin(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    owner = Owner.fresh()
    register = peer_b.register_op(owner, "alice")
    assert peer_b.says(peer_b.batch(register)) == "done"

    assert NameRecord.objects.get(name="alice").owner_key == owner.key
    (relayed,) = own_log()
    assert relayed["kind"] == "statement"
    assert relayed["payload"] == {**register["payload"], "relay": {"origin": peer_b.key, "hops": 1}}
    services.push_to_peer(peer_id=Peer.objects.get(name="gw-c").id)
    (to_c,) = [body for destination, body in sent_sync("ops") if destination == peer_c.address]
    assert [op["payload"] for op in to_c["ops"]] == [relayed["payload"]]


def test_a_statement_is_not_relayed_when_the_peer_it_came_from_is_the_only_one(peer_b: FakePeer) -> None:  # noqa: F811
    assert peer_b.says(peer_b.batch(peer_b.register_op(Owner.fresh(), "alice"))) == "done"
    assert NameRecord.objects.filter(name="alice", status="active").exists()
    assert own_log() == []


def test_a_statement_already_held_is_not_relayed_again(peer_b: FakePeer, peer_c: FakePeer) -> None:  # noqa: F811
    register = peer_b.register_op(Owner.fresh(), "alice")
    peer_b.says(peer_b.batch(register))
    assert len(own_log()) == 1

    # c relays the same statement to us (it got it from b too): a duplicate here, so it goes no further
    assert peer_c.says(peer_c.batch(relay_op(peer_c, register, origin=peer_b.key))) == "done"
    assert len(own_log()) == 1
    assert Operation.objects.get(origin=peer_c.key).outcome == "duplicate"
    # and our own relay coming back from c changes nothing either
    (ours,) = own_log()
    assert peer_c.says(peer_c.batch(peer_c.op("statement", ours["payload"]))) == "done"
    assert len(own_log()) == 1
    assert Peer.objects.get(name="gw-c").invalid_ops == 0


def test_an_update_and_a_transfer_reach_this_gateway_through_a_relay_in_order(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    """b cannot reach us: c relays b's register, update and transfer, and we relay each on (to b, the origin,
    nobody else: with two peers, the relay of b's op by c goes to no one)."""
    owner, taker = Owner.fresh(), Owner.fresh()
    box, now = to_hex(owner.box_public), int(time.time() * 1000)
    statements = [
        owner.register("alice", gateway=peer_b.key),
        owner.sign("update", "alice", 2, box_key=box, gateway=peer_b.key, data={"website": "https://a.example/"}),
        owner.sign(
            "transfer",
            "alice",
            3,
            box_key=box,
            gateway=peer_b.key,
            to=taker.key,
            issued_at=now,
            expires_at=now + DAY_MS,
        ),
    ]
    ops = [
        relay_op(peer_c, {"kind": "statement", "payload": signed.to_dict()}, origin=peer_b.key) for signed in statements
    ]
    assert peer_c.says(peer_c.batch(*ops)) == "done"

    record = NameRecord.objects.get(name="alice")
    assert (record.seq, record.owner_key, record.statement["op"]) == (3, owner.key, "transfer")
    assert [op.outcome for op in Operation.objects.filter(origin=peer_c.key).order_by("seq")] == ["applied"] * 3
    assert own_log() == []  # the only other peer is b, the origin: nobody to relay to


def test_a_relay_goes_on_with_one_more_hop_and_stops_at_the_bound(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    far = FakePeer.fresh("gw-far")  # the origin: a gateway this one does not peer with
    first = far.register_op(Owner.fresh(), "alice")
    last = far.register_op(Owner.fresh(), "bruno")
    with override_settings(MNS_FEDERATION_RELAY_HOPS=3):
        peer_b.says(peer_b.batch(relay_op(peer_b, first, origin=far.key, hops=2)))
        peer_b.says(peer_b.batch(relay_op(peer_b, last, origin=far.key, hops=3)))

    assert NameRecord.objects.filter(name__in=["alice", "bruno"], status="active").count() == 2
    (relayed,) = own_log()  # alice went on with a third hop; bruno, at the bound, stops here
    assert relayed["payload"]["relay"] == {"origin": far.key, "hops": 3}
    assert relayed["payload"]["statement"]["name"] == "alice"


def test_a_relayed_register_of_a_gateway_this_one_does_not_peer_with_is_taken_on_the_relays_word(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    """The register names the gateway that ran its claim, whose log it first appeared in: the relay's origin. A
    statement naming some other unknown gateway is skipped, not counted against the relay (which checked it
    against its own peers)."""
    far, elsewhere = FakePeer.fresh("gw-far"), FakePeer.fresh("gw-elsewhere")
    owner = Owner.fresh()
    assert peer_b.says(peer_b.batch(relay_op(peer_b, far.register_op(owner, "alice"), origin=far.key))) == "done"
    record = NameRecord.objects.get(name="alice")
    assert (record.status, record.gateways) == ("active", [far.key])

    moved = owner.sign("update", "alice", 2, box_key=to_hex(owner.box_public), gateway=elsewhere.key)
    op = relay_op(peer_b, {"kind": "statement", "payload": moved.to_dict()}, origin=far.key)
    assert peer_b.says(peer_b.batch(op)) == "done"
    assert NameRecord.objects.get(name="alice").seq == 1
    assert Operation.objects.get(origin=peer_b.key, seq=op["seq"]).outcome == "statement_gateway_unknown"
    assert Peer.objects.get(name="gw-b").invalid_ops == 0


def test_a_forged_relay_writes_nothing_and_counts_against_the_peer_that_relayed_it(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    owner = Owner.fresh()
    register = peer_b.register_op(owner, "alice")
    register["payload"]["signature"] = "0x" + "00" * 128
    before = state()
    assert peer_c.says(peer_c.batch(relay_op(peer_c, register, origin=peer_b.key))) == "done"
    after = state()
    assert (after["records"], after["statements"]) == (before["records"], before["statements"])
    assert own_log() == []
    assert (Peer.objects.get(name="gw-c").invalid_ops, Peer.objects.get(name="gw-b").invalid_ops) == (1, 0)


def test_mailbox_contents_are_not_relayed_and_a_relayed_one_or_an_origins_own_relay_is_invalid(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    owner = Owner.fresh()
    peer_b.says(
        peer_b.batch(peer_b.register_op(owner, "alice"), peer_b.mailbox_op(owner, "alice", [peer_b.key, GATEWAY]))
    )
    peer_b.says(peer_b.batch(peer_b.message_op("alice", "uid-of-message-1")))
    assert [op["kind"] for op in own_log()] == ["statement"]  # the register only

    message = peer_b.message_op("alice", "uid-of-message-2")
    assert peer_c.says(peer_c.batch(relay_op(peer_c, message, origin=peer_b.key))) == "done"
    bruno = Owner.fresh().register("bruno", gateway=peer_c.key).to_dict()
    own = relay_op(peer_c, {"kind": "statement", "payload": bruno}, origin=peer_c.key)
    assert peer_c.says(peer_c.batch(own)) == "done"
    assert Peer.objects.get(name="gw-c").invalid_ops == 2
    assert not NameRecord.objects.filter(name="bruno").exists()


@override_settings(MNS_FEDERATION_OPS_PER_MINUTE=1)
def test_relayed_ops_count_against_the_relaying_peers_rate_limit(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    ops = [relay_op(peer_c, peer_b.register_op(Owner.fresh(), name), origin=peer_b.key) for name in ("alice", "bruno")]
    assert peer_c.says(peer_c.batch(*ops)) == "done"
    assert list(NameRecord.objects.values_list("name", flat=True)) == ["alice"]
    assert Peer.objects.get(name="gw-c").cursor == 1
