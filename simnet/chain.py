"""A small shared chain: blocks on a timer, coins with state, tokens, wallet keys and a mempool.

Faithful in the shapes and types the node prints (fixtures 80-93), not in consensus: there is no KISSVM. The two
scripts the gateway uses are recognised and their rules enforced: a wallet key's ``RETURN SIGNEDBY(<key>)`` and
the owner-locked bulletin script of REFERENCE §5 (port 0 kept, signed by ``PREVSTATE(0)``, same amount, token and
address sent back with its state). ``RETURN TRUE`` always passes; any other script fails the script check.

Invariants: a wallet spends a coin (``send``, ``tokencreate``) only once it is ``confirmations`` blocks deep
(``block - created``, 3 on real nodes: fixtures 141-149d) and while no mempool transaction spends it; ``balance``
counts coins by depth alone and is blind to the mempool (fixtures 144, 148); a ``txn*`` batch is not depth-checked
(no fixture shows what a real node answers to a young input; the gateway waits for depth anyway); a token's final
id exists only after the block that mines its ``tokencreate`` (before that, replies show a provisional id, as real
nodes do). All mutation happens under ``Chain.lock``.
"""

import hashlib
import re
import threading
from dataclasses import dataclass, field
from decimal import Context, Decimal
from typing import Any

from mns_client.protocol.codecs import mx_encode, to_hex
from simnet import javajson
from simnet.util import java_date, now_ms, random_bytes

MINIMA_TOKENID = "0x00"
CREATE_TOKENID = "0xFF"
MAX_SCALE = 44
MAX_OUTPUTS = 15
GENESIS_AMOUNT = Decimal(1000000)
TOTAL_SUPPLY = "1000000000"
_CTX = Context(prec=120)

BULLETIN_SCRIPT = (
    "ASSERT SAMESTATE(0 0) ASSERT SIGNEDBY(PREVSTATE(0)) RETURN VERIFYOUT(@INPUT @ADDRESS @AMOUNT @TOKENID TRUE)"
)
_SIGNEDBY = re.compile(r"RETURN SIGNEDBY\((0x[0-9A-Fa-f]+)\)")


class ChainError(Exception):
    """A transaction the chain refuses; the text is shown to the RPC caller."""


class NoCoins(ChainError):
    """No coin of the token is deep enough to spend: the node answers ``error`` (fixtures 141, 146, 149b, 189)."""


class InsufficientFunds(ChainError):
    """Deep coins exist but too few are free of the mempool: the node answers ``message``, not ``error`` (142, 160)."""


def h(*parts: str | bytes | int) -> str:
    """SHA3-256 of the parts, as ``0x`` hex: ids, hashes and addresses in simnet."""
    digest = hashlib.sha3_256()
    for part in parts:
        raw = part if isinstance(part, bytes) else str(part).encode("utf-8")
        digest.update(len(raw).to_bytes(4, "big") + raw)
    return to_hex(digest.digest())


def block_hash(number: int, millis: int) -> str:
    """A block id that looks mined (leading zero digits, like the fixtures'); not real proof of work."""
    return "0x0000" + h("block", number, millis, random_bytes(8))[6:]


def fmt(amount: Decimal) -> str:
    """``MiniNumber.toString()``: plain notation, no trailing zeros."""
    return "0" if amount == 0 else format(amount.normalize(_CTX), "f")


def parse_amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise ChainError(f"Invalid amount : {text}") from None
    if not value.is_finite() or value < 0:
        raise ChainError(f"Invalid amount : {text}")
    return value


def clean_script(script: str) -> str:
    return " ".join(script.split())


def script_address(script: str) -> str:
    """Simnet's script address: SHA3-256 of the cleaned script text (real nodes differ in the hash input)."""
    return to_hex(hashlib.sha3_256(clean_script(script).encode("utf-8")).digest())


def miniaddress(address: str) -> str:
    return mx_encode(bytes.fromhex(address[2:]))


# -------------------------------------------------------------------------------------------------- objects


