"""Applying a peer's operations: names, mailboxes, messages and tombstones replicate; applying twice changes
nothing; what does not verify writes nothing and counts against the peer, which is paused past the threshold."""

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from federation import services
from federation.models import Operation, Peer
from federation.services.oplog import PULL_ANSWER_SECONDS
from federation.tests.support import FakePeer, gateway, peer_b, sent_sync, state  # noqa: F401 (fixtures)
from handshake import services as handshake_services
from mailboxes.models import Mailbox, Message
from mailboxes.tests.support import VERIFIER, Owner, answer, usage
from maxima.models import OutboundMessage
from mns_client.protocol.handshake import verifier_hash
from registry.models import NameRecord
from registry.tests.support import GATEWAY

pytestmark = pytest.mark.django_db


def replicated_mailbox(peer: FakePeer, owner: Owner, name: str = "alice") -> Mailbox:
    """The peer registered ``name`` for ``owner`` and keeps its mailbox with us as a replica."""
    batch = peer.batch(peer.register_op(owner, name), peer.mailbox_op(owner, name, [peer.key, GATEWAY]))
    assert peer.says(batch) == "done"
    return Mailbox.objects.get(record__name=name)


def test_a_peers_register_makes_the_name_active_here_with_the_peer_as_home(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    assert peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice"))) == "done"
    record = NameRecord.objects.get(name="alice")
    assert (record.status, record.owner_key, record.gateways) == ("active", owner.key, [peer_b.key])
    peer = Peer.objects.get()
    assert (peer.cursor, peer.remote_head, peer.applied_ops, peer.invalid_ops) == (1, 1, 1, 0)
    assert peer.last_heard_at is not None


def test_lookup_works_for_a_name_registered_at_a_peer(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice")))
    response = Client().get("/api/v1/names/alice")
    assert response.status_code == 200
    assert (response.json()["owner"], response.json()["status"]) == (owner.key, "active")


def test_a_replica_keeps_the_mailbox_and_its_messages_under_the_same_ids(peer_b: FakePeer) -> None:  # noqa: F811
    mailbox = replicated_mailbox(peer_b, Owner.fresh())
    assert peer_b.says(peer_b.batch(peer_b.message_op("alice", "uid-of-message-1", b"\x09" * 70))) == "done"
    message = Message.objects.get()
    assert (message.uid, bytes(message.ciphertext), message.mailbox_id) == (
        "uid-of-message-1",
        b"\x09" * 70,
        mailbox.id,
    )
    assert usage() == (1, 70)


def test_applying_the_same_batch_twice_changes_nothing_and_counts_the_quota_once(peer_b: FakePeer) -> None:  # noqa: F811
    replicated_mailbox(peer_b, Owner.fresh())
    batch = peer_b.batch(peer_b.message_op("alice", "uid-of-message-1"))
    peer_b.says(batch)
    before = state()
    assert peer_b.says(batch) == "done"
    Peer.objects.update(cursor=2)  # even past the cursor check, the op's own id keeps it from being stored twice
    assert peer_b.says(batch) == "done"
    assert state() == before
    assert usage()[0] == 1


def test_a_tombstone_deletes_the_message_and_gives_its_room_back(peer_b: FakePeer) -> None:  # noqa: F811
    replicated_mailbox(peer_b, Owner.fresh())
    peer_b.says(peer_b.batch(peer_b.message_op("alice", "uid-of-message-1")))
    peer_b.says(peer_b.batch(peer_b.op("delete", {"name": "alice", "uid": "uid-of-message-1"})))
    assert not Message.objects.exists()
    assert usage() == (0, 0)


def test_the_owner_reads_a_replicated_mailbox_here_with_a_handshake(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    replicated_mailbox(peer_b, owner)
    peer_b.says(peer_b.batch(peer_b.message_op("alice", "uid-of-message-1")))
    issued = handshake_services.challenge_issue(name="alice", purpose="read", verifier_hash=verifier_hash(VERIFIER))
    assert answer(owner, issued.challenge.id, issued.code) == "verified"
    opened = handshake_services.session_open(challenge_id=issued.challenge.id, verifier=VERIFIER)
    response = Client().get("/api/v1/mailboxes/alice/messages", HTTP_AUTHORIZATION=f"MNS-Session {opened.token}")
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["results"]] == ["uid-of-message-1"]


def test_a_gateway_without_the_mailbox_answers_with_the_gateways_that_keep_it(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice"), peer_b.mailbox_op(owner, "alice", [peer_b.key])))
    assert not Mailbox.objects.exists()
    issued = handshake_services.challenge_issue(name="alice", purpose="read", verifier_hash=verifier_hash(VERIFIER))
    answer(owner, issued.challenge.id, issued.code)
    opened = handshake_services.session_open(challenge_id=issued.challenge.id, verifier=VERIFIER)
    response = Client().get("/api/v1/mailboxes/alice/messages", HTTP_AUTHORIZATION=f"MNS-Session {opened.token}")
    assert response.status_code == 404
    assert response.json()["error"] == "mailbox_elsewhere"
    assert response.json()["fields"] == {"gateways": ["http://gw-b.test/api/v1/"]}


def test_a_message_for_a_mailbox_not_kept_here_is_skipped_not_counted(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice"), peer_b.mailbox_op(owner, "alice", [peer_b.key])))
    peer_b.says(peer_b.batch(peer_b.message_op("alice", "uid-of-message-1")))
    assert not Message.objects.exists()
    assert Operation.objects.get(seq=3).outcome == "not_replica"
    assert Peer.objects.get().invalid_ops == 0


# ------------------------------------------------------------------------------------------------- refusals


def test_a_forged_statement_writes_nothing_and_counts_against_the_peer(peer_b: FakePeer) -> None:  # noqa: F811
    op = peer_b.register_op(Owner.fresh(), "alice")
    op["payload"]["signature"] = "0x" + "AB" * 128
    before = state()
    assert peer_b.says(peer_b.batch(op)) == "done"
    assert state() == before
    peer = Peer.objects.get()
    assert (peer.invalid_ops, peer.cursor) == (1, 1)


def test_a_statement_about_anothers_name_writes_nothing_and_counts(peer_b: FakePeer) -> None:  # noqa: F811
    owner, thief = Owner.fresh(), Owner.fresh()
    peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice")))
    before = state()
    update = thief.sign("update", "alice", 2, gateway=peer_b.key)
    assert peer_b.says(peer_b.batch(peer_b.op("statement", update.to_dict()))) == "done"
    assert state() == before
    assert Peer.objects.get().invalid_ops == 1


def test_a_statement_naming_an_unknown_gateway_is_refused(peer_b: FakePeer) -> None:  # noqa: F811
    stranger = FakePeer.fresh("stranger")
    signed = Owner.fresh().register("alice", gateway=stranger.key)
    before = state()
    peer_b.says(peer_b.batch(peer_b.op("statement", signed.to_dict())))
    assert state() == before
    assert Peer.objects.get().invalid_ops == 1


def test_a_message_from_a_gateway_that_does_not_keep_the_mailbox_is_refused(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    peer_c = FakePeer.fresh("gw-c")
    peer_c.add()
    replicated_mailbox(peer_b, Owner.fresh())  # kept by b and us, not c
    before = state()
    peer_c.says(peer_c.batch(peer_c.message_op("alice", "uid-of-message-1")))
    assert state() == before
    assert Peer.objects.get(name="gw-c").invalid_ops == 1


@pytest.mark.parametrize("received_at", [True, 1795660441638.0, "1795660441638"], ids=["true", "float", "text"])
def test_a_message_whose_received_at_is_not_an_integer_writes_nothing_and_counts(
    peer_b: FakePeer,  # noqa: F811
    received_at: object,
) -> None:
    replicated_mailbox(peer_b, Owner.fresh())
    before = state()

    peer_b.says(peer_b.batch(peer_b.message_op("alice", "uid-of-message-1", received_at=received_at)))

    assert state() == before
    assert Peer.objects.get().invalid_ops == 1


def test_ops_from_a_key_that_is_not_a_peer_are_ignored_and_change_nothing(gateway: object) -> None:  # noqa: F811
    stranger = FakePeer.fresh("stranger")
    before = state()
    assert stranger.says(stranger.batch(stranger.register_op(Owner.fresh(), "alice"))).startswith("ignored")
    assert state() == before


@override_settings(MNS_FEDERATION_PAUSE_AFTER_INVALID=3)
def test_a_peer_that_keeps_sending_invalid_ops_is_paused_and_then_ignored(peer_b: FakePeer) -> None:  # noqa: F811
    forged = []
    for _ in range(3):
        op = peer_b.register_op(Owner.fresh(), f"name{peer_b.seq + 1}")
        op["payload"]["signature"] = "0x" + "CD" * 128
        forged.append(op)
    peer_b.says(peer_b.batch(*forged))
    peer = Peer.objects.get()
    assert (peer.paused, peer.invalid_ops) == (True, 3)
    assert "invalid operations" in peer.paused_reason
    before = state()
    assert peer_b.says(peer_b.batch(peer_b.register_op(Owner.fresh(), "alice"))).startswith("ignored")
    assert state() == before


@override_settings(MNS_FEDERATION_MAX_OP_BYTES=4096)
def test_an_op_above_the_size_cap_is_refused_as_invalid(peer_b: FakePeer) -> None:  # noqa: F811
    replicated_mailbox(peer_b, Owner.fresh())
    before = state()
    peer_b.says(peer_b.batch(peer_b.message_op("alice", "uid-of-message-1", b"\x01" * 5000)))
    assert state() == before
    assert Peer.objects.get().invalid_ops == 1


@override_settings(MNS_FEDERATION_OPS_PER_MINUTE=2)
def test_ops_past_the_per_minute_limit_wait_for_a_later_pull(peer_b: FakePeer) -> None:  # noqa: F811
    owners = [Owner.fresh() for _ in range(3)]
    peer_b.says(peer_b.batch(*(peer_b.register_op(owner, f"name{i}") for i, owner in enumerate(owners))))
    assert sorted(NameRecord.objects.values_list("name", flat=True)) == ["name0", "name1"]
    peer = Peer.objects.get()
    assert (peer.cursor, peer.remote_head, peer.lag_ops) == (2, 3, 1)


def test_a_gap_in_the_peers_ops_asks_for_the_missing_ones(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    first = peer_b.register_op(owner, "alice")
    later = peer_b.register_op(Owner.fresh(), "bob")
    assert peer_b.says(peer_b.batch(later)) == "done"  # seq 2 before seq 1
    assert not NameRecord.objects.exists()
    [(destination, pull)] = sent_sync("pull")
    assert (destination, pull["origin"], pull["since"]) == (peer_b.address, peer_b.key, 0)
    peer_b.says(peer_b.batch(first, later))
    assert sorted(NameRecord.objects.values_list("name", flat=True)) == ["alice", "bob"]


def test_a_cursor_asked_for_is_not_asked_for_again_until_its_answer_had_time_to_come(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    first, later = peer_b.register_op(Owner.fresh(), "alice"), peer_b.register_op(Owner.fresh(), "bob")
    peer_b.says(peer_b.batch(later))  # a gap: asks for what follows cursor 0
    peer_id = Peer.objects.get().id
    assert services.pull_request(peer_id=peer_id) is False  # the next sync round: that pull is still unanswered
    assert len(sent_sync("pull")) == 1
    OutboundMessage.objects.filter(idempotency_key__startswith="fed-pull:").update(
        created_at=timezone.now() - timedelta(seconds=PULL_ANSWER_SECONDS + 1)
    )
    assert services.pull_request(peer_id=peer_id) is True  # no answer in time: asked again (the same row here)
    peer_b.says(peer_b.batch(first))  # the answer: the cursor moves
    assert services.pull_request(peer_id=peer_id) is True  # a new cursor is asked for at once
    assert [pull["since"] for _, pull in sent_sync("pull")] == [0, 1]


def test_a_peer_cannot_register_more_names_for_one_owner_than_the_limit(peer_b: FakePeer, settings) -> None:  # noqa: F811
    settings.MNS_NAMES_PER_OWNER = 1
    owner = Owner.fresh()
    peer_b.says(peer_b.batch(peer_b.register_op(owner, "alice"), peer_b.register_op(owner, "alicia")))
    assert list(NameRecord.objects.values_list("name", flat=True)) == ["alice"]
    peer = Peer.objects.get()
    assert (peer.refused_ops, peer.invalid_ops, peer.cursor) == (1, 0, 2)


def test_the_home_gateways_suspension_and_restore_apply_here_and_anothers_do_not(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    peer_c = FakePeer.fresh("gw-c")
    peer_c.add()
    replicated_mailbox(peer_b, Owner.fresh())
    peer_c.says(peer_c.batch(peer_c.op("suspend", {"name": "alice"})))
    assert NameRecord.objects.get().status == "active"
    peer_b.says(peer_b.batch(peer_b.op("suspend", {"name": "alice"})))
    assert NameRecord.objects.get().status == "suspended"
    peer_b.says(peer_b.batch(peer_b.op("restore", {"name": "alice"})))
    assert NameRecord.objects.get().status == "active"
    assert Operation.objects.get(origin=peer_c.key).outcome == "not_home"


def test_an_op_of_a_protocol_kind_no_app_registered_fails_the_batch_and_is_neither_skipped_nor_counted(
    peer_b: FakePeer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fail closed: a lost registration must not drop the network's ops for good nor pause a healthy peer."""
    from federation.services import kinds

    monkeypatch.setattr(kinds, "_kinds", {k: v for k, v in kinds._kinds.items() if k != "statement"})
    assert peer_b.says(peer_b.batch(peer_b.register_op(Owner.fresh(), "alice"))) == "ignored: RuntimeError"
    peer = Peer.objects.get()
    assert (peer.cursor, peer.invalid_ops, NameRecord.objects.count(), Operation.objects.count()) == (0, 0, 0, 0)
