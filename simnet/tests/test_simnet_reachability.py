"""Where nodes are: a node that cannot be reached directly (fixtures 180-188) and ports that move on a restart."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mns_client.protocol.codecs import MaximaAddress, to_hex
from simnet import SimNetwork, SimNode
from simnet.testing import WebhookReceiver, rpc


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    """Node 0 is the host (as A in the fixtures), node 1 a reachable node (B), node 2 one behind NAT (D)."""
    with SimNetwork(nodes=3, block_interval=0.5, unreachable=[2]) as network:
        yield network


def send(node: SimNode, recipient: str, data: str = "0x0102") -> dict:
    reply = rpc(node.rpc_url, f"maxima action:send {recipient} application:mns data:{data}").json()
    assert reply["status"] is True, reply
    return reply["response"]


def wait_for_contact(node: SimNode, publickey: str, timeout: float = 10.0) -> None:
    """The contact exchange is asynchronous: wait until ``node`` lists ``publickey`` with an address."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = rpc(node.rpc_url, "maxcontacts").json()["response"]["contacts"]
        if any(c["publickey"] == publickey and c["currentaddress"] for c in listed):
            return
        time.sleep(0.05)
    raise TimeoutError(f"node {node.index} never listed the contact")


def info(node: SimNode) -> dict:
    return rpc(node.rpc_url, "maxima").json()["response"]


def test_a_node_behind_a_host_advertises_a_dead_p2pidentity_its_contact_at_the_host_and_the_host_as_mls(
    net: SimNetwork,
) -> None:
    host, _, hidden = net.nodes

    shown = info(hidden)

    p2p, contact = MaximaAddress.parse(shown["p2pidentity"]), MaximaAddress.parse(shown["contact"])
    assert shown["localidentity"] == shown["p2pidentity"]
    assert p2p.port == hidden.advertised_port != hidden.p2p_port
    assert (contact.host, contact.port) == (host.host, host.p2p_port)
    assert contact.key != p2p.key
    assert shown["mls"] == host.address
    (entry,) = rpc(hidden.rpc_url, "maxima action:hosts").json()["response"]["hosts"]
    assert entry["host"] == f"{host.host}:{host.p2p_port}"
    assert entry["public"] == to_hex(contact.key)
    assert entry["connected"] is True
    assert entry["address"] == shown["contact"]
    assert list(entry) == ["host", "public", "lastseen", "connected", "address"]  # fixture 181's order


def test_a_direct_send_to_a_node_behind_a_host_fails_and_its_contact_address_delivers(net: SimNetwork) -> None:
    _, sender, hidden = net.nodes
    with WebhookReceiver() as hooks:
        rpc(hidden.rpc_url, f"webhooks action:add hook:{hooks.url()} filter:MAXIMA")

        direct = send(sender, f"to:{hidden.address}")
        relayed = send(sender, f"to:{info(hidden)['contact']}", "0x0A0B")

        (event,) = hooks.wait_for(1)
    assert direct["delivered"] is False
    assert direct["error"] == "java.net.ConnectException: Connection refused"
    assert relayed["delivered"] is True
    assert event.json()["data"]["data"] == "0x0A0B"
    assert event.json()["data"]["from"] == sender.publickey_hex


def test_a_max_address_at_the_host_reaches_a_node_behind_it_once_the_host_made_it_permanent(
    net: SimNetwork,
) -> None:
    host, sender, hidden = net.nodes
    permanent = f"MAX#{hidden.publickey_hex}#{host.address}"
    refused = rpc(sender.rpc_url, f"maxextra action:getaddress maxaddress:{permanent}").json()["response"]
    rpc(host.rpc_url, f"maxextra action:addpermanent publickey:{hidden.publickey_hex}")
    with WebhookReceiver() as hooks:
        rpc(hidden.rpc_url, f"webhooks action:add hook:{hooks.url()} filter:MAXIMA")

        sent = send(sender, f"to:{permanent}")

        hooks.wait_for(1)
    assert refused["success"] is False
    assert sent["delivered"] is True


def test_publickey_sends_reach_a_node_behind_a_host_once_it_is_a_contact(net: SimNetwork) -> None:
    _, sender, hidden = net.nodes
    before = rpc(sender.rpc_url, f"maxima action:send publickey:{hidden.publickey_hex} application:mns data:0x01")
    rpc(sender.rpc_url, f"maxcontacts action:add contact:{info(hidden)['contact']}")
    wait_for_contact(sender, hidden.publickey_hex)
    with WebhookReceiver() as hooks:
        rpc(hidden.rpc_url, f"webhooks action:add hook:{hooks.url()} filter:MAXIMA")

        after = send(sender, f"publickey:{hidden.publickey_hex}")

        hooks.wait_for(1)
    assert before.json()["error"] == f"No Contact found for publickey : {hidden.publickey_hex}"
    assert after["delivered"] is True


def test_a_silent_advertised_port_makes_a_direct_send_wait_for_the_read_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("simnet.p2p.READ_TIMEOUT", 0.3)  # the real node's 20 s, shortened
    with SimNetwork(nodes=2, block_interval=0.5, unreachable=[1], unreachable_mode="silent") as network:
        sender, hidden = network.nodes

        direct = send(sender, f"to:{hidden.address}")

    assert direct["delivered"] is False
    assert direct["error"] == "java.net.SocketTimeoutException: Read timed out"


def test_a_network_restarted_with_its_state_keeps_its_keys_and_moves_its_addresses(tmp_path: Path) -> None:
    with SimNetwork(nodes=2, block_interval=0.5, state_dir=tmp_path) as first:
        before = [(node.publickey_hex, node.address) for node in first.nodes]

    with SimNetwork(nodes=2, block_interval=0.5, state_dir=tmp_path) as second:
        after = [(node.publickey_hex, node.address) for node in second.nodes]
        shown = info(second.nodes[1])

    assert [key for key, _ in after] == [key for key, _ in before]
    assert all(new != old for (_, new), (_, old) in zip(after, before, strict=True))
    assert [MaximaAddress.parse(new).key for _, new in after] == [MaximaAddress.parse(old).key for _, old in before]
    assert shown["p2pidentity"] == after[1][1]


def test_a_network_restarted_on_its_base_port_keeps_its_addresses(tmp_path: Path) -> None:
    with SimNetwork(nodes=1, block_interval=0.5, state_dir=tmp_path) as first:
        base, address = first.base_port, first.nodes[0].address

    with SimNetwork(nodes=1, block_interval=0.5, state_dir=tmp_path, base_port=base) as second:
        assert second.nodes[0].address == address


def test_two_nodes_cut_apart_cannot_reach_each_other_but_both_reach_a_third_until_healed() -> None:
    with SimNetwork(nodes=3, block_interval=0.5) as network:
        a, b, c = network.nodes
        network.cut(0, 2)
        assert send(a, f"to:{c.address}")["delivered"] is False
        assert "Connection refused" in send(c, f"to:{a.address}")["error"]
        assert send(a, f"to:{b.address}")["delivered"] is True
        assert send(c, f"to:{b.address}")["delivered"] is True
        network.cut(0, 2, cut=False)
        assert send(a, f"to:{c.address}")["delivered"] is True
