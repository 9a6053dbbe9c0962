"""Chain commands: status, block, getaddress, newscript, tokens, tokencreate, send, coins (fixtures 05, 80-90)."""

import random
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from simnet.chain import (
    CREATE_TOKENID,
    MAX_SCALE,
    MINIMA_TOKENID,
    TOTAL_SUPPLY,
    ChainError,
    Coin,
    InsufficientFunds,
    NoCoins,
    StateVar,
    Token,
    Txn,
    clean_script,
    fmt,
    miniaddress,
    parse_amount,
    script_address,
)
from simnet.cmd_maxima import hex_param
from simnet.commands import CommandError, Params, Reply
from simnet.txpow import txpow_json
from simnet.util import now_ms

if TYPE_CHECKING:
    from simnet.node import SimNode

VERSION = "1.0.45-TEST.15"


def _uptime(millis: int) -> str:
    seconds = millis // 1000
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0 Years 0 Months {days // 7} Weeks {days % 7} Days {hours} Hours {minutes} Minutes {secs} Seconds"


def status(node: "SimNode", params: Params, reply: Reply) -> None:
    chain = node.chain
    with chain.lock:
        block, weight = chain.block, str(chain.block * 10000 + 1)
        tip = chain.block_info()
        coins = len(chain.unspent())
    reply["response"] = {
        "version": VERSION,
        "uptime": _uptime(now_ms() - node.started_at),
        "locked": False,
        "length": block,
        "weight": weight,
        "minima": TOTAL_SUPPLY,
        "coins": str(coins),
        "data": f"/simnet/node{node.index}/1.0",
        "memory": {
            "ram": "42.0 MB",
            "disk": "250.0 KB",
            "files": {
                "txpowdb": "96.0 KB",
                "archivedb": "16.0 KB",
                "cascade": "0 bytes",
                "chaintree": "0 bytes",
                "wallet": "64.0 KB",
                "userdb": "3.5 KB",
                "p2pdb": "0 bytes",
            },
        },
        "chain": {
            "block": block,
            "time": tip["date"],
            "hash": tip["hash"],
            "speed": 1.0 / max(node.network.block_interval, 0.001),
            "difficulty": "0x00068DB8BAC710CB295E9E1B089A027525460AA64C2F837B4A2339C0EBEDFA43",
            "size": block + 1,
            "length": block,
            "branches": 1,
            "weight": weight,
            "cascade": {"start": -1, "length": 0, "weight": "0"},
        },
        "txpow": {"mempool": len(chain.mempool), "ramdb": block + 1, "txpowdb": block + 1, "archivedb": 0},
        "network": {
            "host": node.host,
            "hostset": True,
            "port": node.p2p_port,
            "connecting": 0,
            "connected": len(node.network.nodes) - 1,
            "rpc": {"enabled": True, "port": node.rpc_port},
        },
    }


def block(node: "SimNode", params: Params, reply: Reply) -> None:
    reply["response"] = node.chain.block_info()


def _address_json(script: str, *, simple: bool, default: bool, publickey: str, track: bool) -> dict[str, Any]:
    address = script_address(script)
    return {
        "script": clean_script(script),
        "address": address,
        "miniaddress": miniaddress(address),
        "simple": simple,
        "default": default,
        "publickey": publickey,
        "track": track,
    }


def getaddress(node: "SimNode", params: Params, reply: Reply) -> None:
    """One of the node's default addresses, picked at random on every call, as a real node does (nothing may count
    on two calls answering the same key)."""
    key = random.choice(node.default_keys())
    script = f"RETURN SIGNEDBY({key})"
    reply["response"] = _address_json(script, simple=True, default=True, publickey=key, track=True)


def newscript(node: "SimNode", params: Params, reply: Reply) -> None:
    script = params.get("script")
    track = params.boolean("trackall")
    address = node.chain.register_script(script)
    if track and address not in node.tracked:
        node.tracked.append(address)
    reply["response"] = _address_json(script, simple=False, default=False, publickey="0x00", track=track)


def newaddress(node: "SimNode", params: Params, reply: Reply) -> None:
    """A fresh wallet key and its simple address (fixture 140)."""
    key = node.new_wallet_key()
    script = f"RETURN SIGNEDBY({key})"
    reply["response"] = _address_json(script, simple=True, default=False, publickey=key, track=True)


def tokens(node: "SimNode", params: Params, reply: Reply) -> None:
    minima = {"name": "Minima", "tokenid": MINIMA_TOKENID, "total": TOTAL_SUPPLY, "decimals": 44, "scale": 1}
    with node.chain.lock:
        listed = [t.to_json() for t in node.chain.tokens.values()]
    if params.has("tokenid"):
        wanted = params.get("tokenid")
        reply["response"] = next((t for t in [minima, *listed] if t["tokenid"] == wanted), None)
        if reply["response"] is None:
            raise CommandError(f"Token not found : {wanted}")
        return
    reply["response"] = [minima, *listed]


# ------------------------------------------------------------------------------------------------- spending


def select_coins(node: "SimNode", tokenid: str, needed: Decimal, addresses: set[str] | None = None) -> list[Coin]:
    """Smallest-first deep coins of this wallet (or of ``addresses``) for ``needed`` (coin units).

    Raises ``NoCoins`` when no coin is deep enough, ``InsufficientFunds`` (its text: what there is, in token
    units) when the deep coins free of the mempool do not add up to ``needed``.
    """
    wallet = node.wallet_addresses() if addresses is None else addresses
    available = sorted(node.chain.spendable(wallet, tokenid), key=lambda c: c.amount)
    chosen, total = [], Decimal(0)
    for coin in available:
        if total >= needed:
            break
        chosen.append(coin)
        total += coin.amount
    if total < needed or not chosen:
        raise InsufficientFunds(fmt(sum((c.tokenamount() for c in available), Decimal(0))))
    return chosen


def sign_and_post(node: "SimNode", txn: Txn) -> dict[str, Any]:
    """Sign every input this wallet can sign, add proofs and scripts, post; returns the TxPoW JSON."""
    chain = node.chain
    with chain.lock:
        add_basics(node, txn)
        for key in node.wallet_keys:
            if f"RETURN SIGNEDBY({key})" in {chain.scripts.get(c.address) for c in txn.inputs}:
                txn.signatures.append(chain.sign(key, txn))
        pending = chain.post(txn)
        return txpow_json(chain, pending.txpowid, txn)


def add_basics(node: "SimNode", txn: Txn) -> None:
    """``txnbasics``: MMR proofs and the known scripts of every input."""
    chain = node.chain
    stored = [chain.coins.get(c.coinid, c) for c in txn.inputs]
    txn.mmrproofs = [(c.copy(), chain.proof_length(c.mmrentry)) for c in stored]
    scripts = []
    for coin in txn.inputs:
        script = chain.scripts.get(coin.address)
        if script is not None and (coin.address, script) not in scripts:
            scripts.append((coin.address, script))
    txn.scripts = scripts


def _state_param(params: Params) -> list[StateVar]:
    if not params.has("state"):
        return []
    raw = params.raw("state")
    if not isinstance(raw, dict):
        raise CommandError("state must be a JSON object")
    return sorted((StateVar.parse(int(port), value) for port, value in raw.items()), key=lambda s: s.port)


def address_param(params: Params, name: str = "address") -> str:
    text = params.get(name)
    if text.startswith("Mx"):
        from mns_client.protocol.codecs import mx_decode

        return "0x" + mx_decode(text).hex().upper()
    try:
        return "0x" + hex_param(text).hex().upper()
    except CommandError:  # the wallet's own MiniData parse (fixture 163), not maxima's hex check
        raise CommandError(f"java.lang.NumberFormatException: Invalid HEX string in decode16 : {text}") from None


def send(node: "SimNode", params: Params, reply: Reply) -> None:
    """Pay from this wallet's deep coins (or ``fromaddress``'s): the node's checks in its order (fixtures 141-163)."""
    chain = node.chain
    tokenid = params.opt("tokenid", MINIMA_TOKENID)
    try:
        wanted = parse_amount(params.get("amount"))
        if wanted <= 0:
            raise ChainError(f"Invalid Minima amount to send.. {fmt(wanted)}")
        amount, token = chain.coin_amount(tokenid, wanted)
        address = address_param(params)
        source = {address_param(params, "fromaddress")} if params.has("fromaddress") else None
        txn = Txn(state=_state_param(params))
        with chain.lock:
            try:
                txn.inputs = [c.copy() for c in select_coins(node, tokenid, amount, source)]
            except InsufficientFunds as short:
                reply["status"] = False
                reply["message"] = f"Insufficient funds.. you only have {short} require:{fmt(wanted)}"
                return
            change = sum((c.amount for c in txn.inputs), Decimal(0)) - amount
            storestate = params.boolean("storestate", True)
            txn.outputs.append(Coin("0x00", amount, address, tokenid, token, storestate))
            if change > 0:
                txn.outputs.append(Coin("0x00", change, node.default_address, tokenid, token, True))
            _number_outputs(txn)
            response = sign_and_post(node, txn)
    except ChainError as exc:
        raise CommandError(str(exc)) from None
    reply["dryrun"] = False
    reply["response"] = response


def _number_outputs(txn: Txn) -> None:
    for index, coin in enumerate(txn.outputs):
        coin.coinid = txn.output_coinid(index)


def _token_name(params: Params) -> Any:
    raw = params.raw("name")
    if isinstance(raw, dict):
        if "name" not in raw:
            raise CommandError("Token name JSON MUST contain a name field")
        return raw
    return {"name": params.get("name")}


def tokencreate(node: "SimNode", params: Params, reply: Reply) -> None:
    chain = node.chain
    decimals = params.integer("decimals", 8)
    if not 0 <= decimals <= 16:
        raise CommandError("Decimal must be between 0 and 16")
    try:
        total = parse_amount(params.get("amount"))
        burn = parse_amount(params.get("burn")) if params.has("burn") else Decimal(0)
    except ChainError as exc:
        raise CommandError(str(exc)) from None
    scale = MAX_SCALE - decimals
    colour = total.scaleb(-scale)
    script = clean_script(params.opt("script", "RETURN TRUE"))
    token = Token(_token_name(params), "0x00", total, decimals, script, scale, 0, "")
    token.tokenid = token.final_id("0x00", 0)
    with chain.lock:
        try:
            inputs = select_coins(node, MINIMA_TOKENID, colour + burn)
        except NoCoins:
            raise CommandError("No Minima Coins available!") from None
        except InsufficientFunds as short:  # no "require:" here (fixture 161)
            reply["status"] = False
            reply["message"] = f"Insufficient funds.. you only have {short}"
            return
        txn = Txn(inputs=[c.copy() for c in inputs], state=_state_param(params))
        txn.outputs.append(Coin("0x00", colour, node.default_address, CREATE_TOKENID, token, True))
        change = sum((c.amount for c in txn.inputs), Decimal(0)) - colour - burn
        if change > 0:
            change_address = script_address(f"RETURN SIGNEDBY({node.wallet_keys[1]})")
            txn.outputs.append(Coin("0x00", change, change_address, MINIMA_TOKENID, None, False))
        _number_outputs(txn)
        try:
            reply["response"] = sign_and_post(node, txn)
        except ChainError as exc:
            raise CommandError(str(exc)) from None


def balance(node: "SimNode", params: Params, reply: Reply) -> None:
    """Per token: ``confirmed`` (coins ``confirmations`` deep), ``unconfirmed`` (mined, not yet deep), ``sendable``
    (confirmed at the wallet's own addresses), the coin count; blind to the mempool (fixtures 144-149c).
    Minima is always listed first, with zeros on an empty wallet."""
    chain = node.chain
    with chain.lock:
        relevant, own = node.relevant_addresses(), node.wallet_addresses()
        coins = [c for c in chain.unspent() if c.address in relevant and c.created <= chain.block]
        tokenids = list(dict.fromkeys([MINIMA_TOKENID, *(c.tokenid for c in coins)]))
        if params.has("tokenid"):
            wanted = params.get("tokenid").upper()
            tokenids = [next((t for t in tokenids if t.upper() == wanted), params.get("tokenid"))]
        reply["response"] = [_balance_row(chain, tokenid, coins, own) for tokenid in tokenids]


def _balance_row(chain: Any, tokenid: str, coins: list[Coin], own: set[str]) -> dict[str, Any]:
    mine = [c for c in coins if c.tokenid == tokenid]
    deep = [c for c in mine if chain.deep(c)]

    def total(found: list[Coin]) -> str:
        return fmt(sum((c.tokenamount() for c in found), Decimal(0)))

    token = chain.token(tokenid)
    return {
        "token": "Minima" if token is None else token.name,
        "tokenid": tokenid,
        "confirmed": total(deep),
        "unconfirmed": total([c for c in mine if not chain.deep(c)]),
        "sendable": total([c for c in deep if c.address in own]),
        "coins": str(len(mine)),
        "total": TOTAL_SUPPLY if token is None else fmt(token.total),
    }


def coins(node: "SimNode", params: Params, reply: Reply) -> None:
    """``coins``: with none of relevant/coinid/address/state/tokenid, only relevant coins (as the node forces it).

    ``state:`` matches a substring of any state value as printed (brackets kept: fixtures 150-156); newest first
    unless ``order:asc`` (oldest first, so the first registrant of an MNS name comes first).
    """
    chain = node.chain
    filters = ("relevant", "coinid", "address", "state", "tokenid")
    relevant_only = params.boolean("relevant") or not any(params.has(name) for name in filters)
    with chain.lock:
        found = [c for c in chain.unspent() if c.created <= chain.block]
        if relevant_only:
            relevant = node.relevant_addresses()
            found = [c for c in found if c.address in relevant]
        if params.has("address"):
            address = address_param(params)
            found = [c for c in found if c.address.upper() == address.upper()]
        if params.has("tokenid"):
            found = [c for c in found if c.tokenid.upper() == params.get("tokenid").upper()]
        if params.has("coinid"):
            found = [c for c in found if c.coinid.upper() == params.get("coinid").upper()]
        if params.has("state"):
            wanted = params.get("state")
            found = [c for c in found if any(wanted in s.data for s in c.state)]
        found.sort(key=lambda c: c.created, reverse=True)
        if params.opt("order", "desc") == "asc":
            found.sort(key=lambda c: c.created)
        simple = params.boolean("simplestate")
        reply["response"] = [c.to_json(simple_state=simple, age=chain.block - c.created) for c in found]
