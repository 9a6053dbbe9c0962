"""The roots the gateways sign: sent to every peer, kept as evidence, the majority's agreed root for the chain, and
every gateway whose root disagrees with the majority's or the chain's named in health and in the admin."""

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from core import health
from entrypoints.models import Setup
from entrypoints.services import _bulletin_of, publication_start
from federation.tests.support import sent_sync
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.crypto import maxsigner
from mns_client.protocol.transparency import Root, SignedRoot
from registry.tests.support import Owner, register
from transparency import selectors, services
from transparency.models import DirectoryRoot, PeerRoot
from transparency.tests.conftest import SigningPeer

pytestmark = pytest.mark.django_db(transaction=True)

CUTOFF = 1_794_999_600_000  # a whole hour (MNS_TRANSPARENCY_EVERY's default), in ms


def root_message(peer: SigningPeer, root: Root, *, signature: bytes | None = None) -> dict[str, Any]:
    signature = peer.sign(root.canonical()) if signature is None else signature
    return {
        "v": 1,
        "type": "root",
        "cutoff": root.cutoff,
        "size": root.size,
        "root": to_hex(root.root),
        "signature": to_hex(signature),
    }


def my_root(me: Owner, cutoff: int = CUTOFF) -> Root:
    row = services.root_compute(cutoff=cutoff, sign=maxsigner(me.private_key), signer_key=me.key)
    return Root(row.cutoff, row.size, bytes(row.root))


def health_body() -> dict[str, Any]:
    health._memo.clear()
    return json.loads(Client().get("/api/v1/health").content)


def test_a_computed_root_is_sent_signed_to_every_peer(me: Owner, peers: list[SigningPeer]) -> None:
    root = my_root(me)

    sent = sent_sync("root")

    assert sorted(dest for dest, _ in sent) == sorted(p.peer.address for p in peers)
    for _dest, body in sent:
        assert body == {
            "v": 1,
            "type": "root",
            "cutoff": CUTOFF,
            "size": 0,
            "root": to_hex(root.root),
            "signature": to_hex(maxsigner(me.private_key)(root.canonical())),
        }


def test_a_peers_signed_root_is_kept_and_one_whose_signature_does_not_verify_is_not(
    me: Owner, peers: list[SigningPeer]
) -> None:
    b, c = peers
    root = Root(CUTOFF, 0, b"\x05" * 32)

    assert b.peer.says(root_message(b, root)) == "done"
    assert b.peer.says(root_message(b, root)) == "done"  # again: kept once
    assert c.peer.says(root_message(c, root, signature=b.sign(root.canonical()))) == "done"

    assert [(row.peer_name, bytes(row.root)) for row in PeerRoot.objects.all()] == [("gw-b", root.root)]
    assert c.peer.add().invalid_ops == 1


def test_a_root_at_a_cutoff_to_come_or_between_cutoffs_is_refused_and_counted(
    me: Owner, peers: list[SigningPeer]
) -> None:
    b, _ = peers
    to_come = services.cutoff_now() + 3_600_000
    for cutoff in (to_come, CUTOFF + 1):
        assert b.peer.says(root_message(b, Root(cutoff, 0, b"\x05" * 32))) == "done"

    assert PeerRoot.objects.count() == 0
    assert b.peer.add().invalid_ops == 2


def test_a_root_message_with_a_bad_field_is_counted_against_the_peer_and_keeps_nothing(
    me: Owner, peers: list[SigningPeer]
) -> None:
    b, _ = peers
    body = root_message(b, Root(CUTOFF, 0, b"\x05" * 32)) | {"root": "0x1234"}

    assert b.peer.says(body) == "done"

    assert PeerRoot.objects.count() == 0
    assert b.peer.add().invalid_ops == 1