@dataclass
class StateVar:
    port: int
    type: int
    data: str

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "type": self.type, "data": self.data}

    @classmethod
    def parse(cls, port: int, value: Any) -> "StateVar":
        """Type from the value as ``StateVariable`` does: hex/Mx 1, number 2, ``[text]`` 4, TRUE/FALSE 8."""
        text = str(value).strip()
        if not 0 <= port <= 255:
            raise ChainError(f"Invalid state port : {port}")
        if text == "":
            raise ChainError("Cannot have BLANK state variable")
        if text.startswith(("0x", "0X")):
            return cls(port, 1, "0x" + text[2:].upper())
        if text.startswith("Mx"):
            return cls(port, 1, text)
        if text.upper() in ("TRUE", "FALSE"):
            return cls(port, 8, text.upper())
        if text.startswith("[") and text.endswith("]"):
            return cls(port, 4, text)
        try:
            number = Decimal(text)
        except ArithmeticError:
            number = Decimal("NaN")
        if not number.is_finite():
            raise ChainError(f"Invalid state variable : {text}")
        return cls(port, 2, fmt(number))


@dataclass
class Token:
    name: Any
    coinid: str
    total: Decimal
    decimals: int
    script: str
    scale: int
    created: int
    tokenid: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "coinid": self.coinid,
            "total": fmt(self.total),
            "decimals": self.decimals,
            "script": self.script,
            "totalamount": fmt(self.total.scaleb(-self.scale, _CTX)),
            "scale": str(self.scale),
            "created": str(self.created),
            "tokenid": self.tokenid,
        }

    def final_id(self, coinid: str, created: int) -> str:
        return h(coinid, self.script, self.scale, fmt(self.total), javajson.dumps(self.name), created)


@dataclass
class Coin:
    coinid: str
    amount: Decimal
    address: str
    tokenid: str
    token: Token | None
    storestate: bool
    state: list[StateVar] = field(default_factory=list)
    spent: bool = False
    mmrentry: int = 0
    created: int = 0

    def tokenamount(self) -> Decimal:
        return self.amount if self.token is None else self.amount.scaleb(self.token.scale, _CTX)

    def to_json(self, *, simple_state: bool = False, age: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "coinid": self.coinid,
            "amount": fmt(self.amount),
            "address": self.address,
            "miniaddress": miniaddress(self.address),
            "tokenid": self.tokenid,
            "token": None if self.token is None else self.token.to_json(),
        }
        if self.token is not None:
            out["tokenamount"] = fmt(self.tokenamount())
        out["storestate"] = self.storestate
        if simple_state:
            out["state"] = {str(s.port): s.data for s in self.state}
        else:
            out["state"] = [s.to_json() for s in self.state]
        out["spent"] = self.spent
        out["mmrentry"] = str(self.mmrentry)
        out["created"] = str(self.created)
        if age is not None:
            out["age"] = str(age)
        return out

    def copy(self) -> "Coin":
        return Coin(**{**self.__dict__, "state": list(self.state)})


@dataclass
class Signature:
    rootkey: str
    signature: str


@dataclass
class Txn:
    inputs: list[Coin] = field(default_factory=list)
    outputs: list[Coin] = field(default_factory=list)
    state: list[StateVar] = field(default_factory=list)
    signatures: list[Signature] = field(default_factory=list)
    mmrproofs: list[tuple[Coin, int]] = field(default_factory=list)
    scripts: list[tuple[str, str]] = field(default_factory=list)

    def transactionid(self) -> str:
        return h(
            "txn",
            *(c.coinid for c in self.inputs),
            *(f"{c.address}/{fmt(c.amount)}/{c.tokenid}/{c.storestate}" for c in self.outputs),
            *(f"{s.port}/{s.type}/{s.data}" for s in self.state),
        )

    def output_coinid(self, index: int) -> str:
        first = self.inputs[0].coinid if self.inputs else "0x00"
        return h("coin", first, index)

    def set_state(self, var: StateVar) -> None:
        self.state = sorted([s for s in self.state if s.port != var.port] + [var], key=lambda s: s.port)


@dataclass
class Pending:
    """A posted transaction waiting for the next block."""

    txn: Txn
    txpowid: str


