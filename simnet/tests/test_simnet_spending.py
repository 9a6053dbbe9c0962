"""Spending before a coin is 3 blocks deep, insufficient funds, an empty wallet: the real nodes' words (fixtures
140-163, 189, 189b), replayed in the captured order on a chain whose blocks this test makes one at a time.

The captured chain, block by block (the fixtures' tips): A's own send is mined in 171 and C's in 173; A pays C's
fresh address at 175; that coin is mined in 176 and is 3 deep at 179. Here the same steps run on four simnet nodes
(B left with 11 Minima, C with 989 in one coin, D with nothing), so every error, message and balance is the
fixture's own text, byte for byte; the replies that carry a TxPoW or a fresh address are compared by structure.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from simnet import SimNetwork, SimNode
from simnet.testing import rpc, shape_diff
from testsupport import maxima_fixture

# Where the captured nodes' Minima went, and where the "MNS registrations" paid to: a Minima address of no node.
ELSEWHERE = "MxG08220KNKQCADVVTHE0NCAAHTHV0N5N81RJVKNW9JTT4DJVMVH7J929P1BKPQ"
C_FRESH = maxima_fixture("140-")["parsed"]["response"]["miniaddress"]

# Replies compared byte for byte (after C's fresh address is replaced by simnet's); the rest by structure.
EXACT = ("141-", "142-", "143-", "144-", "146-", "147-", "148-", "149-", "149b-", "149c-")
EXACT += ("160-", "161-", "162-", "163-", "189-", "189b-")
STRUCTURE = ("140-", "145-", "149d-")
REPLAYED = EXACT + STRUCTURE


class Chain:
    """Four nodes A-D on a network whose blocks are made by ``mine`` only."""

    def __init__(self, net: SimNetwork) -> None:
        self.net = net
        self.nodes = dict(zip("ABCD", net.nodes, strict=True))
        self.fresh = ""
        self.replies: dict[str, str] = {}

    def call(self, letter: str, command: str) -> dict[str, Any]:
        reply = rpc(self.nodes[letter].rpc_url, command)
        assert reply.status == 200
        return reply.json()

    def spend(self, letter: str, amount: str) -> None:
        """A send that must succeed (the scenario's own steps, not fixtures)."""
        assert self.call(letter, f"send amount:{amount} address:{ELSEWHERE}")["status"] is True

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.net.make_block()

    def replay(self, name: str) -> None:
        request = maxima_fixture(name)["request"]
        node: SimNode = self.nodes[request["node"]]
        body = request["body"].replace(C_FRESH, self.fresh) if self.fresh else request["body"]
        self.replies[name] = rpc(node.rpc_url, body).text


def _play(c: Chain) -> None:
    c.mine(3)  # every genesis coin is 3 deep
    c.spend("B", "999989")  # B keeps 11
    c.spend("C", "999011")  # C keeps 989
    c.spend("D", "1000000")  # D keeps nothing
    c.mine(4)
    c.replay("140-")
    c.fresh = json.loads(c.replies["140-"])["response"]["miniaddress"]
    c.spend("A", "0.01")  # A's registration spends its only coin...
    c.mine()  # ...mined in "171"
    c.mine()  # tip "172"
    c.replay("141-")
    c.spend("C", "0.01")  # C's registration: its only coin is now a mempool input
    for name in ("142-", "143-", "144-"):
        c.replay(name)
    c.mine()  # "173": C's change coin
    c.mine(2)  # tip "175"
    for name in ("145-", "146-", "147-", "148-"):
        c.replay(name)
    c.mine()  # "176": the 1 Minima for C's fresh address is mined
    for name in ("149-", "149b-"):
        c.replay(name)
    c.mine(3)  # tip "179": 3 deep
    for name in ("149c-", "149d-", "160-", "161-", "162-", "163-", "189-", "189b-"):
        c.replay(name)


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    with SimNetwork(nodes=4, block_interval=3600) as net:
        c = Chain(net)
        _play(c)
        yield c


@pytest.mark.parametrize("name", EXACT)
def test_simnet_answers_byte_for_byte_as_the_real_node(chain: Chain, name: str) -> None:
    expected = maxima_fixture(name)["raw_response"].replace(C_FRESH, chain.fresh)

    assert chain.replies[name] + "\n" == expected


@pytest.mark.parametrize("name", STRUCTURE)
def test_simnet_answers_with_the_real_nodes_structure(chain: Chain, name: str) -> None:
    fixture = maxima_fixture(name)
    actual = json.loads(chain.replies[name])

    # An MMR proof's length depends on how many coins the chain holds: a value, not the structure.
    assert [d for d in shape_diff(fixture["parsed"], actual) if ".proof.proof: list length" not in d] == []
    assert (actual["status"], actual.get("params")) == (
        fixture["parsed"]["status"],
        json.loads(json.dumps(fixture["parsed"].get("params")).replace(C_FRESH, chain.fresh)),
    )


def test_a_network_can_be_told_to_spend_coins_at_another_depth() -> None:
    with SimNetwork(nodes=1, block_interval=3600, confirmations=1) as net:
        node = net.nodes[0]
        too_early = rpc(node.rpc_url, f"send amount:1 address:{ELSEWHERE}").json()
        net.make_block()
        in_time = rpc(node.rpc_url, f"send amount:1 address:{ELSEWHERE}").json()

    assert too_early["error"] == "No Coins of tokenid:0x00 available!"
    assert in_time["status"] is True
