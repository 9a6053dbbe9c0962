"""Entry points on chain (DESIGN §6, REFERENCE §5): the bulletin format, and reading, checking and picking it.

A publishing gateway keeps ONE coin of its entry-point token (total supply 1) at the address of the owner-locked
``BULLETIN_SCRIPT``. The coin's state is the bulletin:

- port 0: the owner key (a wallet key of the publisher's node; the script only lets that key spend the coin);
- port 1: ``0x`` + hex of the canonical JSON ``{"v":1,"seq":…,"issued_at":…,"entries":[{maxima_address,
  identity_key, api_url}, …]}``;
- port 2: ``seq`` again, as a number (so a reader can order coins without decoding port 1).

Every rotation spends that coin and makes its successor with new state, in one ``txn*`` batch. A reader asks its
own node (``newscript trackall:true`` of the script, then ``coins address:``), keeps only coins at the script's
address, of the expected token, with the expected owner in port 0, whose list parses, and whose ``seq`` is not
lower than the highest it has already seen; then takes the highest ``seq`` and picks an entry at random.
Everything refused is logged with the reason. No Django here: the gateway and the ``mns`` client share it.
"""

import logging
import random
from dataclasses import dataclass, field
from typing import Any

from mns_client.protocol import fields
from mns_client.protocol.codecs import CodecError, PermanentAddress, canonical_json, from_hex, parse_public_key, to_hex
from mns_client.protocol.errors import MNSError
from mns_client.protocol.transparency import ProofInvalid, SignedRoot

logger = logging.getLogger(__name__)

# REFERENCE §5: port 0 kept, signed by the key in port 0, same amount/token/address back with the state.
BULLETIN_SCRIPT = (
    "ASSERT SAMESTATE(0 0) ASSERT SIGNEDBY(PREVSTATE(0)) RETURN VERIFYOUT(@INPUT @ADDRESS @AMOUNT @TOKENID TRUE)"
)
VERSION = 1
MAX_ENTRIES = 32
MAX_BULLETIN_BYTES = 16 * 1024  # far below the 64 KiB a transaction may carry
MAX_API_URL = 300
PORT_OWNER, PORT_LIST, PORT_SEQ = 0, 1, 2


class BulletinInvalid(MNSError):
    """A bulletin (or one of its entries) that a reader must ignore; ``code`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def _unparsable(field: str, problem: str) -> BulletinInvalid:
    return BulletinInvalid("unparsable", f"{field}: {problem}")


def _bad_entry(field: str, problem: str) -> BulletinInvalid:
    return BulletinInvalid("bad_entry", f"the entry's {field}: {problem}")


@dataclass(frozen=True)
class Entry:
    maxima_address: str  # MAX#0x<key>#Mx…@host:port: a permanent address
    identity_key: str  # 0x… the gateway's Maxima identity key
    api_url: str  # the gateway's base URL (http[s]://host[:port])

    def to_dict(self) -> dict[str, str]:
        return {"maxima_address": self.maxima_address, "identity_key": self.identity_key, "api_url": self.api_url}


@dataclass(frozen=True)
class Bulletin:
    seq: int
    issued_at: int  # milliseconds since the epoch
    entries: tuple[Entry, ...]
    v: int = VERSION
    root: SignedRoot | None = None  # the directory's agreed root and its signers (docs/protocol.md, "Transparency")

    def to_dict(self) -> dict[str, Any]:
        body = {
            "v": self.v,
            "seq": self.seq,
            "issued_at": self.issued_at,
            "entries": [e.to_dict() for e in self.entries],
        }
        if self.root is not None:
            body["root"] = self.root.to_dict()
        return body

    def encode(self) -> bytes:
        """The canonical JSON that goes, hex-encoded, into state port 1."""
        data = canonical_json(self.to_dict())
        if len(data) > MAX_BULLETIN_BYTES:
            raise BulletinInvalid("too_large", f"the bulletin is {len(data)} bytes, more than {MAX_BULLETIN_BYTES}")
        return data

    def state(self, owner: str) -> dict[int, str]:
        """The coin state of this bulletin, for ``send … state:`` and the rotation's ``txnstate``."""
        return {PORT_OWNER: owner, PORT_LIST: to_hex(self.encode()), PORT_SEQ: str(self.seq)}


@dataclass(frozen=True)
class Reading:
    """The bulletin a reader accepted, with where it found it."""

    bulletin: Bulletin
    coinid: str
    block: int
    refused: list[str] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {**self.bulletin.to_dict(), "coinid": self.coinid, "block": self.block}


# ------------------------------------------------------------------------------------------------ entries


