"""Spending a coin only once the node will: 3 blocks deep (REFERENCE §5, fixtures 140-163).

A real node's ``send`` and ``tokencreate`` refuse a coin until it is ``confirmations`` blocks deep
(``"No Coins of tokenid:0x00 available!"``) and skip coins a transaction not yet mined spends (``"Insufficient
funds.. you only have 0 require:…"``), while ``balance`` counts by depth alone and does not see the mempool.
``spend_when_confirmed`` is the one way the gateway and the client spend: it reads ``balance`` until enough is
confirmed, spends, and treats the node's two "not yet" answers as a reason to wait another block. It tells two
failures apart, each with what to do: ``NoFunds`` (nothing, or too little even counting coins still getting
deep) and ``FundsNotConfirmed`` (enough, but not deep enough or still being spent when the wait ran out).
"""

import time
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from .errors import MNSError, RPCError
from .rpc import Balance, MinimaRPC

DEFAULT_CONFIRMATIONS = 3  # the depth real nodes' wallets spend at
PROGRESS_AFTER_SECONDS = 2.0  # shorter waits say nothing
MINIMA = "0x00"
NOT_YET = ("No Coins of tokenid:", "No Minima Coins available!", "Insufficient funds.. you only have ")

T = TypeVar("T")


class NoFunds(MNSError):
    """The node's wallet does not hold enough of the token, confirmed or not: waiting will not help."""

    code = "no_funds"


class FundsNotConfirmed(MNSError):
    """The wallet holds enough, but not deep enough (or it is being spent) yet: try again after a few blocks."""

    code = "funds_not_confirmed"


def funds_of(rpc: MinimaRPC, tokenid: str) -> Balance:
    """The wallet's balance line for ``tokenid`` (all zeros when it holds none)."""
    for line in rpc.balance():
        if line.tokenid.upper() == tokenid.upper():
            return line
    return Balance(tokenid=tokenid, confirmed=Decimal(0), unconfirmed=Decimal(0), sendable=Decimal(0), coins=0)


def spend_when_confirmed(
    rpc: MinimaRPC,
    spend: Callable[[], T],
    *,
    amount: Decimal,
    tokenid: str = MINIMA,
    confirmations: int = DEFAULT_CONFIRMATIONS,
    wait: float = 600.0,
    poll: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> T:
    """Run ``spend`` (a ``send``/``tokencreate``) once ``amount`` of ``tokenid`` is confirmed; its result.

    Raises ``NoFunds`` at once when the wallet lacks ``amount`` even counting unconfirmed coins, and
    ``FundsNotConfirmed`` when ``wait`` seconds pass without enough confirmed and free coins. A progress line
    (``waiting for 3 confirmations: 1/3…``) goes to ``progress`` once the wait is over ``PROGRESS_AFTER_SECONDS``
    and whenever it changes. Any other refusal of ``spend`` is raised as it is.
    """
    say = _Progress(progress)
    deadline = time.monotonic() + wait
    what = "Minima" if tokenid.lower() == MINIMA else f"token {tokenid}"
    while True:
        funds = funds_of(rpc, tokenid)
        if funds.sendable >= amount:
            try:
                return spend()
            except RPCError as exc:
                if not exc.message.startswith(NOT_YET):
                    raise
            say.line(lambda: "waiting for your node's earlier transaction to be mined (its coins are being spent)…")
        elif funds.confirmed + funds.unconfirmed >= amount:
            say.line(
                lambda: (
                    f"waiting for {confirmations} confirmations: {_depth(rpc, tokenid, confirmations)}/{confirmations}…"
                )
            )
        else:
            raise NoFunds(_no_funds_text(funds, amount, what) + " (a payment to it shows once it is mined)")
        if time.monotonic() >= deadline:
            raise FundsNotConfirmed(
                f"funds not yet confirmed: your node holds {_total(funds)} {what}, but {funds.sendable} of it is "
                f"spendable (a coin is spendable {confirmations} blocks after it is mined, and not while a "
                f"transaction not yet mined spends it); try again in a few minutes",
            )
        time.sleep(poll)


def _no_funds_text(funds: Balance, amount: Decimal, what: str) -> str:
    if _total(funds) == 0:
        return f"no funds: your node's wallet holds no {what}; send some to it (`getaddress` on the node)"
    return f"no funds: your node's wallet holds {_total(funds)} {what}, {amount} is needed"


def _total(funds: Balance) -> Decimal:
    return funds.confirmed + funds.unconfirmed


def _depth(rpc: MinimaRPC, tokenid: str, confirmations: int) -> int:
    """How deep the wallet's deepest not-yet-spendable coin of ``tokenid`` is (0 to ``confirmations - 1``)."""
    tip = int(rpc.block()["block"])
    depths = [
        tip - int(coin["created"])
        for coin in rpc.coins(relevant=True, tokenid=tokenid)
        if str(coin.get("created", "")).isdigit() and tip - int(coin["created"]) < confirmations
    ]
    return max([0, *depths])


class _Progress:
    """Says a line only after the first ``PROGRESS_AFTER_SECONDS`` of a wait, and only when it changed."""

    def __init__(self, sink: Callable[[str], None] | None) -> None:
        self.sink = sink
        self.started = time.monotonic()
        self.last = ""

    def line(self, text: Callable[[], str]) -> None:
        """``text`` is only made (it may ask the node) when a line is due."""
        if self.sink is None or time.monotonic() - self.started < PROGRESS_AFTER_SECONDS:
            return
        made = text()
        if made != self.last:
            self.last = made
            self.sink(made)
