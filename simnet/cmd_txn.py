"""The txn* commands used by the entry-point rotation (fixtures 88 and 93)."""

from typing import TYPE_CHECKING

from simnet.chain import MINIMA_TOKENID, ChainError, Coin, StateVar, Txn, parse_amount
from simnet.cmd_chain import add_basics, address_param
from simnet.commands import CommandError, Params, Reply
from simnet.txpow import txn_reply, txpow_json

if TYPE_CHECKING:
    from simnet.node import SimNode


def _txn(node: "SimNode", params: Params) -> tuple[str, Txn]:
    ident = params.get("id")
    txn = node.txns.get(ident)
    if txn is None:
        raise CommandError(f"Transaction not found : {ident}")
    return ident, txn


def txncreate(node: "SimNode", params: Params, reply: Reply) -> None:
    ident = params.get("id")
    if ident in node.txns:
        raise CommandError(f"Txn with this ID already exists : {ident}")
    node.txns[ident] = Txn()
    reply["response"] = txn_reply(ident, node.txns[ident])


def txninput(node: "SimNode", params: Params, reply: Reply) -> None:
    ident, txn = _txn(node, params)
    coinid = params.get("coinid")
    with node.chain.lock:
        coin = next((c for c in node.chain.unspent() if c.coinid.upper() == coinid.upper()), None)
    if coin is None:
        raise CommandError(f"CoinID not found : {coinid}")
    txn.inputs.append(coin.copy())
    for index, out in enumerate(txn.outputs):
        out.coinid = txn.output_coinid(index)
    reply["response"] = txn_reply(ident, txn)


def txnoutput(node: "SimNode", params: Params, reply: Reply) -> None:
    ident, txn = _txn(node, params)
    tokenid = params.opt("tokenid", MINIMA_TOKENID)
    try:
        amount, token = node.chain.coin_amount(tokenid, parse_amount(params.get("amount")))
    except ChainError as exc:
        raise CommandError(str(exc)) from None
    coin = Coin("0x00", amount, address_param(params), tokenid, token, params.boolean("storestate", True))
    txn.outputs.append(coin)
    coin.coinid = txn.output_coinid(len(txn.outputs) - 1)
    reply["response"] = txn_reply(ident, txn)


def txnstate(node: "SimNode", params: Params, reply: Reply) -> None:
    ident, txn = _txn(node, params)
    try:
        txn.set_state(StateVar.parse(params.integer("port"), params.get("value")))
    except ChainError as exc:
        raise CommandError(str(exc)) from None
    reply["response"] = txn_reply(ident, txn)


def txnsign(node: "SimNode", params: Params, reply: Reply) -> None:
    _, txn = _txn(node, params)
    key = params.get("publickey")
    keys = [k for k in node.wallet_keys if key == "auto" or k.upper() == key.upper()]
    if not keys:
        raise CommandError(f"Public key not found : {key}")
    with node.chain.lock:
        for k in keys:
            txn.signatures = [s for s in txn.signatures if s.rootkey != k] + [node.chain.sign(k, txn)]
    reply["response"] = {"keys": keys, "txnpost": False}


def txnbasics(node: "SimNode", params: Params, reply: Reply) -> None:
    ident, txn = _txn(node, params)
    with node.chain.lock:
        add_basics(node, txn)
    reply["response"] = txn_reply(ident, txn)


def txncheck(node: "SimNode", params: Params, reply: Reply) -> None:
    _, txn = _txn(node, params)
    reply["response"] = node.chain.check(txn)


def txnpost(node: "SimNode", params: Params, reply: Reply) -> None:
    _, txn = _txn(node, params)
    with node.chain.lock:
        if params.boolean("auto"):
            add_basics(node, txn)
        try:
            pending = node.chain.post(txn)
        except ChainError as exc:
            raise CommandError(str(exc)) from None
        reply["response"] = txpow_json(node.chain, pending.txpowid, txn)


def txndelete(node: "SimNode", params: Params, reply: Reply) -> None:
    ident = params.get("id")
    node.txns.pop(ident, None)
    reply["response"] = "Deleted"


def txnlist(node: "SimNode", params: Params, reply: Reply) -> None:
    if params.has("id"):
        ident, txn = _txn(node, params)
        reply["response"] = txn_reply(ident, txn)
        return
    reply["response"] = [txn_reply(ident, txn) for ident, txn in node.txns.items()]