def permanent_address(text: Any) -> PermanentAddress:
    """``text`` parsed if it is a permanent ``MAX#0x<key>#Mx…@host:port`` address (DESIGN §5), else raise.

    A plain ``Mx…@host:port`` is refused: a node's contact changes, and only a permanent address is worth
    publishing for hours."""
    if not isinstance(text, str) or not text:
        raise BulletinInvalid("not_permanent", "the entry has no Maxima address")
    try:
        return PermanentAddress.parse(text)
    except CodecError:
        raise BulletinInvalid("not_permanent", f"{text[:24]!r}… is not a permanent MAX# address") from None


def parse_entry(raw: Any) -> Entry:
    fields.check_keys(raw, required=("maxima_address", "identity_key", "api_url"), invalid=_bad_entry, what="entry")
    address = permanent_address(raw["maxima_address"])
    try:
        key = to_hex(parse_public_key(raw["identity_key"]))
    except (CodecError, TypeError):
        raise BulletinInvalid("bad_entry", "the entry's identity_key is not a Maxima key") from None
    if address.identity_hex != key:
        raise BulletinInvalid("bad_entry", "the entry's MAX# address is another key's")
    url = raw["api_url"]
    if not isinstance(url, str) or len(url) > MAX_API_URL or not url.startswith(("https://", "http://")):
        raise BulletinInvalid("bad_entry", "the entry's api_url is not an http(s) URL")
    return Entry(maxima_address=raw["maxima_address"], identity_key=key, api_url=url)


def entries_from(raw: Any, *, where: str) -> tuple[Entry, ...]:
    """The usable entries of a list; each unusable one is dropped with a log line saying why."""
    if not isinstance(raw, list) or len(raw) > MAX_ENTRIES:
        raise BulletinInvalid("unparsable", f"entries is not a list of at most {MAX_ENTRIES}")
    kept = []
    for index, item in enumerate(raw):
        try:
            kept.append(parse_entry(item))
        except BulletinInvalid as exc:
            logger.warning("entry points: %s: entry %d ignored (%s): %s", where, index, exc.code, exc)
    return tuple(kept)


def parse_bulletin(data: bytes, *, where: str = "bulletin") -> Bulletin:
    """Decode and check the JSON of state port 1. Raises ``BulletinInvalid``; bad entries are dropped (logged)."""
    if len(data) > MAX_BULLETIN_BYTES:
        raise BulletinInvalid("unparsable", "the list is too large")
    raw = fields.loads(data, invalid=_unparsable, what="the list")
    return bulletin_from_dict(raw, where=where)


def bulletin_from_dict(raw: Any, *, where: str = "bulletin", others: bool = False) -> Bulletin:
    """Check a bulletin's fields strictly (``fields``); ``others`` lets a wrapper (the gateway's REST answer, which
    adds ``coinid`` and ``block``) carry more keys than the on-chain form, which has exactly these four."""
    if not isinstance(raw, dict) or not fields.is_integer(raw.get("v")) or raw["v"] != VERSION:
        raise BulletinInvalid("unparsable", f"the list is not a version {VERSION} bulletin")
    required = ("v", "seq", "issued_at", "entries")
    fields.check_keys(raw, required=required, optional={"root"}, invalid=_unparsable, what="the list", others=others)
    seq = fields.integer(raw["seq"], "seq", invalid=_unparsable, low=1)
    issued_at = fields.integer(raw["issued_at"], "issued_at", invalid=_unparsable)
    entries = entries_from(raw["entries"], where=where)
    try:
        root = SignedRoot.from_dict(raw["root"]) if "root" in raw else None
    except ProofInvalid as bad:
        raise BulletinInvalid("unparsable", f"the directory root: {bad}") from None
    return Bulletin(seq=seq, issued_at=issued_at, entries=entries, root=root)


# ------------------------------------------------------------------------------------------------ coins


def coin_state(coin: dict[str, Any]) -> dict[int, str]:
    """A coin's state as {port: value}, from ``coins`` (a ``[{port,type,data}]`` array) or from ``simplestate``
    and the NEWCOIN webhook (a ``{"port": value}`` object) — fixtures 85, 86, 90."""
    state = coin.get("state")
    if isinstance(state, dict):
        return {int(port): str(value) for port, value in state.items()}
    if isinstance(state, list):
        return {int(item["port"]): str(item["data"]) for item in state if isinstance(item, dict)}
    return {}


