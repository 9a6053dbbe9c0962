"""The small chain: blocks, tokens, script coins with state and the owner-only rotation (REFERENCE §5)."""

import json
from collections.abc import Iterator

import pytest

from mns_client.protocol.errors import RPCError
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork
from simnet.chain import BULLETIN_SCRIPT
from simnet.testing import WebhookReceiver, rpc

ENTRIES_1 = json.dumps(["MxAAA@127.0.0.1:9001"]).encode()
ENTRIES_2 = json.dumps(["MxBBB@127.0.0.1:9001"]).encode()


@pytest.fixture(scope="module")
def net() -> Iterator[SimNetwork]:
    with SimNetwork(nodes=2, block_interval=0.25) as network:
        network.wait_blocks(3)  # a wallet spends a coin only 3 blocks deep, the genesis coins too
        yield network


def _published(net: SimNetwork) -> tuple[str, str, str, str]:
    """Create a token, track the bulletin script on both nodes and publish sequence 1; returns the ids."""
    owner = MinimaRPC(net.nodes[0].rpc_url)
    created = owner.tokencreate(name="mns-entry", amount=1, decimals=0)
    provisional = created["body"]["txn"]["outputs"][0]["token"]["tokenid"]
    net.wait_blocks(4)  # mined, then 3 deep
    tokenid = owner.tokens()[-1]["tokenid"]
    script = owner.newscript(script=BULLETIN_SCRIPT)["address"]
    MinimaRPC(net.nodes[1].rpc_url).newscript(script=BULLETIN_SCRIPT)
    owner_key = owner.command("getaddress")["publickey"]
    owner.send_with_state(
        address=script, amount=1, tokenid=tokenid, state={0: owner_key, 1: "0x" + ENTRIES_1.hex(), 2: "1"}
    )
    net.wait_blocks(1)
    return provisional, tokenid, script, owner_key


def test_blocks_advance_on_the_timer(net: SimNetwork) -> None:
    before = rpc(net.nodes[0].rpc_url, "status").json()["response"]["chain"]["block"]

    net.wait_blocks(2)

    after = rpc(net.nodes[1].rpc_url, "status").json()["response"]["chain"]["block"]
    assert after >= before + 2


def test_owner_rotation_succeeds_and_a_non_owner_rotation_fails(net: SimNetwork) -> None:
    with WebhookReceiver() as hooks:
        MinimaRPC(net.nodes[1].rpc_url).webhooks_add(hook=hooks.url("/newcoin"), filter="NEWCOIN")
        provisional, tokenid, script, owner_key = _published(net)
        reader = MinimaRPC(net.nodes[1].rpc_url)
        (coin,) = reader.coins(address=script)

        MinimaRPC(net.nodes[0].rpc_url).txn_rotate(
            txn_id="rot1",
            coinid=coin["coinid"],
            address=script,
            tokenid=tokenid,
            amount=1,
            state={0: owner_key, 1: "0x" + ENTRIES_2.hex(), 2: "2"},
            owner_publickey=owner_key,
        )
        net.wait_blocks(1)
        (rotated,) = reader.coins(address=script, tokenid=tokenid, simplestate=True)
        events = hooks.wait_for(3, path="/newcoin")

    assert provisional != tokenid
    assert rotated["state"] == {"0": owner_key, "1": "0x" + ENTRIES_2.hex().upper(), "2": "2"}
    assert [(e.json()["data"]["spent"], e.json()["data"]["coin"]["state"]["2"]) for e in events] == [
        (False, "1"),
        (True, "1"),
        (False, "2"),
    ]
    _assert_non_owner_fails(net, rotated["coinid"], tokenid, script, owner_key)


def _assert_non_owner_fails(net: SimNetwork, coinid: str, tokenid: str, script: str, owner_key: str) -> None:
    b = net.nodes[1]
    b_key = rpc(b.rpc_url, "getaddress").json()["response"]["publickey"]
    batch = (
        f"txncreate id:bad1;txninput id:bad1 coinid:{coinid};"
        f"txnoutput id:bad1 amount:1 address:{script} tokenid:{tokenid} storestate:true;"
        f"txnstate id:bad1 port:0 value:{owner_key};txnstate id:bad1 port:2 value:3;"
        f"txnsign id:bad1 publickey:{b_key};txnbasics id:bad1;txncheck id:bad1"
    )
    check = rpc(b.rpc_url, batch).json()[-1]["response"]
    posted = rpc(b.rpc_url, "txnpost id:bad1").json()

    assert check["valid"] == {"basic": True, "signatures": True, "mmrproofs": True, "scripts": False}
    assert posted["status"] is False
    net.wait_blocks(1)
    (still,) = MinimaRPC(b.rpc_url).coins(address=script)
    assert still["coinid"] == coinid


def test_the_owner_cannot_change_port_0_or_the_amount_back(net: SimNetwork) -> None:
    _, tokenid, script, owner_key = _published(net)
    a = net.nodes[0]
    coin = next(c for c in MinimaRPC(a.rpc_url).coins(address=script) if c["tokenid"] == tokenid)
    batch = (
        f"txncreate id:move;txninput id:move coinid:{coin['coinid']};"
        f"txnoutput id:move amount:1 address:{script} tokenid:{tokenid} storestate:false;"
        f"txnstate id:move port:0 value:{owner_key};txnsign id:move publickey:{owner_key};txnbasics id:move;"
        "txncheck id:move"
    )

    check = rpc(a.rpc_url, batch).json()[-1]["response"]

    assert check["valid"]["scripts"] is False


def test_send_without_enough_funds_is_refused(net: SimNetwork) -> None:
    reply = rpc(net.nodes[0].rpc_url, "send address:0x00 amount:999999999").json()

    assert reply["status"] is False
    assert reply["message"].startswith("Insufficient funds.. you only have ")


def test_an_unmined_coin_cannot_be_spent_twice(net: SimNetwork) -> None:
    a = MinimaRPC(net.nodes[0].rpc_url)
    a.tokencreate(name="twice", amount=5, decimals=0)
    net.wait_blocks(4)  # mined, then 3 deep
    token = next(t for t in a.tokens() if t["name"] == {"name": "twice"})["tokenid"]
    address = a.command("getaddress")["address"]

    a.command("send", address=address, amount=5, tokenid=token)
    with pytest.raises(RPCError, match="Insufficient funds"):
        a.command("send", address=address, amount=5, tokenid=token)
