"""What real nodes taught (issue 17, points 4 and 5): setup on a fresh chain waits for coins deep enough to spend,
and a list is never published without a permanent address or with no entry: refused, saying what to do, and a
refused publication is kept in the history as refused, never sent."""

from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from core.errors import DomainError
from entrypoints import services
from entrypoints.models import Publication, Setup
from federation.models import Peer
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork

pytestmark = pytest.mark.django_db


def _set_up(rpc: MinimaRPC) -> Setup:
    setup, _ = services.setup_run(rpc=rpc, wait_seconds=30, poll=0.05, say=lambda line: None)
    return setup


def _only_minima(rpc: MinimaRPC) -> bool:
    return [t["tokenid"] for t in rpc.tokens()] == ["0x00"]


@pytest.fixture
def slow_net() -> Iterator[SimNetwork]:
    """A fresh chain with a block a second: 3 confirmations take 3 s, long enough for progress lines."""
    with SimNetwork(nodes=1, block_interval=1.0) as network:
        yield network


def test_setup_on_a_fresh_chain_waits_for_coins_deep_enough_and_succeeds_in_one_run(
    slow_net: SimNetwork, peers: list[Peer], settings: object
) -> None:
    settings.MINIMA_RPC_URL = slow_net.nodes[0].rpc_url
    settings.MNS_PUBLISHER = True
    settings.MNS_MAXIMA_ADDRESS = f"MAX#{slow_net.nodes[0].publickey_hex}#{slow_net.nodes[0].address}"
    rpc = MinimaRPC(slow_net.nodes[0].rpc_url, timeout=10)
    said: list[str] = []

    setup, done = services.setup_run(rpc=rpc, wait_seconds=60, poll=0.1, say=said.append)

    assert done == [
        "owner key from getaddress",
        "token created (its id is provisional until mined)",
        "token mined: its final id",
        "bulletin script registered and tracked",
        "first bulletin coin sent (seq 1)",
    ]
    assert setup.first_coinid
    assert Publication.objects.get(seq=1).status == Publication.Status.CONFIRMED
    waits = [line for line in said if line.startswith("waiting for 3 confirmations: ")]
    assert waits  # the token is spendable 3 blocks after it is mined: a wait of at least 3 s, said
    assert set(waits) <= {f"waiting for 3 confirmations: {d}/3…" for d in range(3)}


def test_setup_without_a_permanent_address_is_refused_naming_the_fix_and_writes_nothing(
    publisher: MinimaRPC, peers: list[Peer], settings: object
) -> None:
    settings.MNS_MAXIMA_ADDRESS = ""

    with pytest.raises(DomainError) as caught:
        _set_up(publisher)

    assert caught.value.code == "no_permanent_address"
    assert "maxextra action:addpermanent" in caught.value.detail
    assert "MNS_MAXIMA_ADDRESS=MAX#" in caught.value.detail
    assert Setup.objects.count() == 0
    assert Publication.objects.count() == 0
    assert _only_minima(publisher)


def test_setup_with_no_entry_to_publish_is_refused_and_writes_nothing(publisher: MinimaRPC) -> None:
    with pytest.raises(DomainError) as caught:
        _set_up(publisher)

    assert caught.value.code == "no_entries"
    assert "an empty list is never published" in caught.value.detail
    assert Setup.objects.count() == 0
    assert Publication.objects.count() == 0
    assert _only_minima(publisher)


def test_publishing_without_a_permanent_address_is_refused_and_recorded_as_refused_not_sent(
    publisher: MinimaRPC, peers: list[Peer], settings: object
) -> None:
    setup = _set_up(publisher)
    settings.MNS_MAXIMA_ADDRESS = ""

    with pytest.raises(DomainError) as caught:
        services.publish_now(rpc=publisher)

    refused = Publication.objects.get(seq=2)
    assert caught.value.code == "no_permanent_address"
    assert (refused.status, refused.attempts, refused.txn_id, refused.coinid) == ("refused", 0, "", "")
    assert "maxextra action:addpermanent" in refused.error
    assert services.read_chain(rpc=publisher, setup=setup).bulletin.seq == 1


def test_an_empty_list_is_never_published_it_is_recorded_as_refused_and_the_next_list_follows_it(
    publisher: MinimaRPC, peers: list[Peer], admin_client: Client, net: SimNetwork
) -> None:
    setup = _set_up(publisher)
    Peer.objects.update(paused=True)

    with pytest.raises(CommandError, match="not published: No entry to publish"):
        call_command("entrypoints_publish", "--once")
    Peer.objects.update(paused=False)
    net.wait_blocks(3)
    later = services.publish_now(rpc=publisher)

    refused = Publication.objects.get(seq=2)
    assert (refused.status, refused.entries, refused.attempts, refused.txn_id) == ("refused", [], 0, "")
    assert refused.error.startswith("No entry to publish")
    assert (later.seq, later.status, len(later.entries)) == (3, Publication.Status.SENT, 3)
    assert later.input_coinid == setup.first_coinid
    assert (
        '<td class="field-status">Refused</td>' in admin_client.get("/admin/entrypoints/publication/").content.decode()
    )
