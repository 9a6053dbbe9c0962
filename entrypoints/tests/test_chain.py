"""Against simnet's chain: setup, rotations read back by another node, a non-owner refused, a node outage."""

import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import pytest
from django.utils import timezone

from entrypoints import services
from entrypoints.models import Publication, Setup
from federation.models import Peer
from maxima.models import NodeState
from mns_client.protocol import sync
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.entrypoints import ChainConfig, read_from_node
from mns_client.protocol.errors import RPCError
from mns_client.protocol.rpc import MinimaRPC
from mns_client.protocol.transparency import Root
from simnet import SimNetwork
from testsupport.nodes import chain_timeout, interop_mode, simnet_only
from transparency import services as transparency
from transparency.models import ChainRoot

pytestmark = pytest.mark.django_db


def _until(probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + chain_timeout(timeout)
    while not (found := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def _set_up(rpc: MinimaRPC) -> Setup:
    setup, _ = services.setup_run(rpc=rpc, wait_seconds=chain_timeout(20), poll=0.05, say=lambda line: None)
    return setup


def _confirmed(rpc: MinimaRPC, seq: int) -> Publication:
    def probe() -> Publication | None:
        services.publications_check(rpc=rpc)
        return Publication.objects.filter(seq=seq, status=Publication.Status.CONFIRMED).first()

    return _until(probe)


def test_setup_makes_the_token_script_and_first_coin_and_a_second_run_does_nothing_new(
    net: SimNetwork, publisher: MinimaRPC, peers: list[Peer]
) -> None:
    setup = _set_up(publisher)
    tokens_before = len(publisher.tokens())

    again, done = services.setup_run(rpc=publisher, wait_seconds=5, poll=0.05, say=lambda line: None)

    assert setup.tokenid
    assert setup.provisional_tokenid
    assert setup.tokenid != setup.provisional_tokenid
    # a real node's getaddress picks one of its default addresses at random: the owner is one of its wallet's keys
    assert [key["publickey"] for key in publisher.keys(publickey=setup.owner_key)] == [setup.owner_key]
    assert [s["step"] for s in setup.steps] == [
        "owner key from getaddress",
        "token created (its id is provisional until mined)",
        "token mined: its final id",
        "bulletin script registered and tracked",
        "first bulletin coin sent (seq 1)",
    ]
    first = Publication.objects.get(seq=1)
    assert first.status == Publication.Status.CONFIRMED
    assert first.coinid == setup.first_coinid
    assert done == []
    assert again.steps == setup.steps
    assert len(publisher.tokens()) == tokens_before
    assert Publication.objects.count() == 1
    assert len(publisher.coins(address=setup.script_address, tokenid=setup.tokenid)) == 1


def test_three_rotations_are_each_seen_by_a_reader_node(
    net: SimNetwork, publisher: MinimaRPC, peers: list[Peer]
) -> None:
    setup = _set_up(publisher)
    reader, config = MinimaRPC(net.nodes[1].rpc_url), ChainConfig(tokenid=setup.tokenid, owner=setup.owner_key)
    healthy = {p.identity_key for p in peers[:5]}
    # the first bulletin was confirmed on the publisher's node; a real reader node sees that block a moment later
    seen = [_until(lambda: (r := read_from_node(reader, config)) and r.bulletin.seq == 1 and r)]

    for round_ in range(3):
        sent = services.publish_now(rpc=publisher, rng=random.Random(round_))
        confirmed = _confirmed(publisher, sent.seq)  # sent by the check once the coin is deep enough, then read back
        reading = _until(lambda seq=sent.seq: (r := read_from_node(reader, config)) and r.bulletin.seq == seq and r)
        assert reading.bulletin.to_dict() == confirmed.bulletin
        assert reading.coinid == confirmed.coinid
        assert reading.block == confirmed.block
        seen.append(reading)

    assert [r.bulletin.seq for r in seen] == [1, 2, 3, 4]
    for reading in seen[1:]:
        keys = {e.identity_key for e in reading.bulletin.entries}
        assert len(keys) == 3
        assert keys <= healthy
    assert len(publisher.coins(address=setup.script_address, tokenid=setup.tokenid)) == 1  # one live bulletin


def test_a_rotation_carries_the_directory_root_signed_by_the_nodes_and_a_reader_node_verifies_it(
    net: SimNetwork, publisher: MinimaRPC
) -> None:
    # Node 0 is this gateway's: it signs its root with ``maxsign``. Node 1 plays a peer gateway that signed the same
    # root with its own node. In interop mode both signatures are made by real nodes, and read back from a real chain.
    gateway, other = net.nodes[0], net.nodes[1]
    NodeState.objects.create(pk=1, reachable=True, publickey=gateway.publickey_hex)
    peer = Peer.objects.create(
        name="gw-b",
        identity_key=other.publickey_hex,
        address=f"MAX#{other.publickey_hex}#{gateway.address}",
        permanent=True,
        api_url="https://gw-b.example/api/v1/",
        last_heard_at=timezone.now(),
    )
    setup = _set_up(publisher)
    reader, config = MinimaRPC(other.rpc_url, timeout=10), ChainConfig(tokenid=setup.tokenid, owner=setup.owner_key)
    mine = transparency.root_compute(
        cutoff=transparency.cutoff_now(), sign=publisher.maxsign, signer_key=gateway.publickey_hex
    )
    root = Root(cutoff=mine.cutoff, size=mine.size, root=bytes(mine.root))
    body = sync.message(
        "root",
        cutoff=root.cutoff,
        size=root.size,
        root=to_hex(root.root),
        signature=to_hex(reader.maxsign(root.canonical())),
    )
    sync.check(body)
    assert transparency.root_received(peer=peer, body=body) is not None  # node 1's signature verified here

    sent = services.publish_now(rpc=publisher)
    _confirmed(publisher, sent.seq)
    reading = _until(lambda: (r := read_from_node(reader, config)) and r.bulletin.seq == sent.seq and r)

    carried = reading.bulletin.root
    assert carried is not None
    assert carried.root == root
    assert sorted(carried.verified_signers()) == sorted([gateway.publickey_hex, other.publickey_hex])
    for signer in carried.signers:  # the reader's own node agrees with the client's check of each signature
        assert reader.maxverify(data=root.canonical(), publickey=from_hex(signer.key), signature=signer.signature)
    forged = bytes([root.canonical()[0] ^ 1]) + root.canonical()[1:]
    assert not reader.maxverify(
        data=forged, publickey=from_hex(gateway.publickey_hex), signature=carried.signers[0].signature
    )
    assert ChainRoot.objects.get(bulletin_seq=sent.seq).root == root.root  # the publisher kept what it put on chain


def test_a_rotation_waits_until_the_bulletin_coin_is_deep_enough_to_spend(
    net: SimNetwork, publisher: MinimaRPC, peers: list[Peer], settings: object
) -> None:
    setup = _set_up(publisher)
    live = services.read_chain(rpc=publisher, setup=setup)
    settings.MNS_CONFIRMATIONS = 100  # surely deeper than the coin is now

    early = services.publish_now(rpc=publisher)
    settings.MNS_CONFIRMATIONS = 3
    net.wait_blocks(3)
    confirmed = _confirmed(publisher, 2)

    assert (early.status, early.attempts, early.txn_id, early.error) == (Publication.Status.PENDING, 0, "", "")
    assert confirmed.input_coinid == live.coinid
    assert confirmed.attempts == 1


def test_a_non_owner_cannot_rewrite_the_bulletin(net: SimNetwork, publisher: MinimaRPC, peers: list[Peer]) -> None:
    setup = _set_up(publisher)
    intruder = MinimaRPC(net.nodes[1].rpc_url)
    intruder.newscript(script=setup.script)
    (coin,) = intruder.coins(address=setup.script_address, tokenid=setup.tokenid)
    forged = {0: setup.owner_key, 1: "0x" + b'{"v":1}'.hex(), 2: "99"}

    # Simnet refuses it in the reply; a real node answers status:true, logs the script failure and drops it.
    refused = nullcontext() if interop_mode() else pytest.raises(RPCError, match="scripts or signatures failed")
    with refused:
        intruder.txn_rotate(
            txn_id="forge",
            coinid=coin["coinid"],
            address=setup.script_address,
            tokenid=setup.tokenid,
            amount=1,
            state=forged,
            owner_publickey=intruder.getaddress()["publickey"],
        )
    net.wait_blocks(2)

    (still,) = intruder.coins(address=setup.script_address, tokenid=setup.tokenid)
    assert still["coinid"] == coin["coinid"]
    reading = read_from_node(intruder, ChainConfig(tokenid=setup.tokenid, owner=setup.owner_key))
    assert reading is not None
    assert reading.bulletin.seq == 1


@simnet_only("stops and restarts the publishing node")
def test_a_publication_whose_node_is_down_is_retried_and_confirmed_later(
    net: SimNetwork, publisher: MinimaRPC, peers: list[Peer], settings: object
) -> None:
    settings.MNS_ENTRYPOINTS_RETRY_SECONDS = 1
    setup = _set_up(publisher)
    net.nodes[0].stop()
    try:
        failed = services.publish_now(rpc=publisher)
        again = services.publish_now(rpc=publisher)  # the next period retries it, it does not make seq 3
    finally:
        net.nodes[0].start()

    assert failed.status == Publication.Status.FAILED
    assert failed.seq == 2
    assert "node" in failed.error
    assert failed.next_attempt_at is not None
    assert again.pk == failed.pk
    assert Publication.objects.count() == 2
    time.sleep(1.1)
    confirmed = _confirmed(publisher, 2)
    assert confirmed.attempts >= 2
    assert confirmed.error == ""
    (coin,) = publisher.coins(address=setup.script_address, tokenid=setup.tokenid)
    assert coin["coinid"] == confirmed.coinid


def test_a_rotation_whose_reply_was_lost_is_adopted_not_repeated(
    net: SimNetwork, publisher: MinimaRPC, peers: list[Peer]
) -> None:
    setup = _set_up(publisher)
    publication = services.publication_start()
    live = services.read_chain(rpc=publisher, setup=setup)
    bulletin = services._bulletin_of(publication)
    publisher.txn_rotate(  # the batch went through, but the gateway never heard back
        txn_id="lost",
        coinid=live.coinid,
        address=setup.script_address,
        tokenid=setup.tokenid,
        amount=1,
        state=bulletin.state(setup.owner_key),
        owner_publickey=setup.owner_key,
    )
    net.wait_blocks(2)

    assert services.publication_send(publication_id=publication.pk, rpc=publisher) is True
    confirmed = _confirmed(publisher, publication.seq)

    assert confirmed.attempts == 0
    assert confirmed.txn_id == ""
    assert len(publisher.coins(address=setup.script_address, tokenid=setup.tokenid)) == 1


def test_a_gateway_without_mns_publisher_does_not_publish(net: SimNetwork, publisher: MinimaRPC, settings: object):
    settings.MNS_PUBLISHER = False

    with pytest.raises(Exception, match="does not publish"):
        services.publication_start()

    assert Publication.objects.count() == 0