def test_the_agreed_root_is_the_newest_one_a_majority_signed_with_its_signers(
    me: Owner, peers: list[SigningPeer], alice: Owner
) -> None:
    b, c = peers
    older = my_root(me, CUTOFF)
    b.peer.says(root_message(b, older))
    register(alice, "alice")
    newer = my_root(me, CUTOFF + 300 * 3_600_000)  # after alice's statement, before now
    c.peer.says(root_message(c, Root(newer.cutoff, newer.size, b"\x09" * 32)))  # no majority at the newer one

    agreed = selectors.agreed_root()

    assert agreed is not None
    assert agreed.root == older
    assert sorted(agreed.verified_signers()) == sorted([me.key, b.peer.key])
    assert SignedRoot.from_dict(agreed.to_dict()) == agreed
    b.peer.says(root_message(b, newer))
    assert selectors.agreed_root().root == newer
    c.peer.says(root_message(c, older))  # all three signed the older one now: a majority's signatures suffice
    assert len(selectors.agreed_at(older.cutoff).signers) == 2


def test_a_peer_whose_root_differs_from_the_majoritys_is_named_in_health_with_the_evidence_kept(
    me: Owner, peers: list[SigningPeer]
) -> None:
    b, c = peers
    root = my_root(me)
    b.peer.says(root_message(b, root))
    assert health_body()["checks"]["transparency"]["ok"] is True
    forged = Root(CUTOFF, 1, b"\x07" * 32)

    c.peer.says(root_message(c, forged))
    body = health_body()

    assert body["checks"]["transparency"]["ok"] is False
    assert "gw-c" in body["checks"]["transparency"]["detail"]
    evidence = PeerRoot.objects.get(peer_name="gw-c")
    assert [(f["gateway"], f["why"], f["evidence_id"]) for f in body["transparency"]["flagged"]] == [
        ("gw-c", "majority", evidence.id)
    ]
    assert evidence.message == root_message(c, forged)
    assert body["status"] == "degraded"


def test_a_gateway_in_the_minority_says_so_itself(me: Owner, peers: list[SigningPeer]) -> None:
    b, c = peers
    my_root(me)
    other = Root(CUTOFF, 1, b"\x07" * 32)
    b.peer.says(root_message(b, other))
    c.peer.says(root_message(c, other))

    body = health_body()

    assert body["checks"]["transparency"]["ok"] is False
    assert [f["detail"] for f in body["transparency"]["flagged"]] == [
        f"this gateway is in the minority: its root at {CUTOFF} differs from the majority's"
    ]


def test_a_peer_whose_root_differs_from_the_chains_is_flagged(me: Owner, peers: list[SigningPeer]) -> None:
    b, _ = peers
    root = my_root(me)
    services.chain_root_seen(bulletin_seq=1, signed=SignedRoot(root=root, signers=()))
    b.peer.says(root_message(b, Root(CUTOFF, 1, b"\x07" * 32)))

    flagged = selectors.disagreements()

    assert [(d.gateway, d.why) for d in flagged] == [("gw-b", "chain")]


def test_the_admin_lists_the_peers_roots_and_names_the_disagreeing_gateway(me: Owner, peers: list[SigningPeer]) -> None:
    b, c = peers
    root = my_root(me)
    b.peer.says(root_message(b, root))
    c.peer.says(root_message(c, Root(CUTOFF, 1, b"\x07" * 32)))
    admin = get_user_model().objects.create_superuser("admin", password="x")
    client = Client()
    client.force_login(admin)

    page = client.get("/admin/transparency/peerroot/").content.decode()

    evidence = PeerRoot.objects.get(peer_name="gw-c")
    assert f"gw-c signed a root at {CUTOFF}" in page.lower()
    assert f"(evidence: peer root #{evidence.id})" in page
    assert DirectoryRoot.objects.count() == 1


def test_the_publishers_next_bulletin_carries_the_agreed_root_and_its_signers(
    me: Owner, peers: list[SigningPeer], settings: Any
) -> None:
    b, _ = peers
    root = my_root(me)
    b.peer.says(root_message(b, root))
    settings.MNS_PUBLISHER = True
    settings.MNS_MAXIMA_ADDRESS = f"MAX#{me.key}#{b.peer.address}"  # a permanent address: the one entry
    Setup.objects.create(pk=1, owner_key="0x0E", tokenid="0x6E", script_address="0x1D", first_coinid="0xC1",
                         completed_at="2026-01-01T00:00:00Z")  # fmt: skip

    publication = publication_start()

    carried = SignedRoot.from_dict(publication.bulletin["root"])
    assert carried.root == root
    assert sorted(carried.verified_signers()) == sorted([me.key, b.peer.key])
    assert _bulletin_of(publication).root == carried  # what the rotation writes on chain
