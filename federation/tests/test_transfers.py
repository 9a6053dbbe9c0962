"""Transfers and data records between gateways: a peer's transfer, accept and data record apply here (and the old
owner's replicated mail goes), forgeries write nothing and count against the peer, and a transfer taken here goes
to the peers as ops, the new owner's mailbox after the accept."""

import time

import pytest
from django.test import Client

from federation.models import Operation, Peer
from federation.tests.support import FakePeer, gateway, peer_b, peer_c, state  # noqa: F401 (fixtures)
from mailboxes.models import Mailbox, Message
from mailboxes.tests.support import Owner
from mns_client.protocol.codecs import to_hex
from registry import services as registry_services
from registry.models import NameRecord, StatementRecord
from registry.tests.support import GATEWAY

pytestmark = pytest.mark.django_db

DAY_MS = 24 * 3600 * 1000
SITE = {"website": "https://alice.example/"}


def now_ms() -> int:
    return int(time.time() * 1000)


def offer_op(peer: FakePeer, owner: Owner, to: Owner, *, seq: int = 2, issued_at: int | None = None) -> dict:
    issued_at = now_ms() if issued_at is None else issued_at
    signed = owner.sign(
        "transfer",
        "alice",
        seq,
        box_key=to_hex(owner.box_public),
        data=SITE,
        to=to.key,
        expires_at=issued_at + DAY_MS,
        issued_at=issued_at,
        gateway=peer.key,
    )
    return peer.op("statement", signed.to_dict())


def accept_statement(peer: FakePeer, signer: Owner, *, owner: str | None = None, **fields: object) -> dict:
    fields = {"seq": 3, "accepts": 2, "issued_at": now_ms(), **fields}
    signed = signer.sign(
        "accept", "alice", fields.pop("seq"), box_key=to_hex(signer.box_public), gateway=peer.key, **fields
    )
    payload = signed.to_dict()
    if owner is not None:
        payload["statement"]["owner"] = owner  # another key's name on the signer's signature
    return payload


def with_replica_mail(peer: FakePeer, owner: Owner) -> None:
    """The peer registered alice (with a data record) and keeps her mailbox with us, one message in it."""
    batch = peer.batch(
        peer.register_op(owner, "alice", data=SITE),
        peer.mailbox_op(owner, "alice", [peer.key, GATEWAY]),
        peer.message_op("alice", "uid-of-old-mail", b"\x05" * 60),
    )
    assert peer.says(batch) == "done"
    assert Message.objects.filter(uid="uid-of-old-mail").exists()


def test_a_peers_data_record_transfer_and_accept_apply_here_and_the_old_mail_goes(peer_b: FakePeer) -> None:  # noqa: F811
    owner, new_owner = Owner.fresh(), Owner.fresh()
    with_replica_mail(peer_b, owner)
    assert Client().get("/api/v1/names/alice").json()["data"] == SITE
    # the offer applies and shows; the owner's mailbox is untouched while it is pending
    assert peer_b.says(peer_b.batch(offer_op(peer_b, owner, new_owner))) == "done"
    pending = Client().get("/api/v1/names/alice").json()
    assert (pending["owner"], pending["transfer"]["to"]) == (owner.key, new_owner.key)
    assert Message.objects.filter(uid="uid-of-old-mail").exists()
    # the accept applies: the name is the new owner's and the replica of the old mailbox is gone with its mail
    taken = peer_b.op("statement", accept_statement(peer_b, new_owner, data={"minima": "0x" + "CD" * 32}))
    assert peer_b.says(peer_b.batch(taken)) == "done"
    record = NameRecord.objects.get(name="alice")
    assert (record.owner_key, record.box_key) == (new_owner.key, to_hex(new_owner.box_public))
    assert Client().get("/api/v1/names/alice").json()["data"] == {"minima": "0x" + "CD" * 32}
    assert list(StatementRecord.objects.values_list("op", flat=True)) == ["register", "transfer", "accept"]
    assert not Message.objects.exists()
    assert not Mailbox.objects.exists()
    # and the home's announcement of the new owner's mailbox makes an empty replica of it
    assert peer_b.says(peer_b.batch(peer_b.mailbox_op(new_owner, "alice", [peer_b.key, GATEWAY]))) == "done"
    assert Mailbox.objects.get().owner_key == new_owner.key
    peer = Peer.objects.get()
    assert (peer.invalid_ops, peer.cursor, peer.applied_ops) == (0, 6, 6)


