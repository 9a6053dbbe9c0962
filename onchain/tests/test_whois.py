"""`mns whois` shows a name's standing on chain, read and verified through the user's own node: held there only,
or held there too and agreeing (or not) with the gateway's owner. The gateway is served by the live server on the
test database; the chain is simnet's, the name registered on it as Minima's MNS does."""

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailboxes.tests.support import Owner
from maxima.models import NodeState
from mns_client.cli import main
from onchain.tests.test_names_on_chain import carol_on_chain, register_and_confirm
from simnet import SimNetwork

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def chain(settings: Any, gateway: NodeState) -> Iterator[SimNetwork]:
    with carol_on_chain() as net:
        settings.MINIMA_RPC_URL = net.nodes[0].rpc_url
        yield net


def whois(net: SimNetwork, gateway_url: str, home: Path, name: str, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["whois", name, "--gateway", gateway_url, "--node", net.nodes[2].rpc_url, "--home", str(home), *extra]
    return main(argv, stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_whois_of_a_name_held_only_on_chain_says_whose_it_is(chain: SimNetwork, live_server: Any, tmp_path: Path):
    code, out, err = whois(chain, live_server.url, tmp_path, "carol", "--json")
    assert (code, err) == (0, "")
    answer = json.loads(out)
    assert answer["status"] == "on_chain_only"
    assert answer["on_chain"]["holder"] == chain.nodes[1].wallet_keys[0]
    assert answer["on_chain"]["agrees"] is False


def test_whois_of_a_name_on_neither_fails_as_before(chain: SimNetwork, live_server: Any, tmp_path: Path):
    code, out, _ = whois(chain, live_server.url, tmp_path, "nobody", "--json")
    assert (code, json.loads(out)["error"]) == (4, "name_not_found")


def test_whois_says_the_gateways_owner_proved_the_on_chain_key(
    chain: SimNetwork, live_server: Any, tmp_path: Path, bob: Owner
):
    register_and_confirm(bob, "carol", chain.nodes[1])
    code, out, err = whois(chain, live_server.url, tmp_path, "carol")
    assert (code, err) == (0, "")
    assert "verified here" in out
    assert "on chain   held by 0x" in out
    assert "agrees: the owner above proved that key" in out
