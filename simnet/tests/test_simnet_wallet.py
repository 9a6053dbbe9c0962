"""Wallet signatures, convert, hash, coinnotify and Minima's on-chain MNS coins: simnet answers as the real nodes
did (fixtures 100-156). Replies with nothing node-specific are compared byte for byte; the rest with the real
nodes' keys and addresses replaced by simnet's, or by structure where a value (a coin id, a signature) is the
node's own.
"""

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from simnet import SimNetwork, SimNode
from simnet.cmd_wallet import SIGNATURE_SIZE
from simnet.testing import rpc, shape_diff
from testsupport import maxima_fixture

A_KEY = maxima_fixture("100-")["parsed"]["response"]["keys"][0]["publickey"]
A_KEY_1 = "0x4936D032F243A5E1C50466A08215CC4A2A232524F71E960F5E99F984E1C81CF0"  # A's keys[1] (fixture 105)
C_KEY = "0xF4491653C103ACC5640B9AB61C4C1279ABC4B8A3766FB795D8738B89472C1FCF"
MNS_ADDRESS = "0xFFEEDDFFEEDDFFEEDD"

# Replies with no node-specific value: the same bytes from any node.
BYTE_FOR_BYTE = ("106-", "107-", "108-", "109-", "110-", "111-", "112-", "113-", "114-", "115-", "116-")
BYTE_FOR_BYTE += ("120-", "123-", "130-", "131-", "132-", "133-", "134-", "155-", "156-")


def call(node: SimNode, command: str) -> dict[str, Any]:
    reply = rpc(node.rpc_url, command)
    assert reply.status == 200
    return reply.json()


@pytest.fixture(scope="module")
def net() -> Iterator[SimNetwork]:
    with SimNetwork(nodes=3, block_interval=3600) as network:
        yield network


def _replay(net: SimNetwork, name: str) -> str:
    request = maxima_fixture(name)["request"]
    node = net.nodes["ABC".index(request["node"])]
    return rpc(node.rpc_url, request["body"]).text + "\n"


@pytest.mark.parametrize("name", BYTE_FOR_BYTE)
def test_simnet_answers_byte_for_byte_as_the_real_node(net: SimNetwork, name: str) -> None:
    if name == "131-":  # the check follows the add on the same node
        _replay(net, "130-")

    assert _replay(net, name) == maxima_fixture(name)["raw_response"]


def test_keys_list_with_a_publickey_gives_that_key_in_the_real_nodes_shape(net: SimNetwork) -> None:
    node = net.nodes[0]
    fixture = maxima_fixture("100-")
    key = node.wallet_keys[0]

    reply = call(node, f"keys action:list publickey:{key}")

    assert shape_diff(fixture["parsed"], reply) == []
    assert reply["response"]["keys"][0]["publickey"] == key
    assert reply["response"]["total"] == 1


def _sign(node: SimNode, key: str, data: str) -> str:
    reply = call(node, f"sign publickey:{key} data:{data}")
    assert reply["status"] is True, reply
    return str(reply["response"])


def test_sign_gives_a_signature_of_the_treekey_size_and_layout_and_counts_a_key_use(net: SimNetwork) -> None:
    node = net.nodes[0]
    key = node.wallet_keys[0]
    fixture = maxima_fixture("101-")
    data = fixture["request"]["body"].split("data:")[1]
    uses_before = call(node, f"keys action:list publickey:{key}")["response"]["keys"][0]["uses"]

    signature = _sign(node, key, data)

    real = fixture["parsed"]["response"]
    assert len(signature) == len(real) == 2 + 2 * SIGNATURE_SIZE
    # MiniNumber 3 (the tree depth), then the first level's 32-byte key: the same framing as the real node.
    assert signature[:16] == real[:16] == "0x00010300000020"[:16]
    assert call(node, f"keys action:list publickey:{key}")["response"]["keys"][0]["uses"] == uses_before + 1


def _verify_fixture(name: str, key: str, data: str, signature: str) -> str:
    """The fixture's verify request with the real key, data and signature replaced by simnet's."""
    fixture = maxima_fixture(name)
    body = fixture["request"]["body"]
    real_data = maxima_fixture("101-")["request"]["body"].split("data:")[1]
    real_sig = maxima_fixture("101-")["parsed"]["response"]
    body = body.replace(A_KEY_1, "KEY1").replace(A_KEY, key)
    body = body.replace(real_sig, signature).replace(real_data, data)
    return body


def test_verify_accepts_the_signature_and_refuses_tampering_with_the_real_nodes_words(net: SimNetwork) -> None:
    node, other = net.nodes[0], net.nodes[1]
    key, wrong_key = node.wallet_keys[0], node.wallet_keys[1]
    data = maxima_fixture("101-")["request"]["body"].split("data:")[1]
    signature = _sign(node, key, data)
    tampered_data = data[:-2] + "30"
    tampered_sig = signature[:-2] + f"{int(signature[-2:], 16) ^ 1:02X}"

    valid = call(other, f"verify publickey:{key} data:{data} signature:{signature}")
    bad_data = call(node, f"verify publickey:{key} data:{tampered_data} signature:{signature}")
    bad_sig = call(node, f"verify publickey:{key} data:{data} signature:{tampered_sig}")
    bad_key = call(node, f"verify publickey:{wrong_key} data:{data} signature:{signature}")

    def without_params(reply: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in reply.items() if k != "params"}

    for name, reply in (("102-", valid), ("103-", bad_data), ("104-", bad_sig)):
        assert without_params(reply) == without_params(maxima_fixture(name)["parsed"]), name
    assert bad_key["status"] is False
    assert bad_key["error"] == f"Signature publickey is different : {key}"
    assert list(bad_key) == list(maxima_fixture("105-")["parsed"])