def test_a_letter_stored_for_the_old_owner_that_arrives_after_the_transfer_stays_out_of_the_new_mailbox(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    owner, new_owner = Owner.fresh(), Owner.fresh()
    with_replica_mail(peer_b, owner)
    assert peer_b.says(peer_b.batch(offer_op(peer_b, owner, new_owner))) == "done"
    assert peer_b.says(peer_b.batch(peer_b.op("statement", accept_statement(peer_b, new_owner)))) == "done"
    assert peer_b.says(peer_b.batch(peer_b.mailbox_op(new_owner, "alice", [peer_b.key, GATEWAY]))) == "done"
    # a letter the home stored for the old owner before the accept, whose op reaches us only now
    late = peer_b.message_op("alice", "uid-late", owner=owner.key)
    assert peer_b.says(peer_b.batch(late)) == "done"
    assert list(Message.objects.values_list("uid", flat=True)) == []
    assert Mailbox.objects.get().owner_key == new_owner.key
    # while a letter stored for the new owner goes in
    assert peer_b.says(peer_b.batch(peer_b.message_op("alice", "uid-new", owner=new_owner.key))) == "done"
    assert list(Message.objects.values_list("uid", flat=True)) == ["uid-new"]


@pytest.mark.parametrize(
    "forgery", ["signed_by_another_key", "by_a_key_not_offered", "after_the_deadline", "wrong_offer"]
)
def test_a_forged_accept_writes_nothing_and_counts_against_the_peer(peer_b: FakePeer, forgery: str) -> None:  # noqa: F811
    owner, new_owner, thief = Owner.fresh(), Owner.fresh(), Owner.fresh()
    with_replica_mail(peer_b, owner)
    assert peer_b.says(peer_b.batch(offer_op(peer_b, owner, new_owner, issued_at=now_ms()))) == "done"
    expires_at = NameRecord.objects.get(name="alice").statement["expires_at"]
    payload = {
        "signed_by_another_key": lambda: accept_statement(peer_b, thief, owner=new_owner.key),
        "by_a_key_not_offered": lambda: accept_statement(peer_b, thief),
        "after_the_deadline": lambda: accept_statement(peer_b, new_owner, issued_at=expires_at + 1),
        "wrong_offer": lambda: accept_statement(peer_b, new_owner, accepts=1),
    }[forgery]()
    before = state()
    assert peer_b.says(peer_b.batch(peer_b.op("statement", payload))) == "done"
    after = state()
    assert (after["records"], after["statements"], after["messages"]) == (
        before["records"],
        before["statements"],
        before["messages"],
    )
    assert NameRecord.objects.get(name="alice").owner_key == owner.key
    assert Peer.objects.get().invalid_ops == 1


def test_an_accept_that_arrives_before_its_offer_waits_for_it(peer_b: FakePeer, peer_c: FakePeer) -> None:  # noqa: F811
    # given alice registered at b, offered to new_owner at b, and the accept taken at c
    owner, new_owner = Owner.fresh(), Owner.fresh()
    assert peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice"))) == "done"
    offer = offer_op(peer_b, owner, new_owner)
    accepted = peer_c.op("statement", accept_statement(peer_c, new_owner))
    # when c's accept reaches us first, it waits (nothing written, c's cursor stays)
    before = state()
    assert peer_c.says(peer_c.batch(accepted)) == "done"
    assert state()["statements"] == before["statements"]
    assert Peer.objects.get(name="gw-c").cursor == 0
    # then once b's offer arrived, c's accept applies
    assert peer_b.says(peer_b.batch(offer)) == "done"
    assert peer_c.says(peer_c.batch(accepted)) == "done"
    assert NameRecord.objects.get(name="alice").owner_key == new_owner.key


def withdrawal_op(peer: FakePeer, owner: Owner, seq: int = 3) -> dict:
    """The owner's update after the offer (seq 2): it withdraws the offer."""
    signed = owner.sign("update", "alice", seq, box_key=to_hex(owner.box_public), issued_at=now_ms(), gateway=peer.key)
    return peer.op("statement", signed.to_dict())


@pytest.mark.parametrize("first", ["the_withdrawal", "the_accept"])
def test_an_accept_and_a_withdrawal_taken_at_once_at_two_gateways_end_with_the_accept_everywhere(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
    first: str,
) -> None:
    # given alice (home b) offered her name to new_owner; then she withdrew the offer at b (seq 3) while
    # new_owner's accept of offer 2 (seq 3 too) was taken at c
    owner, new_owner = Owner.fresh(), Owner.fresh()
    assert peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice"), offer_op(peer_b, owner, new_owner))) == "done"
    withdrawal = peer_b.batch(withdrawal_op(peer_b, owner))
    accepted = peer_c.batch(peer_c.op("statement", accept_statement(peer_c, new_owner)))
    # when both reach this gateway, in either order
    for batch, peer in [(withdrawal, peer_b), (accepted, peer_c)][:: 1 if first == "the_withdrawal" else -1]:
        assert peer.says(batch) == "done"
    # then the accept stands here, as it does at c: the name is new_owner's, after its offer
    record = NameRecord.objects.get(name="alice")
    assert (record.owner_key, record.seq) == (new_owner.key, 3)
    history = StatementRecord.objects.order_by("seq").values_list("seq", "op", "owner_key")
    assert list(history) == [(1, "register", owner.key), (2, "transfer", owner.key), (3, "accept", new_owner.key)]
    assert Client().get("/api/v1/names/alice").json()["owner"] == new_owner.key
    assert sum(peer.invalid_ops for peer in Peer.objects.all()) == 0


def test_a_transfer_taken_here_goes_to_the_peers_with_the_new_owners_mailbox_after_it(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    owner, new_owner = Owner.fresh(), Owner.fresh()
    registry_services.name_hold(signed=owner.register("alice"), gateway_key=GATEWAY, source="api")
    registry_services.name_activate(name="alice")
    issued_at = now_ms()
    offer = owner.sign(
        "transfer", "alice", 2, box_key=to_hex(owner.box_public), to=new_owner.key, expires_at=issued_at + DAY_MS
    )
    registry_services.statement_apply(signed=offer, source="api")
    taken = new_owner.sign("accept", "alice", 3, box_key=to_hex(new_owner.box_public), accepts=2, issued_at=issued_at)
    registry_services.statement_apply(signed=taken, source="maxima")
    ops = list(Operation.objects.order_by("id").values_list("kind", "payload"))
    assert [kind for kind, _ in ops] == ["statement", "statement", "mailbox"]
    assert [payload["statement"]["op"] for kind, payload in ops if kind == "statement"] == ["transfer", "accept"]
    assert ops[-1][1]["owner"] == new_owner.key
    assert Mailbox.objects.get().owner_key == new_owner.key


def test_a_peers_accept_past_the_names_per_owner_cap_is_skipped_here_not_counted(
    peer_b: FakePeer,  # noqa: F811
    settings: object,
) -> None:
    owner, new_owner = Owner.fresh(), Owner.fresh()
    settings.MNS_NAMES_PER_OWNER = 1  # type: ignore[attr-defined]
    assert (
        peer_b.says(peer_b.batch(peer_b.register_op(new_owner, "other"), peer_b.register_op(owner, "alice"))) == "done"
    )
    assert peer_b.says(peer_b.batch(offer_op(peer_b, owner, new_owner, seq=2))) == "done"
    before = state()
    assert peer_b.says(peer_b.batch(peer_b.op("statement", accept_statement(peer_b, new_owner)))) == "done"
    assert (state()["records"], state()["statements"]) == (before["records"], before["statements"])
    peer = Peer.objects.get()
    assert (peer.invalid_ops, peer.refused_ops) == (0, 1)
