"""``pay`` spends only coins 3 blocks deep, as real nodes do: it waits for them with progress, and tells "no funds"
from "funds not yet confirmed" (issue 17, point 4). On simnet, whose blocks these tests make one at a time."""

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from mns_client.config import Home
from mns_client.protocol.funds import FundsNotConfirmed, NoFunds, funds_of
from mns_client.protocol.rpc import MinimaRPC
from mns_client.sdk import Client, PaymentPlan
from simnet import SimNetwork
from testsupport.processes import wait_for

ELSEWHERE = "0x" + "AB" * 32  # a Minima address of no node


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    """A fresh chain at block 1: every node's only coin was just mined, 0 blocks deep."""
    with SimNetwork(nodes=2, block_interval=3600) as network:
        yield network


def _client(net: SimNetwork, index: int, tmp_path: Path, lines: list[str] | None = None) -> Client:
    rpc = MinimaRPC(net.nodes[index].rpc_url, timeout=10)
    return Client(
        rpc=rpc,
        gateway_url="http://127.0.0.1:9",
        home=Home(tmp_path),
        progress=lines.append if lines is not None else None,
    )


def _plan(amount: str) -> PaymentPlan:
    return PaymentPlan(name="alice", address=ELSEWHERE, amount=amount, tokenid="0x00")


def _paid_to_elsewhere(net: SimNetwork) -> Decimal:
    with net.chain.lock:
        return sum((c.amount for c in net.chain.unspent() if c.address == ELSEWHERE), Decimal(0))


def test_pay_from_a_freshly_funded_node_waits_for_three_confirmations_and_succeeds(
    net: SimNetwork, tmp_path: Path
) -> None:
    lines: list[str] = []
    client = _client(net, 0, tmp_path, lines)
    outcome: dict[str, Any] = {}
    paying = threading.Thread(target=lambda: outcome.update(sent=client.pay(_plan("7"), wait=60)))
    paying.start()

    for depth in range(3):  # the node refuses the coin until it is 3 deep; pay says how far it got
        wait_for(lambda d=depth: f"waiting for 3 confirmations: {d}/3…" in lines, timeout=15, what=f"depth {depth}")
        net.make_block()
    paying.join(timeout=15)
    net.make_block()

    assert outcome["sent"]["txpowid"].startswith("0x")
    assert lines == [f"waiting for 3 confirmations: {d}/3…" for d in range(3)]
    assert _paid_to_elsewhere(net) == Decimal(7)


def test_pay_from_a_node_with_no_funds_says_no_funds_and_sends_nothing(net: SimNetwork, tmp_path: Path) -> None:
    drained = MinimaRPC(net.nodes[1].rpc_url)
    for _ in range(3):
        net.make_block()
    drained.send(address=ELSEWHERE, amount="1000000")
    net.make_block()

    with pytest.raises(NoFunds) as caught:
        _client(net, 1, tmp_path).pay(_plan("1"), wait=60)

    assert str(caught.value).startswith("no funds: your node's wallet holds no Minima; send some to it")
    assert net.chain.mempool == []
    assert funds_of(drained, "0x00").confirmed + funds_of(drained, "0x00").unconfirmed == 0


def test_pay_more_than_the_wallet_holds_even_unconfirmed_is_no_funds_at_once(net: SimNetwork, tmp_path: Path) -> None:
    with pytest.raises(NoFunds) as caught:
        _client(net, 0, tmp_path).pay(_plan("2000000"), wait=60)

    assert str(caught.value).startswith("no funds: your node's wallet holds 1000000 Minima, 2000000 is needed")
    assert net.chain.mempool == []


def test_pay_whose_wait_ends_before_the_coins_are_deep_says_funds_not_yet_confirmed(
    net: SimNetwork, tmp_path: Path
) -> None:
    with pytest.raises(FundsNotConfirmed) as caught:
        _client(net, 0, tmp_path).pay(_plan("1"), wait=0)

    assert str(caught.value).startswith("funds not yet confirmed: your node holds 1000000 Minima, but 0 of it")
    assert net.chain.mempool == []


def test_pay_while_an_earlier_spend_of_the_coin_is_not_mined_waits_for_it(net: SimNetwork, tmp_path: Path) -> None:
    rpc = MinimaRPC(net.nodes[0].rpc_url)
    for _ in range(3):
        net.make_block()
    rpc.send(address=ELSEWHERE, amount="1")  # the only coin is now a mempool input; balance does not see that
    lines: list[str] = []
    client = _client(net, 0, tmp_path, lines)
    outcome: dict[str, Any] = {}
    paying = threading.Thread(target=lambda: outcome.update(sent=client.pay(_plan("2"), wait=60)))
    paying.start()

    wait_for(lambda: bool(lines), timeout=15, what="pay to say why it waits")
    for _ in range(4):  # the earlier spend is mined, then its change is 3 deep
        net.make_block()
    paying.join(timeout=15)
    net.make_block()

    assert lines[0] == "waiting for your node's earlier transaction to be mined (its coins are being spent)…"
    assert outcome["sent"]["txpowid"].startswith("0x")
    assert _paid_to_elsewhere(net) == Decimal(3)
