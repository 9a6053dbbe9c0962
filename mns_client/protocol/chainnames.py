"""Names on chain as Minima's own MNS MiniDapp (v0.6) registers them (``docs/protocol.md``, "Names on chain").

A name is registered by sending Minima to the fixed address ``0xFFEEDDFFEEDDFFEEDD`` with six state ports:
``[owner]``, ``[transfer]``, ``[name]``, ``[data]`` (brackets kept on chain), ``datahex`` and the owner's wallet
``sign`` over ``encodeURIComponent(owner:transfer:name:data:datahex)`` (``'`` as ``%27``) in ASCII. The first
valid coin of a name makes its holder the coin's ``transfer`` key; a later valid coin whose ``owner`` is the
current holder updates the record and hands it to that coin's ``transfer``; any other coin is ignored.

Parsing is strict (``fields.py``) and pure; the signature check is the caller's, through the node's ``verify``
(``MinimaRPC.verify``), passed in as a callable, since only a node can check a wallet (TreeKey) key. The two
functions at the end ask a node: ``fetch_coins`` (the one query, used by the gateway, which keeps what it reads) and
``read_name`` (a client's uncached reading through its own node).
"""

import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import fields
from .errors import Refusal

if TYPE_CHECKING:
    from .rpc import MinimaRPC

MNS_ADDRESS = "0xFFEEDDFFEEDDFFEEDD"
MINIMA_TOKENID = "0x00"
PORTS = 6
MAX_PORT_CHARS = 65_536  # MNS keeps data and datahex in 64k CLOBs; a longer port cannot be one of its records

# A wallet key as `keys` and `getaddress` show it: the root of a TreeKey, 32 bytes (fixtures 83, 100).
_WALLET_KEY_RE = re.compile(r"0x[0-9A-Fa-f]{64}")
_HEX_RE = re.compile(r"0x(?:[0-9A-Fa-f]{2})*")
_COINID_RE = re.compile(r"0x[0-9A-Fa-f]{64}")
_BLOCK_RE = re.compile(r"0|[1-9][0-9]{0,18}")
# encodeURIComponent leaves these unescaped; MNS then escapes ' itself (``encodeStringForDB``).
_URI_COMPONENT_SAFE = "-_.!~*()"


class ChainCoinInvalid(Refusal):
    """A coin at the MNS address that is not an MNS record (anyone can send anything there): skipped."""


def _invalid(field: str, problem: str) -> ChainCoinInvalid:
    return ChainCoinInvalid("chain_coin_invalid", f"{field} {problem}", field=field)


def strip_brackets(value: str) -> str:
    """MNS's ``stripBrackets``: trim, then drop one leading ``[`` and one trailing ``]``."""
    value = value.strip()
    if value.startswith("["):
        value = value[1:]
    if value.endswith("]"):
        value = value[:-1]
    return value


def signed_text(*, owner: str, transfer: str, name: str, data: str, datahex: str) -> str:
    """What the owner signs, as text: ``encodeURIComponent(owner:transfer:name:data:datahex)`` with ``'`` → %27."""
    return urllib.parse.quote(f"{owner}:{transfer}:{name}:{data}:{datahex}", safe=_URI_COMPONENT_SAFE)


def signed_data(*, owner: str, transfer: str, name: str, data: str, datahex: str) -> bytes:
    """The bytes passed to ``sign``/``verify``: ``convert from:string to:hex`` of ``signed_text`` (UTF-8, and it
    is ASCII anyway), fixtures 120/121."""
    return signed_text(owner=owner, transfer=transfer, name=name, data=data, datahex=datahex).encode("ascii")


@dataclass(frozen=True)
class ChainCoin:
    """One MNS record coin: the stripped state ports and where the coin sits on chain."""

    coinid: str
    created: int
    owner: str
    transfer: str
    name: str
    data: str
    datahex: str
    signature: bytes

    def signed_data(self) -> bytes:
        return signed_data(
            owner=self.owner, transfer=self.transfer, name=self.name, data=self.data, datahex=self.datahex
        )


@dataclass(frozen=True)
class ChainName:
    """A name's record as the first-valid-coin rule leaves it.

    ``holder`` is the wallet key that controls the name now (the last applied coin's ``transfer``);
    ``registrant`` signed the first valid coin; ``created``/``updated`` are the blocks of the first and the last
    applied coins (MNS's ``UPDATED``)."""

    name: str
    holder: str
    registrant: str
    data: str
    datahex: str
    created: int
    updated: int
    coinid: str


def _state_ports(coin: Mapping[str, Any]) -> dict[int, str]:
    """``{port: text}`` from either shape the node gives: ``{"0": v}`` (``simplestate:true``, fixture 150) or
    ``[{port, type, data}]`` (fixture 152)."""
    state = coin["state"]
    if isinstance(state, dict):
        items = [(port, value) for port, value in state.items()]
    elif isinstance(state, list):
        items = []
        for entry in state:
            fields.check_keys(entry, required={"port", "type", "data"}, invalid=_invalid, what="state")
            items.append((str(fields.integer(entry["port"], "state port", invalid=_invalid, high=255)), entry["data"]))
    else:
        raise _invalid("state", "must be an object or a list")
    ports: dict[int, str] = {}
    for port, value in items:
        if not isinstance(port, str) or not re.fullmatch(r"[0-9]{1,3}", port):
            raise _invalid("state", "has a port that is not a number")
        ports[int(port)] = fields.text(value, f"state {port}", invalid=_invalid, min_chars=0, max_chars=MAX_PORT_CHARS)
    return ports