# -------------------------------------------------------------------------------------------------- the chain


class Chain:
    """The chain all nodes of one SimNetwork share."""

    def __init__(self, confirmations: int = 3) -> None:
        if confirmations < 0:
            raise ValueError("confirmations cannot be negative")
        self.confirmations = confirmations
        self.lock = threading.RLock()
        self.block = 1
        self.hashes: dict[int, str] = {1: block_hash(1, now_ms())}
        self.times: dict[int, int] = {1: now_ms()}
        self.coins: dict[str, Coin] = {}
        self.tokens: dict[str, Token] = {}
        self.scripts: dict[str, str] = {}
        self.key_secrets: dict[str, bytes] = {}
        self.mempool: list[Pending] = []
        self._mmr = 0
        self.block_event = threading.Condition(self.lock)

    # ------------------------------------------------------------------------------------ keys and scripts

    def register_wallet(self, secret: bytes, count: int = 2) -> list[str]:
        """Derive a node's wallet keys (32-byte public keys) and register their simple scripts."""
        with self.lock:
            keys = []
            for index in range(count):
                key = h("wallet", secret, index)
                self.key_secrets[key] = secret
                self.register_script(f"RETURN SIGNEDBY({key})")
                keys.append(key)
            return keys

    def register_script(self, script: str) -> str:
        with self.lock:
            address = script_address(script)
            self.scripts[address] = clean_script(script)
            return address

    def sign(self, key: str, txn: Txn) -> Signature:
        secret = self.key_secrets.get(key)
        if secret is None:
            raise ChainError(f"Public key not found : {key}")
        return Signature(key, h("sig", secret, txn.transactionid()))

    def signature_valid(self, sig: Signature, txn: Txn) -> bool:
        secret = self.key_secrets.get(sig.rootkey)
        return secret is not None and sig.signature == h("sig", secret, txn.transactionid())

    # ------------------------------------------------------------------------------------ coins

    def next_mmr(self) -> int:
        entry = self._mmr
        self._mmr += 1
        return entry

    def proof_length(self, entry: int) -> int:
        """The MMR proof length of a leaf: the height of the peak holding it, for the current number of leaves."""
        start = 0
        for height in range(self._mmr.bit_length() - 1, -1, -1):
            if self._mmr & (1 << height):
                if start <= entry < start + (1 << height):
                    return height
                start += 1 << height
        return 0

    def genesis_coin(self, address: str) -> None:
        with self.lock:
            coinid = h("genesis", address)
            if coinid not in self.coins:
                self.coins[coinid] = Coin(
                    coinid, GENESIS_AMOUNT, address, MINIMA_TOKENID, None, True, [], False, self.next_mmr(), 1
                )

    def unspent(self) -> list[Coin]:
        with self.lock:
            return [c for c in self.coins.values() if not c.spent]

    def in_mempool(self, coinid: str) -> bool:
        return any(coinid == c.coinid for p in self.mempool for c in p.txn.inputs)

    def deep(self, coin: Coin) -> bool:
        """Whether ``coin`` has the depth a wallet needs to spend it (``confirmations`` blocks)."""
        return self.block - coin.created >= self.confirmations

    def wallet_coins(self, addresses: set[str], tokenid: str) -> list[Coin]:
        """The mined, unspent coins of ``tokenid`` at ``addresses``, at any depth, mempool or not."""
        with self.lock:
            return [c for c in self.unspent() if c.address in addresses and c.tokenid == tokenid]

    def spendable(self, addresses: set[str], tokenid: str) -> list[Coin]:
        """The coins a wallet may spend now: deep enough (else ``NoCoins``), minus those a mempool txn spends."""
        with self.lock:
            deep = [c for c in self.wallet_coins(addresses, tokenid) if self.deep(c)]
            if not deep:
                raise NoCoins(f"No Coins of tokenid:{tokenid} available!")
            return [c for c in deep if not self.in_mempool(c.coinid)]

    def token(self, tokenid: str) -> Token | None:
        return self.tokens.get(tokenid)

    def coin_amount(self, tokenid: str, amount: Decimal) -> tuple[Decimal, Token | None]:
        """The coin amount (in Minima units) for ``amount`` of ``tokenid`` and the token it needs."""
        if tokenid == MINIMA_TOKENID:
            return amount, None
        token = self.tokens.get(tokenid)
        if token is None:
            raise ChainError(f"Token not found : {tokenid}")
        return amount.scaleb(-token.scale, _CTX), token

    # ------------------------------------------------------------------------------------ checking

    def check(self, txn: Txn) -> dict[str, Any]:
        """The ``txncheck`` reply for ``txn`` (fixture 93)."""
        with self.lock:
            basic = (
                bool(txn.inputs)
                and len(txn.outputs) <= MAX_OUTPUTS
                and all(c.coinid in self.coins and not self.coins[c.coinid].spent for c in txn.inputs)
            )
            totals = self._totals(txn)
            valid_amounts = all(i >= o for i, o in totals.values())
            proved = {c.coinid for c, _ in txn.mmrproofs}
            return {
                "coins": [
                    {"tokenid": tok, "input": fmt(i), "output": fmt(o), "difference": fmt(i - o)}
                    for tok, (i, o) in totals.items()
                ],
                "tokens": len(totals),
                "inputs": len(txn.inputs),
                "outputs": len(txn.outputs),
                "burn": "0",
                "validamounts": valid_amounts,
                "signatures": len(txn.signatures),
                "valid": {
                    "basic": basic and valid_amounts,
                    "signatures": all(self.signature_valid(s, txn) for s in txn.signatures),
                    "mmrproofs": all(c.coinid in proved for c in txn.inputs),
                    "scripts": all(self._script_ok(txn, i) for i in range(len(txn.inputs))),
                },
            }

    def _totals(self, txn: Txn) -> dict[str, tuple[Decimal, Decimal]]:
        totals: dict[str, tuple[Decimal, Decimal]] = {}
        for coin in txn.inputs:
            i, o = totals.get(coin.tokenid, (Decimal(0), Decimal(0)))
            totals[coin.tokenid] = (i + coin.amount, o)
        for coin in txn.outputs:
            tok = coin.tokenid if coin.tokenid != CREATE_TOKENID else MINIMA_TOKENID
            i, o = totals.get(tok, (Decimal(0), Decimal(0)))
            totals[tok] = (i, o + coin.amount)
        return totals

    def _signed_by(self, txn: Txn, key: str) -> bool:
        return any(s.rootkey.upper() == key.upper() and self.signature_valid(s, txn) for s in txn.signatures)

    def _script_ok(self, txn: Txn, index: int) -> bool:
        coin = txn.inputs[index]
        known = dict(txn.scripts)
        script = known.get(coin.address) or self.scripts.get(coin.address)
        if script is None:
            return False
        if script == "RETURN TRUE":
            return True
        match = _SIGNEDBY.fullmatch(script)
        if match:
            return self._signed_by(txn, match.group(1))
        if script == clean_script(BULLETIN_SCRIPT):
            return self._bulletin_ok(txn, index)
        return False

    def _bulletin_ok(self, txn: Txn, index: int) -> bool:
        """The bulletin rule: port 0 kept, signed by PREVSTATE(0), same address/amount/token back with state."""
        coin = txn.inputs[index]
        prev = {s.port: s.data for s in coin.state}
        now = {s.port: s.data for s in txn.state}
        if 0 not in prev or now.get(0, "").upper() != prev[0].upper():
            return False
        if not self._signed_by(txn, prev[0]):
            return False
        if index >= len(txn.outputs):
            return False
        out = txn.outputs[index]
        return (out.address, out.amount, out.tokenid, out.storestate) == (coin.address, coin.amount, coin.tokenid, True)

    # ------------------------------------------------------------------------------------ posting and mining

    def post(self, txn: Txn) -> Pending:
        with self.lock:
            result = self.check(txn)
            valid = result["valid"]
            for coin in txn.inputs:
                if self.in_mempool(coin.coinid):
                    raise ChainError(f"Coin already being spent in mempool : {coin.coinid}")
            if not valid["basic"]:
                raise ChainError("Invalid TxPoW : basic checks failed")
            if not (valid["signatures"] and valid["mmrproofs"] and valid["scripts"]):
                raise ChainError("Invalid TxPoW : scripts or signatures failed")
            pending = Pending(txn, h("txpow", txn.transactionid(), now_ms(), random_bytes(8)))
            self.mempool.append(pending)
            return pending

    def mine(self) -> list[tuple[Coin, bool]]:
        """Make one block: apply the mempool. Returns the (coin snapshot, spent) changes in order, for NEWCOIN."""
        with self.lock:
            self.block += 1
            self.times[self.block] = now_ms()
            self.hashes[self.block] = block_hash(self.block, self.times[self.block])
            changes: list[tuple[Coin, bool]] = []
            for pending in self.mempool:
                changes.extend(self._apply(pending.txn))
            self.mempool = []
            self.block_event.notify_all()
            return changes

    def _apply(self, txn: Txn) -> list[tuple[Coin, bool]]:
        if any(c.coinid not in self.coins or self.coins[c.coinid].spent for c in txn.inputs):
            return []
        changes = []
        for coin in txn.inputs:
            stored = self.coins[coin.coinid]
            stored.spent = True
            changes.append((stored.copy(), True))
        for index, out in enumerate(txn.outputs):
            coin = out.copy()
            coin.coinid = txn.output_coinid(index)
            coin.created, coin.mmrentry = self.block, self.next_mmr()
            coin.state = list(txn.state) if coin.storestate else []
            if coin.tokenid == CREATE_TOKENID and coin.token is not None:
                coin.token = self._finalise_token(coin)
                coin.tokenid = coin.token.tokenid
            self.coins[coin.coinid] = coin
            changes.append((coin.copy(), False))
        return changes

    def _finalise_token(self, coin: Coin) -> Token:
        assert coin.token is not None
        token = Token(**{**coin.token.__dict__})
        token.coinid, token.created = coin.coinid, self.block
        token.tokenid = token.final_id(coin.coinid, self.block)
        self.tokens[token.tokenid] = token
        return token

    def block_info(self, number: int | None = None) -> dict[str, Any]:
        with self.lock:
            n = self.block if number is None else number
            return {
                "block": str(n),
                "hash": self.hashes[n],
                "timemilli": str(self.times[n]),
                "date": java_date(self.times[n]),
            }

    # ------------------------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "block": self.block,
                "hashes": {str(k): v for k, v in self.hashes.items()},
                "times": {str(k): v for k, v in self.times.items()},
                "mmr": self._mmr,
                "coins": [_coin_to_dict(c) for c in self.coins.values()],
                "tokens": [_token_to_dict(t) for t in self.tokens.values()],
                "scripts": self.scripts,
            }

    def load_dict(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.block = data["block"]
            self.hashes = {int(k): v for k, v in data["hashes"].items()}
            self.times = {int(k): v for k, v in data["times"].items()}
            self._mmr = data["mmr"]
            self.tokens = {t["tokenid"]: _token_from_dict(t) for t in data["tokens"]}
            self.coins = {c["coinid"]: _coin_from_dict(c) for c in data["coins"]}
            self.scripts.update(data["scripts"])


def _token_to_dict(t: Token) -> dict[str, Any]:
    return {**t.__dict__, "total": str(t.total)}


def _token_from_dict(d: dict[str, Any]) -> Token:
    return Token(**{**d, "total": Decimal(d["total"])})


def _coin_to_dict(c: Coin) -> dict[str, Any]:
    return {
        **c.__dict__,
        "amount": str(c.amount),
        "token": None if c.token is None else _token_to_dict(c.token),
        "state": [s.__dict__ for s in c.state],
    }


def _coin_from_dict(d: dict[str, Any]) -> Coin:
    return Coin(
        **{
            **d,
            "amount": Decimal(d["amount"]),
            "token": None if d["token"] is None else _token_from_dict(d["token"]),
            "state": [StateVar(**s) for s in d["state"]],
        }
    )
