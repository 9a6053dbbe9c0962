"""Claims: a new name is confirmed only on a majority of the membership; a peer acks one owner at a time (a lease),
and the registration finishes when both the owner's handshake and the network have answered."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from federation import services
from federation.models import Claim, Lease, Peer
from federation.tests.support import FakePeer, gateway, peer_b, peer_c, sent_sync, state  # noqa: F401 (fixtures)
from handshake.models import Challenge, Session
from mailboxes.models import AccessToken, Mailbox
from mailboxes.tests.support import VERIFIER, Owner, answer, inbound, open_mailbox, sent
from mns_client.protocol import sync
from mns_client.protocol.handshake import verifier_hash
from mns_client.protocol.mailbox import Register
from mns_client.protocol.names import skeleton
from registration import services as registration_services
from registry.models import NameRecord
from registry.tests.support import GATEWAY

pytestmark = pytest.mark.django_db


def start(owner: Owner, name: str = "alice") -> registration_services.PendingRegistration:
    return registration_services.mailbox_register(
        signed=owner.register(name), address=owner.address, verifier_hash=verifier_hash(VERIFIER), source="api"
    )


def claim_body(owner: Owner, name: str = "alice", claim_id: str = "claim-0000000001") -> dict:
    expires = int((timezone.now() + timedelta(seconds=60)).timestamp() * 1000)
    return sync.message("claim", claim_id=claim_id, name=name, owner=owner.key, expires_at=expires)


def replies(claim_id: str) -> list[tuple[str, str | None]]:
    return [
        (body["type"], body.get("reason"))
        for _, body in sent_sync()
        if body["type"] in ("claim-ack", "claim-nack") and body["claim_id"] == claim_id
    ]


# ------------------------------------------------------------------------------------------- the claimant


def test_with_no_peers_a_registration_is_confirmed_as_before_and_writes_no_claim(gateway: object) -> None:  # noqa: F811
    opened = open_mailbox(Owner.fresh(), "alice")
    assert opened.mailbox.record.status == "active"
    assert not Claim.objects.exists()
    assert not Lease.objects.exists()


def test_with_peers_the_name_is_claimed_from_each_and_leased_here(peer_b: FakePeer, peer_c: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    start(owner)
    claim = Claim.objects.get()
    assert (claim.status, claim.membership, claim.majority, claim.acks) == ("open", 3, 2, [GATEWAY])
    assert sorted(dest for dest, _ in sent_sync("claim")) == sorted([peer_b.address, peer_c.address])
    _, body = sent_sync("claim")[0]
    assert (body["name"], body["owner"], body["claim_id"]) == ("alice", owner.key, claim.claim_id)
    assert Lease.objects.get().claimant == GATEWAY


def test_an_answered_handshake_waits_for_the_claim_and_the_majority_finishes_it(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    owner = Owner.fresh()
    pending = start(owner)
    assert answer(owner, pending.issued.challenge.id, pending.issued.code) == "verified"
    assert NameRecord.objects.get().status == "pending"
    assert not Mailbox.objects.exists()
    claim_id = Claim.objects.get().claim_id
    assert peer_b.says(sync.message("claim-ack", claim_id=claim_id)) == "done"
    assert Claim.objects.get().status == "confirmed"
    assert NameRecord.objects.get().status == "active"
    assert AccessToken.objects.filter(mailbox__record__name="alice").count() == 1
    assert sorted(dest for dest, _ in sent_sync("commit")) == sorted([peer_b.address, peer_c.address])
    assert Lease.objects.get().status == "committed"


def pickup(challenge_id: str) -> tuple[int, dict]:
    response = Client().post(
        f"/api/v1/handshakes/{challenge_id}/session", {"verifier": VERIFIER}, content_type="application/json"
    )
    return response.status_code, response.json()


def polled(challenge_id: str) -> tuple[str, str | None]:
    status = Client().get(f"/api/v1/handshakes/{challenge_id}").json()
    return status["status"], status["reason"]


def test_an_answered_register_polls_pending_and_gives_no_session_until_the_network_confirms_the_name(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    owner = Owner.fresh()
    pending = start(owner)
    challenge_id = pending.issued.challenge.id
    assert answer(owner, challenge_id, pending.issued.code) == "verified"
    assert polled(challenge_id) == ("pending", "claim_open")
    status, refused = pickup(challenge_id)
    assert (status, refused["error"]) == (409, "handshake_pending")
    assert not Session.objects.exists()

    peer_b.says(sync.message("claim-ack", claim_id=Claim.objects.get().claim_id))
    assert polled(challenge_id) == ("verified", None)
    status, issued = pickup(challenge_id)
    assert status == 201, issued
    token = Client().get("/api/v1/mailboxes/alice/access-token", HTTP_AUTHORIZATION=f"MNS-Session {issued['token']}")
    assert token.status_code == 200, token.json()


def test_an_answered_register_whose_claim_is_refused_fails_name_taken_and_never_gives_a_session(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    owner = Owner.fresh()
    pending = start(owner)
    challenge_id = pending.issued.challenge.id
    assert answer(owner, challenge_id, pending.issued.code) == "verified"
    claim_id = Claim.objects.get().claim_id
    for peer in (peer_b, peer_c):
        peer.says(sync.message("claim-nack", claim_id=claim_id, reason="claimed"))
    assert polled(challenge_id) == ("failed", "name_taken")
    status, refused = pickup(challenge_id)
    assert (status, refused["error"]) == (409, "handshake_failed")
    assert not Session.objects.exists()
    assert NameRecord.objects.get().status == "released"


def test_a_register_over_maxima_answered_then_refused_gets_register_refused_and_no_access_token(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    owner = Owner.fresh()
    body = Register(signed=owner.register("alice"), address=owner.address).to_dict()
    assert registration_services.register_received(message=inbound(owner, body), body=body) == "challenged"
    [(_, challenge)] = sent("register-challenge")
    assert answer(owner, challenge["challenge"], challenge["code"]) == "verified"
    assert not AccessToken.objects.exists()  # the token goes out only when the registration completes
    peer_b.says(sync.message("claim-nack", claim_id=Claim.objects.get().claim_id, reason="claimed"))
    [(destination, refused)] = sent("register-refused")
    assert (destination, refused["reason"]) == (owner.address, "name_taken")
    assert not AccessToken.objects.exists()
    assert not sent("access-token")


def test_a_claim_confirmed_first_is_finished_by_the_handshake(peer_b: FakePeer, peer_c: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    pending = start(owner)
    peer_c.says(sync.message("claim-ack", claim_id=Claim.objects.get().claim_id))
    assert not Mailbox.objects.exists()
    answer(owner, pending.issued.challenge.id, pending.issued.code)
    assert Mailbox.objects.get().record.status == "active"


def test_a_majority_of_nacks_refuses_the_name_and_tells_the_rest_client_name_taken(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    owner = Owner.fresh()
    pending = start(owner)
    claim_id = Claim.objects.get().claim_id
    peer_b.says(sync.message("claim-nack", claim_id=claim_id, reason="claimed"))
    assert Claim.objects.get().status == "open"  # one nack of three: a majority is still possible
    peer_c.says(sync.message("claim-nack", claim_id=claim_id, reason="claimed"))
    assert Claim.objects.get().status == "refused"
    record = NameRecord.objects.get()
    assert (record.status, record.owner_key, record.statements.count()) == ("released", "", 0)
    status = Client().get(f"/api/v1/handshakes/{pending.issued.challenge.id}").json()
    assert (status["status"], status["reason"]) == ("failed", "name_taken")
    assert Lease.objects.get().status == "aborted"
    assert sorted(dest for dest, _ in sent_sync("abort")) == sorted([peer_b.address, peer_c.address])
    assert answer(owner, pending.issued.challenge.id, pending.issued.code) != "verified"
    assert not Mailbox.objects.exists()


def test_a_refused_registration_over_maxima_gets_register_refused(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    body = Register(signed=owner.register("alice"), address=owner.address).to_dict()
    assert registration_services.register_received(message=inbound(owner, body), body=body) == "challenged"
    peer_b.says(sync.message("claim-nack", claim_id=Claim.objects.get().claim_id, reason="claimed"))
    [(destination, refused)] = sent("register-refused")
    assert (destination, refused["name"], refused["reason"]) == (owner.address, "alice", "name_taken")


def test_an_unanswered_claim_expires_and_frees_the_hold(peer_b: FakePeer) -> None:  # noqa: F811
    pending = start(Owner.fresh())
    Claim.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.claims_expire() == (1, 0)  # its own lease is aborted with it, not left to expire
    assert (Claim.objects.get().status, Lease.objects.get().status) == ("expired", "aborted")
    assert NameRecord.objects.get().status == "released"
    assert Challenge.objects.get(id=pending.issued.challenge.id).failure_reason == "claim_expired"


def test_an_answer_is_counted_once_and_only_from_a_peer_that_was_asked(peer_b: FakePeer, peer_c: FakePeer) -> None:  # noqa: F811
    start(Owner.fresh())
    claim_id = Claim.objects.get().claim_id
    Peer.objects.filter(name="gw-c").update(enabled=False)
    late = FakePeer.fresh("gw-d")
    late.add()
    assert late.says(sync.message("claim-ack", claim_id=claim_id)) == "done"
    peer_b.says(sync.message("claim-nack", claim_id=claim_id))
    peer_b.says(sync.message("claim-ack", claim_id=claim_id))
    claim = Claim.objects.get()
    assert (claim.acks, claim.nacks, claim.status) == ([GATEWAY], [peer_b.key], "open")


def test_a_network_register_beats_a_local_hold_still_waiting_for_its_claim(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    loser, winner = Owner.fresh(), Owner.fresh()
    pending = start(loser)
    peer_b.says(peer_b.batch(peer_b.register_op(winner, "alice")))
    record = NameRecord.objects.get()
    assert (record.status, record.owner_key) == ("active", winner.key)
    assert Challenge.objects.get(id=pending.issued.challenge.id).failure_reason == "name_taken"


# -------------------------------------------------------------------------------------------- the acceptor


def test_a_claim_for_an_unknown_name_is_acked_and_leased(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    assert peer_b.says(claim_body(owner)) == "done"
    assert replies("claim-0000000001") == [("claim-ack", None)]
    lease = Lease.objects.get()
    assert (lease.name, lease.skeleton, lease.owner_key, lease.claimant, lease.status) == (
        "alice",
        skeleton("alice"),
        owner.key,
        peer_b.key,
        "live",
    )


def test_a_second_owner_is_nacked_while_the_lease_stands_and_the_same_owner_is_acked(
    peer_b: FakePeer,  # noqa: F811
    peer_c: FakePeer,  # noqa: F811
) -> None:
    owner, other = Owner.fresh(), Owner.fresh()
    peer_b.says(claim_body(owner, claim_id="claim-of-b-000001"))
    peer_c.says(claim_body(other, claim_id="claim-of-c-000001"))
    peer_c.says(claim_body(owner, claim_id="claim-of-c-000002"))
    peer_c.says(claim_body(other, "a1ice", claim_id="claim-of-c-000003"))  # a look-alike counts too
    assert replies("claim-of-c-000001") == [("claim-nack", "claimed")]
    assert replies("claim-of-c-000002") == [("claim-ack", None)]
    assert replies("claim-of-c-000003") == [("claim-nack", "claimed")]
    assert Lease.objects.count() == 1


def test_an_aborted_or_expired_lease_lets_another_owner_claim(peer_b: FakePeer, peer_c: FakePeer) -> None:  # noqa: F811
    peer_b.says(claim_body(Owner.fresh(), claim_id="claim-of-b-000001"))
    peer_b.says(sync.message("abort", claim_id="claim-of-b-000001"))
    peer_c.says(claim_body(Owner.fresh(), claim_id="claim-of-c-000001"))
    assert replies("claim-of-c-000001") == [("claim-ack", None)]
    Lease.objects.filter(claim_id="claim-of-c-000001").update(expires_at=timezone.now() - timedelta(seconds=1))
    peer_b.says(claim_body(Owner.fresh(), claim_id="claim-of-b-000002"))
    assert replies("claim-of-b-000002") == [("claim-ack", None)]


def test_a_committed_lease_keeps_refusing_other_owners(peer_b: FakePeer, peer_c: FakePeer) -> None:  # noqa: F811
    peer_b.says(claim_body(Owner.fresh(), claim_id="claim-of-b-000001"))
    peer_c.says(sync.message("commit", claim_id="claim-of-b-000001"))  # not c's lease: changes nothing
    assert Lease.objects.get().status == "live"
    peer_b.says(sync.message("commit", claim_id="claim-of-b-000001"))
    assert Lease.objects.get().status == "committed"
    peer_c.says(claim_body(Owner.fresh(), claim_id="claim-of-c-000001"))
    assert replies("claim-of-c-000001") == [("claim-nack", "claimed")]


def test_a_name_held_here_by_another_owner_is_nacked(gateway: object, peer_b: FakePeer) -> None:  # noqa: F811
    Peer.objects.update(enabled=False)
    open_mailbox(Owner.fresh(), "alice")
    Peer.objects.update(enabled=True)
    before = state()
    peer_b.says(claim_body(Owner.fresh()))
    assert replies("claim-0000000001") == [("claim-nack", "name_taken")]
    assert state() == before


def test_a_claim_from_a_stranger_is_ignored_and_answered_with_nothing(gateway: object) -> None:  # noqa: F811
    stranger = FakePeer.fresh("stranger")
    assert stranger.says(claim_body(Owner.fresh())).startswith("ignored")
    assert not Lease.objects.exists()
    assert sent_sync() == []


def test_a_malformed_claim_counts_against_the_peer_and_leases_nothing(peer_b: FakePeer) -> None:  # noqa: F811
    assert peer_b.says({"v": 1, "type": "claim", "claim_id": "x"}) == "done"
    assert Peer.objects.get().invalid_ops == 1
    assert not Lease.objects.exists()


@pytest.mark.parametrize(
    "change",
    [{"expires_at": True}, {"expires_at": 1.0e12}, {"skeleton": None}],
    ids=["expires_at-true", "expires_at-float", "skeleton-null"],
)
def test_a_claim_in_a_second_spelling_counts_against_the_peer_and_leases_nothing(
    peer_b: FakePeer,  # noqa: F811
    change: dict,
) -> None:
    assert peer_b.says({**claim_body(Owner.fresh()), **change}) == "done"

    assert Peer.objects.get().invalid_ops == 1
    assert not Lease.objects.exists()
    assert sent_sync() == []


def test_a_claim_whose_version_is_true_is_not_routed_and_changes_nothing(peer_b: FakePeer) -> None:  # noqa: F811
    assert peer_b.says({**claim_body(Owner.fresh()), "v": True}) == "ignored: ignored"

    assert Peer.objects.get().invalid_ops == 0
    assert not Lease.objects.exists()
    assert sent_sync() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")
def test_on_postgresql_two_owners_claiming_at_once_get_one_ack(gateway: object) -> None:  # noqa: F811
    peers = [FakePeer.fresh(f"gw-{i}") for i in range(6)]
    for peer in peers:
        peer.add()
    barrier = threading.Barrier(len(peers), timeout=10)
    outcomes: list[str] = []

    def claim(peer: FakePeer, index: int) -> None:
        try:
            barrier.wait()
            owner_body = claim_body(
                Owner.fresh(), "alice" if index % 2 else "a1ice", claim_id=f"claim-at-once-{index:04}"
            )
            peer.says(owner_body)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(peer, i)) for i, peer in enumerate(peers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for i in range(len(peers)):
        outcomes += [kind for kind, _ in replies(f"claim-at-once-{i:04}")]
    assert sorted(outcomes) == ["claim-ack"] + ["claim-nack"] * 5
    assert Lease.objects.filter(status="live").count() == 1
    assert json.dumps(sorted(outcomes))  # every claim got exactly one answer


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")
def test_on_postgresql_a_refusal_waiting_for_a_pickup_does_not_hold_the_name_row(peer_b: FakePeer) -> None:  # noqa: F811
    """A session pickup locks its challenge, then (the session's foreign key) the name's row: a refusal must take
    them in the same order, or the two deadlock (seen as a 500 at the pickup)."""
    owner = Owner.fresh()
    challenge_id = start(owner).issued.challenge.id
    locked, release, done = threading.Event(), threading.Event(), threading.Event()

    def pickup_holding_the_challenge() -> None:  # what a pickup's UPDATE of the challenge holds until it commits
        try:
            with transaction.atomic():
                Challenge.objects.select_for_update().get(id=challenge_id)
                locked.set()
                release.wait(timeout=20)
        finally:
            connection.close()

    def refusal() -> None:  # in one transaction, as the inbound task that handles a nack runs it
        try:
            with transaction.atomic():
                registration_services.registration_refuse(name="alice", owner_key=owner.key, code="name_taken")
        finally:
            done.set()
            connection.close()

    holder, refuser = threading.Thread(target=pickup_holding_the_challenge), threading.Thread(target=refusal)
    holder.start()
    assert locked.wait(timeout=10)
    refuser.start()
    try:
        time.sleep(0.5)  # the refusal is now waiting for the challenge
        assert not done.is_set()
        with transaction.atomic(), connection.cursor() as cursor:  # the pickup's foreign-key check on the name row
            cursor.execute("SELECT id FROM registry_namerecord WHERE name = 'alice' FOR KEY SHARE NOWAIT")
    finally:
        release.set()
        holder.join(timeout=20)
        refuser.join(timeout=20)
    assert done.is_set()
    assert Challenge.objects.get(id=challenge_id).failure_reason == "name_taken"
    assert NameRecord.objects.get(name="alice").status == "released"