def is_mns_coin(coin: Any) -> bool:
    """A coin at the MNS address in Minima (MNS's ``processCoin`` drops every other; the amount is not checked)."""
    return isinstance(coin, Mapping) and coin.get("address") == MNS_ADDRESS and coin.get("tokenid") == MINIMA_TOKENID


def parse_coin(coin: Any) -> ChainCoin:
    """One coin of a ``coins address:0xFFEEDDFFEEDDFFEEDD`` reply, or ``ChainCoinInvalid``.

    Beyond the shape, what MNS's ``verifySig`` refuses before asking the node is refused here too (owner, datahex
    and signature not ``0x``), and so is what can never verify or be compared: an owner or transfer that is not a
    32-byte wallet key, a signature that is not hex, an empty name."""
    body = fields.check_keys(
        coin, required={"coinid", "address", "tokenid", "state", "created"}, invalid=_invalid, what="coin", others=True
    )
    if not is_mns_coin(body):
        raise _invalid("coin", "is not a Minima coin at the MNS address")
    coinid = fields.text(body["coinid"], "coinid", invalid=_invalid, pattern=_COINID_RE)
    created = int(fields.text(body["created"], "created", invalid=_invalid, pattern=_BLOCK_RE))
    ports = _state_ports(body)
    missing = [port for port in range(PORTS) if port not in ports]
    if missing:
        raise _invalid(f"state {missing[0]}", "is missing")
    owner, transfer = strip_brackets(ports[0]), strip_brackets(ports[1])
    for field, key in (("owner", owner), ("transfer", transfer)):
        fields.text(key, field, invalid=_invalid, pattern=_WALLET_KEY_RE)
    name = fields.text(strip_brackets(ports[2]), "name", invalid=_invalid)
    datahex = fields.text(ports[4], "datahex", invalid=_invalid, pattern=_HEX_RE)
    signature = fields.text(ports[5], "signature", invalid=_invalid, min_chars=4, pattern=_HEX_RE)
    return ChainCoin(
        coinid=coinid,
        created=created,
        owner=owner,
        transfer=transfer,
        name=name,
        data=strip_brackets(ports[3]),
        datahex=datahex,
        signature=bytes.fromhex(signature[2:]),
    )


def parse_coins(coins: Any) -> tuple[list[ChainCoin], int]:
    """The MNS coins of a ``coins`` reply (a list), in the order given, and how many coins were skipped as not
    being MNS records. A reply that is not a list is ``ChainCoinInvalid``."""
    fields.json_list(coins, "coins", invalid=_invalid)
    parsed, skipped = [], 0
    for coin in coins:
        try:
            parsed.append(parse_coin(coin))
        except ChainCoinInvalid:
            skipped += 1
    return parsed, skipped


def name_record(coins: Iterable[ChainCoin], name: str, *, verify: Callable[[ChainCoin], bool]) -> ChainName | None:
    """Fold the coins of ``name`` (exact match: ``coins state:`` matches substrings) into its record, or None.

    Coins are taken oldest first (by ``created``, then in the order given, which ``order:asc`` makes the node's).
    A coin counts when no record exists yet, or when its ``owner`` is the current holder (compared as text, as
    MNS does), and only then is ``verify`` asked, so a squatter's coin never costs a node call. A coin whose
    signature does not verify is skipped, and the next one is considered (MNS's ``_checkValidChainCoins``).
    """
    record: ChainName | None = None
    for coin in sorted((c for c in coins if c.name == name), key=lambda c: c.created):
        if record is not None and coin.owner != record.holder:
            continue
        if not verify(coin):
            continue
        record = ChainName(
            name=name,
            holder=coin.transfer,
            registrant=coin.owner if record is None else record.registrant,
            data=coin.data,
            datahex=coin.datahex,
            created=coin.created if record is None else record.created,
            updated=coin.created,
            coinid=coin.coinid,
        )
    return record


def state_filter(name: str) -> str | None:
    """The ``coins … state:`` value that narrows a search to ``name``, or None when the name cannot be sent as one
    (not printable ASCII, or it holds a character the node would read as JSON or a separator): then all the
    address's coins are read and the exact match does the rest."""
    if not re.fullmatch(r"[\x21-\x7e]+", name) or set(name) & set(';"{}[]\\:'):
        return None
    return name


def fetch_coins(rpc: "MinimaRPC", name: str) -> tuple[list[ChainCoin], int]:
    """The MNS coins of exactly ``name`` the node knows, oldest first (``coins address: state: order:asc
    simplestate:true``, fixture 150), and how many coins of the reply were not records of that name."""
    reply = rpc.coins(address=MNS_ADDRESS, state=state_filter(name), order="asc", simplestate=True)
    coins, skipped = parse_coins(reply)
    named = [coin for coin in coins if coin.name == name]
    return named, skipped + len(coins) - len(named)


def read_name(rpc: "MinimaRPC", name: str) -> ChainName | None:
    """``name``'s record on chain as the node ``rpc`` knows it, its signatures checked by that node's ``verify``."""
    coins, _ = fetch_coins(rpc, name)
    return name_record(
        coins,
        name,
        verify=lambda coin: rpc.verify(publickey=coin.owner, data=coin.signed_data(), signature=coin.signature),
    )
