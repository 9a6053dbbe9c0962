"""The `mns` client reads the list through the user's own node and falls back to the gateway only without one."""

from pathlib import Path

import pytest

from entrypoints import services
from federation.models import Peer
from mns_client.cli import main
from mns_client.config import Home
from mns_client.protocol.errors import MNSError
from mns_client.protocol.rpc import MinimaRPC
from mns_client.sdk import Client
from simnet import SimNetwork
from testsupport.nodes import chain_timeout

pytestmark = pytest.mark.django_db


def _client(net: SimNetwork, home: Path, *, seen: int = 0) -> Client:
    rpc, wait = MinimaRPC(net.nodes[0].rpc_url), chain_timeout(20)
    setup = services.setup_run(rpc=rpc, wait_seconds=wait, poll=0.05, say=lambda s: None)[0]
    store = Home(home)
    store.ensure()
    settings = store.settings()
    settings.entry_points = {"tokenid": setup.tokenid, "owner": setup.owner_key, "seq": seen}
    store.save_settings(settings)
    # No gateway answers at this address: a test fails loudly if the client asks it.
    return Client(rpc=MinimaRPC(net.nodes[1].rpc_url), gateway_url="http://127.0.0.1:9", home=store)


def test_the_client_picks_an_entry_of_the_newest_list_on_chain_and_remembers_its_seq(
    net: SimNetwork, publisher: MinimaRPC, peers: list[Peer], tmp_path: Path
) -> None:
    client = _client(net, tmp_path)

    answer = client.entry_points()

    assert answer["source"] == "chain"
    assert answer["seq"] == 1
    assert answer["picked"] in answer["entries"]
    assert {e["identity_key"] for e in answer["entries"]} <= {p.identity_key for p in peers[:5]}
    assert Home(tmp_path).settings().entry_points["seq"] == 1


def test_a_list_older_than_one_already_seen_is_refused_and_the_gateway_asked(
    net: SimNetwork, publisher: MinimaRPC, peers: list[Peer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(net, tmp_path, seen=5)

    with pytest.raises(MNSError) as caught:
        client.entry_points()

    assert caught.value.code == "gateway_unreachable"  # the fallback, since the chain had nothing acceptable
    assert "ignored (stale): seq 1 is lower than 5, already seen" in caplog.text
    assert Home(tmp_path).settings().entry_points["seq"] == 5


def test_mns_entry_points_prints_the_pick(
    net: SimNetwork, publisher: MinimaRPC, peers: list[Peer], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    client = _client(net, tmp_path)
    settings = client.home.settings()
    settings.node_url, settings.gateway = net.nodes[1].rpc_url, "http://127.0.0.1:9"
    client.home.save_settings(settings)

    code = main(["--home", str(tmp_path), "entry-points"])

    out = capsys.readouterr().out
    assert code == 0
    assert "3 entry point(s), list #1 from the chain; picked:" in out
