"""Reply addresses: how the client tells the gateway to reach the user's node (direct, contact, max), and how
``auto`` finds out on simnet nodes that can and cannot be reached directly."""

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from mns_client.config import ConfigError, Home, Settings
from mns_client.protocol.codecs import MaximaAddress, PermanentAddress
from mns_client.protocol.rpc import MinimaRPC
from mns_client.reply import detect, reply_address
from mns_client.sdk import Client
from simnet import SimNetwork


@pytest.fixture(scope="module")
def net() -> Iterator[SimNetwork]:
    """Node 0 is reachable and hosts node 1, which cannot be reached directly."""
    with SimNetwork(nodes=2, block_interval=0.5, unreachable=[1]) as network:
        yield network


def test_a_node_without_a_maxima_host_is_answered_directly(net: SimNetwork) -> None:
    rpc = MinimaRPC(net.nodes[0].rpc_url)

    assert detect(rpc, rpc.maxima_info()) == "direct"


def test_a_node_whose_p2pidentity_does_not_answer_is_answered_through_its_hosts_contact_address(
    net: SimNetwork,
) -> None:
    rpc = MinimaRPC(net.nodes[1].rpc_url)
    info = rpc.maxima_info()

    via = detect(rpc, info)

    assert via == "contact"
    contact = MaximaAddress.parse(reply_address(info, via))
    assert (contact.host, contact.port) == (net.nodes[0].host, net.nodes[0].p2p_port)


def test_a_node_advertising_a_private_host_to_a_public_gateway_is_answered_through_its_contact(
    net: SimNetwork,
) -> None:
    rpc = MinimaRPC(net.nodes[1].rpc_url)
    info = rpc.maxima_info()
    key = MaximaAddress.parse(info.p2pidentity).key
    behind_nat = replace(info, p2pidentity=str(MaximaAddress(key, "10.255.255.1", 12001)))  # fixture 180
    public_gateway = str(MaximaAddress(key, "203.0.113.7", 9001))

    assert detect(rpc, behind_nat, gateway_address=public_gateway) == "contact"


def test_the_max_reply_address_names_the_identity_key_and_the_nodes_mls(net: SimNetwork) -> None:
    info = MinimaRPC(net.nodes[1].rpc_url).maxima_info()

    address = PermanentAddress.parse(reply_address(info, "max"))

    assert address.identity == info.publickey
    assert str(address.mls) == net.nodes[0].address


def test_auto_is_measured_once_per_node_address_and_kept_in_the_settings(net: SimNetwork, tmp_path: Path) -> None:
    home = Home(tmp_path / "mns")
    client = Client(rpc=MinimaRPC(net.nodes[1].rpc_url), gateway_url="http://127.0.0.1:9", home=home)

    via = client.reply_route()

    assert via == "contact"
    assert home.settings().reachability == {"p2pidentity": net.nodes[1].address, "via": "contact"}
    assert client.reply_address() == MinimaRPC(net.nodes[1].rpc_url).maxima_info().contact


def test_a_chosen_reply_route_is_used_as_it_is(net: SimNetwork, tmp_path: Path) -> None:
    home = Home(tmp_path / "mns")
    home.save_settings(Settings(reply_via="direct"))
    client = Client(rpc=MinimaRPC(net.nodes[1].rpc_url), gateway_url="http://127.0.0.1:9", home=home)

    assert client.reply_address() == net.nodes[1].address
    assert home.settings().reachability == {}


def test_settings_with_an_unknown_reply_route_are_refused() -> None:
    with pytest.raises(ConfigError, match="reply_via"):
        Settings.from_dict({"reply_via": "pigeon"})