def test_verify_refuses_a_real_nodes_treekey_signature_it_cannot_check(net: SimNetwork) -> None:
    node = net.nodes[0]
    real = maxima_fixture("102-")

    reply = call(node, real["request"]["body"])

    # simnet does not compute TreeKey roots, so a real signature never passes (its first key is not the root).
    assert reply["status"] is False
    assert "response" not in reply


# ------------------------------------------------------------------------------------ Minima's on-chain MNS


def _register(node: SimNode, name: str) -> None:
    """Register ``name`` as MNS 0.6 does: convert the URI-encoded fields, sign them, send 0.01 with the state."""
    key = node.wallet_keys[0]
    address = node.default_address
    datastr = json.dumps({"address": address}, separators=(",", ":"))
    text = quote(f"{key}:{key}:{name}:{datastr}:0x00", safe="~()*!.'").replace("'", "%27")
    hexdata = call(node, f"convert from:string to:hex data:{text}")["response"]["conversion"]
    signature = _sign(node, key, hexdata)
    state = {"0": f"[{key}]", "1": f"[{key}]", "2": f"[{name}]", "3": f"[{datastr}]", "4": "0x00", "5": signature}
    sent = call(node, f"send amount:0.01 address:{MNS_ADDRESS} state:{json.dumps(state, separators=(',', ':'))}")
    assert sent["status"] is True, sent


@pytest.fixture(scope="module")
def mns_chain() -> Iterator[SimNetwork]:
    with SimNetwork(nodes=3, block_interval=3600) as network:
        for _ in range(3):
            network.make_block()
        a, _, c = network.nodes
        _register(a, "mnsfixture")
        network.make_block()
        _register(c, "mnsfixture")
        network.make_block()
        network.make_block()
        yield network


def _coins(network: SimNetwork, name: str) -> dict[str, Any]:
    return call(network.nodes[1], maxima_fixture(name)["request"]["body"])


@pytest.mark.parametrize("name", ["150-", "151-", "152-", "153-", "154-"])
def test_mns_coin_queries_have_the_real_nodes_structure(mns_chain: SimNetwork, name: str) -> None:
    fixture = maxima_fixture(name)["parsed"]

    reply = _coins(mns_chain, name)

    assert shape_diff(fixture, reply) == []
    assert reply["params"] == fixture["params"]


@pytest.mark.parametrize(("name", "first"), [("150-", 0), ("151-", 2), ("154-", 0)])
def test_the_order_puts_the_first_registrant_first_only_when_asked(
    mns_chain: SimNetwork, name: str, first: int
) -> None:
    owner = mns_chain.nodes[first].wallet_keys[0]

    reply = _coins(mns_chain, name)

    assert reply["response"][0]["state"]["0"] == f"[{owner}]"


def test_mns_state_keeps_its_brackets_and_types_as_on_chain(mns_chain: SimNetwork) -> None:
    real = maxima_fixture("152-")["parsed"]["response"][0]["state"]
    a = mns_chain.nodes[0]

    state = _coins(mns_chain, "152-")["response"][0]["state"]

    assert [(s["port"], s["type"]) for s in state] == [(s["port"], s["type"]) for s in real]
    assert state[2]["data"] == "[mnsfixture]"
    assert state[0]["data"] == f"[{a.wallet_keys[0]}]"
    assert len(state[5]["data"]) == len(real[5]["data"])


def test_the_mns_signature_on_chain_verifies_with_the_owners_key_on_another_node(mns_chain: SimNetwork) -> None:
    coin = _coins(mns_chain, "150-")["response"][0]["state"]
    owner = coin["0"][1:-1]
    datastr = coin["3"][1:-1]
    text = quote(f"{owner}:{owner}:mnsfixture:{datastr}:0x00", safe="~()*!.'").replace("'", "%27")
    reader = mns_chain.nodes[1]
    hexdata = call(reader, f"convert from:string to:hex data:{text}")["response"]["conversion"]

    reply = call(reader, f"verify publickey:{owner} data:{hexdata} signature:{coin['5']}")

    assert reply["response"] == "Signature valid"


def test_coinnotify_makes_the_node_post_notifycoin_for_a_new_coin_at_the_address() -> None:
    from simnet.testing import WebhookReceiver

    with SimNetwork(nodes=2, block_interval=3600) as network, WebhookReceiver() as hooks:
        reader = network.nodes[1]
        call(reader, f"webhooks action:add hook:{hooks.url()} filter:NOTIFYCOIN")
        call(reader, f"coinnotify action:add address:{MNS_ADDRESS}")
        for _ in range(3):
            network.make_block()
        _register(network.nodes[0], "watched")
        network.make_block()

        events = hooks.wait_for(1)

    body = json.loads(events[0].body)
    assert body["event"] == "NOTIFYCOIN"
    assert list(body["data"]) == ["address", "txblockid", "txblock", "spent", "coin"]
    assert body["data"]["address"] == MNS_ADDRESS
    assert body["data"]["coin"]["state"]["2"] == "[watched]"