def bulletin_of_coin(coin: dict[str, Any], *, address: str, tokenid: str, owner: str) -> Bulletin:
    """The bulletin a coin carries, if it is one of ours: at ``address``, of ``tokenid``, owned by ``owner``."""
    if str(coin.get("address", "")).upper() != address.upper():
        raise BulletinInvalid("wrong_address", f"the coin is at {coin.get('address')}, not at the bulletin script")
    if str(coin.get("tokenid", "")).upper() != tokenid.upper():
        raise BulletinInvalid("wrong_token", "the coin is not of the entry-point token")
    if coin.get("spent") is True:
        raise BulletinInvalid("spent", "the coin is spent")
    state = coin_state(coin)
    if state.get(PORT_OWNER, "").upper() != owner.upper():
        raise BulletinInvalid("wrong_owner", "the coin's port 0 is not the publisher's key")
    try:
        data = from_hex(state.get(PORT_LIST, ""))
    except (CodecError, ValueError):
        raise BulletinInvalid("unparsable", "port 1 is not hex") from None
    bulletin = parse_bulletin(data, where=f"coin {str(coin.get('coinid'))[:18]}…")
    if state.get(PORT_SEQ) != str(bulletin.seq):
        raise BulletinInvalid("unparsable", "port 2 does not match the list's seq")
    return bulletin


def newest_bulletin(
    coins: list[dict[str, Any]], *, address: str, tokenid: str, owner: str, min_seq: int = 0
) -> Reading | None:
    """The highest-seq acceptable bulletin among ``coins`` (a ``coins address:`` reply), or None.

    A coin elsewhere, of another token or owner, a list that does not parse, and a seq lower than ``min_seq``
    (the highest already seen) are ignored, each with a log line.
    """
    best: Reading | None = None
    refused: list[str] = []
    for coin in coins:
        coinid = str(coin.get("coinid", "?"))
        try:
            bulletin = bulletin_of_coin(coin, address=address, tokenid=tokenid, owner=owner)
            if bulletin.seq < min_seq:
                raise BulletinInvalid("stale", f"seq {bulletin.seq} is lower than {min_seq}, already seen")
        except BulletinInvalid as exc:
            logger.warning("entry points: coin %s ignored (%s): %s", coinid, exc.code, exc)
            refused.append(exc.code)
            continue
        if best is None or bulletin.seq > best.bulletin.seq:
            best = Reading(bulletin=bulletin, coinid=coinid, block=_int(coin.get("created")))
    if best is None:
        return None
    return Reading(bulletin=best.bulletin, coinid=best.coinid, block=best.block, refused=refused)


def pick(bulletin: Bulletin, *, rng: random.Random | None = None) -> Entry:
    """One entry at random (``BulletinInvalid`` ``empty`` when the list has none)."""
    if not bulletin.entries:
        raise BulletinInvalid("empty", "the bulletin lists no entry points")
    return (rng or random.SystemRandom()).choice(bulletin.entries)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class ChainConfig:
    """What a reader must know to find and trust the bulletin: the publisher's token and owner key (and the
    script, which every MNS reader shares)."""

    tokenid: str
    owner: str
    script: str = BULLETIN_SCRIPT

    @classmethod
    def from_dict(cls, raw: Any) -> "ChainConfig":
        if not isinstance(raw, dict):
            raise BulletinInvalid("not_configured", "no entry-point configuration")
        try:
            tokenid, owner = to_hex(from_hex(raw["tokenid"])), to_hex(from_hex(raw["owner"]))
        except (KeyError, CodecError):
            raise BulletinInvalid("not_configured", "the entry-point tokenid and owner are 0x… hex") from None
        script = raw.get("script") or BULLETIN_SCRIPT
        if " ".join(str(script).split()) != BULLETIN_SCRIPT:
            raise BulletinInvalid("not_configured", "the entry-point script is not the MNS bulletin script")
        return cls(tokenid=tokenid, owner=owner, script=BULLETIN_SCRIPT)

    def to_dict(self) -> dict[str, str]:
        return {"tokenid": self.tokenid, "owner": self.owner, "script": self.script}


def read_from_node(rpc: Any, config: ChainConfig, *, min_seq: int = 0) -> Reading | None:
    """The newest acceptable bulletin the node sees: ``newscript trackall:true`` of the script (which also tells
    the script's address on this node), then ``coins address: tokenid:``, then the checks of ``newest_bulletin``.

    ``rpc`` is a ``mns_client.protocol.rpc.MinimaRPC``.
    """
    address = str(rpc.newscript(script=config.script, trackall=True)["address"])
    coins = rpc.coins(address=address, tokenid=config.tokenid)
    return newest_bulletin(coins, address=address, tokenid=config.tokenid, owner=config.owner, min_seq=min_seq)
