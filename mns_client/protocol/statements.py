"""Owner-signed name statements (DESIGN §2; ``docs/protocol.md`` "Name statements").

A name's record is a chain of statements, each signed by the owner with ``maxsign`` (SHA256withRSA, PKCS#1 v1.5)
over ``canonical()``: the node is given ``data:0x<hex of the canonical bytes>``. Any gateway checks the signature
with the statement's own ``owner`` key, so a peer can relay a statement but never forge or alter one.

Decisions, each kept by ``NameStatement.__post_init__`` so an invalid statement cannot exist:

- Canonical bytes = ``json.dumps(to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8.
  A field that is ``None`` is *omitted*, never written as ``null``; ``from_dict`` refuses ``null``, so a statement
  has exactly one written form and a signer that wrote ``null`` finds out at parsing, not as a bad signature.
- Every value has one spelling: keys are ``0x`` + upper-case hex of the DER (what ``maxima action:info`` prints),
  the box key ``0x`` + upper-case hex of 32 bytes, the name already normalised. Other spellings are refused
  rather than converted, because converting would change the signed bytes.
- ``register``, ``update``, ``transfer`` and ``accept`` carry a ``box_key``; ``release`` carries none of
  ``box_key``, ``payment_address`` and ``data``: a released name has no mailbox, no wallet and no record.
- ``data`` is the owner's free record (a website for MNS Web, a Minima address, anything a MiniDapp publishes): a
  small JSON object with one canonical form in every language (``check_data``), signed like every other field.
- A name changes owner in two signed steps: the owner's ``transfer`` names the new key (``to``) and a deadline
  (``expires_at``); the new key's ``accept`` (``accepts`` = the offer's ``seq``) takes the name with its own box
  key. Until then the owner's binding stands, and any later statement of the owner withdraws the offer.
- ``seq`` and ``issued_at`` are integers in ``0 … 2**53-1`` (``seq`` from 1), so the browser Dapp reads them exactly.
- ``gateway`` may change in an ``update``: that is how an owner moves a name to another provider.
"""

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mns_client.protocol import fields
from mns_client.protocol.codecs import canonical_json, canonical_public_key, from_hex, mx_decode, to_hex
from mns_client.protocol.crypto import signed_by
from mns_client.protocol.errors import CodecError, Refusal
from mns_client.protocol.names import NameRefused, normalise

VERSION = 1
OPS = ("register", "update", "release", "transfer", "accept")
Op = Literal["register", "update", "release", "transfer", "accept"]
MAX_SAFE_INTEGER = fields.MAX_SAFE_INTEGER
BOX_KEY_LENGTH = 32
SIGNATURE_LENGTH = 128
PAYMENT_ADDRESS_LENGTH = 32

_REQUIRED = ("v", "op", "name", "owner", "seq", "issued_at", "gateway")
_OPTIONAL = ("box_key", "payment_address", "data", "to", "expires_at", "accepts")
_HOLDER_FIELDS = ("box_key", "payment_address", "data")
# The fields only one op carries, required there and refused elsewhere.
_OP_FIELDS = {"transfer": ("to", "expires_at"), "accept": ("accepts",)}
TRANSFER_MAX_MS = 30 * 24 * 3600 * 1000  # an offer stands at most 30 days after it was issued

DATA_MAX_BYTES = 1024  # of the data object's canonical JSON
DATA_MAX_DEPTH = 4  # the data object itself is depth 1
DATA_MAX_KEYS = 32  # keys of every object inside, counted together
DATA_KEY_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Characters JSON writers escape differently (or that UTF-8 cannot carry): refused, so one canonical form exists.
_DATA_TEXT_REFUSED = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


class StatementInvalid(Refusal):
    """A statement, its signature or its place in a chain was refused.

    ``code`` is ``statement_invalid`` for a malformed statement (``field`` names the culprit),
    ``signature_invalid`` for a bad signature, and one ``statement_*`` code per succession rule.
    """

    code = "statement_invalid"


def _invalid(name: str, problem: str) -> StatementInvalid:
    return StatementInvalid("statement_invalid", f"{name}: {problem}", field=name)


def _not_signed_statement(field: str, problem: str) -> StatementInvalid:
    return StatementInvalid("statement_invalid", "a signed statement has exactly: statement, signature")


def _check_int(name: str, value: object, low: int) -> None:
    fields.integer(value, name, invalid=_invalid, low=low)


def _check_text(name: str, value: object) -> str:
    return fields.text(value, name, invalid=_invalid, min_chars=0)


def _check_public_key(name: str, value: object) -> None:
    text = _check_text(name, value)
    if not text.startswith("0x"):
        raise _invalid(name, "must be 0x followed by the hex of an RSA-1024 public key")
    try:
        canonical = canonical_public_key(text)
    except CodecError:
        raise _invalid(name, "is not an RSA-1024 public key") from None
    if canonical != text:
        raise _invalid(name, "must be written as 0x followed by upper-case hex")


def _check_hex_bytes(name: str, value: object, length: int) -> None:
    text = _check_text(name, value)
    try:
        raw = from_hex(text)
    except CodecError:
        raise _invalid(name, f"must be 0x followed by the hex of {length} bytes") from None
    if len(raw) != length:
        raise _invalid(name, f"must be {length} bytes, not {len(raw)}")
    if to_hex(raw) != text:
        raise _invalid(name, "must be written as 0x followed by upper-case hex")


def _check_payment_address(value: object) -> None:
    text = _check_text("payment_address", value)
    if text.startswith("Mx"):
        try:
            raw = mx_decode(text)
        except CodecError:
            raise _invalid("payment_address", "is not a valid Mx address") from None
        if len(raw) != PAYMENT_ADDRESS_LENGTH:
            raise _invalid("payment_address", f"must be an address of {PAYMENT_ADDRESS_LENGTH} bytes")
    else:
        _check_hex_bytes("payment_address", text, PAYMENT_ADDRESS_LENGTH)


def check_data(value: object) -> dict[str, Any]:
    """A name's data record as the protocol admits it, or ``StatementInvalid`` (field ``data``).

    A non-empty JSON object of at most ``DATA_MAX_BYTES`` canonical bytes, ``DATA_MAX_DEPTH`` levels of nesting
    and ``DATA_MAX_KEYS`` keys in all; keys of ``[A-Za-z0-9_.:-]``, 1 to 64 characters (so every language sorts
    them alike); values are strings, integers in the safe range, booleans, arrays and objects. Refused, because
    they have no single written form: ``null`` (leave the key out), fractions and exponents, and control
    characters or lone surrogates in strings.
    """
    if not isinstance(value, dict) or not value:
        raise _invalid("data", "must be a non-empty JSON object (leave data out for none)")
    keys = _check_data_value(value, 1)
    if keys > DATA_MAX_KEYS:
        raise _invalid("data", f"has {keys} keys; at most {DATA_MAX_KEYS}")
    size = len(canonical_json(value))
    if size > DATA_MAX_BYTES:
        raise _invalid("data", f"is {size} bytes in canonical JSON; at most {DATA_MAX_BYTES}")
    return value


def _check_data_value(value: object, depth: int) -> int:
    """Check one value of a data record; returns the number of object keys in it."""
    if isinstance(value, str):
        if _DATA_TEXT_REFUSED.search(value):
            raise _invalid("data", "strings must not hold control characters or lone surrogates")
        return 0
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise _invalid("data", "integers must be within ±(2^53-1)")
        return 0
    if isinstance(value, list | dict):
        if depth > DATA_MAX_DEPTH:
            raise _invalid("data", f"is nested deeper than {DATA_MAX_DEPTH} levels")
        if isinstance(value, list):
            return sum(_check_data_value(item, depth + 1) for item in value)
        for key in value:
            if not isinstance(key, str) or not DATA_KEY_RE.fullmatch(key):
                raise _invalid("data", "keys are 1 to 64 characters of A-Z a-z 0-9 _ . : -")
        return len(value) + sum(_check_data_value(item, depth + 1) for item in value.values())
    if value is None:
        raise _invalid("data", "must not hold null: leave the key out")
    raise _invalid("data", "values are strings, integers, booleans, arrays and objects (no fractions)")


def _check_name(value: object) -> None:
    text = _check_text("name", value)
    try:
        normal = normalise(text)
    except NameRefused as refused:
        raise _invalid("name", refused.message) from None
    if normal != text:
        raise _invalid("name", f"must be in normal form ({normal!r})")


@dataclass(frozen=True, kw_only=True)
class NameStatement:
    """One link of a name's chain; see the module docstring for the rules every instance keeps."""

    v: int = VERSION
    op: Op
    name: str
    owner: str
    box_key: str | None = None
    payment_address: str | None = None
    data: dict[str, Any] | None = None
    to: str | None = None
    expires_at: int | None = None
    accepts: int | None = None
    seq: int
    issued_at: int
    gateway: str

    def __post_init__(self) -> None:
        if not fields.is_integer(self.v) or self.v != VERSION:
            raise _invalid("v", f"must be {VERSION}")
        if self.op not in OPS:
            raise _invalid("op", f"must be one of {', '.join(OPS)}")
        _check_name(self.name)
        _check_public_key("owner", self.owner)
        _check_public_key("gateway", self.gateway)
        _check_int("seq", self.seq, 1)
        _check_int("issued_at", self.issued_at, 0)
        self._check_op_fields()
        if self.op == "release":
            for absent in _HOLDER_FIELDS:
                if getattr(self, absent) is not None:
                    raise _invalid(absent, "must be omitted from a release")
            return
        if self.box_key is None:
            raise _invalid("box_key", f"is required for {self.op}")
        _check_hex_bytes("box_key", self.box_key, BOX_KEY_LENGTH)
        if self.payment_address is not None:
            _check_payment_address(self.payment_address)
        if self.data is not None:
            check_data(self.data)

    def _check_op_fields(self) -> None:
        """``to``/``expires_at`` only in a transfer, ``accepts`` only in an accept, and required there."""
        for op, names in _OP_FIELDS.items():
            for name in names:
                if self.op == op and getattr(self, name) is None:
                    raise _invalid(name, f"is required for {op}")
                if self.op != op and getattr(self, name) is not None:
                    raise _invalid(name, f"belongs to {op} only")
        if self.op == "transfer":
            _check_public_key("to", self.to)
            if self.to == self.owner:
                raise _invalid("to", "must be another key than the owner's")
            _check_int("expires_at", self.expires_at, 0)
            if not self.issued_at < self.expires_at <= self.issued_at + TRANSFER_MAX_MS:
                raise _invalid("expires_at", "must be after issued_at, by at most 30 days")
        if self.op == "accept":
            _check_int("accepts", self.accepts, 1)
            if self.accepts >= self.seq:
                raise _invalid("accepts", "must be the seq of an earlier statement (the offer)")

    @property
    def owner_key(self) -> bytes:
        """The owner's Maxima identity key as DER."""
        return from_hex(self.owner)

    @property
    def box_key_bytes(self) -> bytes | None:
        return None if self.box_key is None else from_hex(self.box_key)

    def to_dict(self) -> dict[str, Any]:
        """The statement as JSON-ready data, ``None`` fields omitted."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    def canonical(self) -> bytes:
        """The exact bytes the owner signs (and ``maxsign`` is given as ``0x`` + hex)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NameStatement":
        """Parse strictly: unknown, missing or ``null`` fields and every wrong value raise ``StatementInvalid``."""
        if not isinstance(data, Mapping):
            raise StatementInvalid("statement_invalid", "a statement must be a JSON object")
        fields.check_keys(data, required=_REQUIRED, optional=_OPTIONAL, invalid=_invalid, what="statement")
        return cls(**data)


@dataclass(frozen=True)
class SignedStatement:
    """A statement and the owner's ``maxsign`` signature over its canonical bytes."""

    statement: NameStatement
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.statement, NameStatement):
            raise StatementInvalid("statement_invalid", "statement: must be a NameStatement", field="statement")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_LENGTH:
            raise _invalid("signature", f"must be {SIGNATURE_LENGTH} bytes")

    def verify(self) -> None:
        """Raise ``StatementInvalid("signature_invalid")`` unless the statement's own owner key signed it."""
        if not signed_by(self.statement.owner_key, self.statement.canonical(), self.signature):
            raise StatementInvalid(
                "signature_invalid", "the signature does not match the statement and its owner key", field="signature"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"statement": self.statement.to_dict(), "signature": to_hex(self.signature)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SignedStatement":
        """Parse strictly (exactly ``statement`` and ``signature``); does not verify: call ``verify()``."""
        fields.check_keys(data, required={"statement", "signature"}, invalid=_not_signed_statement)
        _check_hex_bytes("signature", data["signature"], SIGNATURE_LENGTH)
        return cls(statement=NameStatement.from_dict(data["statement"]), signature=from_hex(data["signature"]))


def statement_message(body: Any) -> SignedStatement:
    """``{"v":1,"type":"statement","statement":{…},"signature":"0x…"}``, an owner's statement sent over Maxima,
    read strictly (``fields``); does not verify: call ``verify()``."""
    fields.check_header(body, "statement", required={"statement", "signature"}, invalid=_invalid)
    return SignedStatement.from_dict({"statement": body["statement"], "signature": body["signature"]})


def check_successor(previous: NameStatement | None, new: NameStatement) -> None:
    """Raise ``StatementInvalid`` unless ``new`` may follow ``previous`` (the name's current statement, if any).

    A gateway keeps the last statement of every name for ever (a release included), so ``previous`` is ``None``
    only for a name it has never seen. The rules, each with its own code:

    - ``statement_not_registered``: a name's first statement must be a ``register`` (any ``seq``: a gateway that
      joins late may first see a name after a release and a new register).
    - ``statement_wrong_name``: the statement is about another name.
    - ``statement_duplicate``: ``new`` equals ``previous``; replaying it changes nothing, so callers that apply
      replicated operations treat this code as "already applied".
    - ``statement_stale_seq``: ``seq`` must be strictly greater than the previous one.
    - ``statement_after_release``: after a ``release`` only a ``register`` may follow, by any key.
    - ``transfer_not_pending``: an ``accept`` follows only a ``transfer`` (the offer stands while it is the
      current statement: any later statement of the owner withdrew it).
    - ``statement_wrong_owner``: while the name is held, only its owner's key may sign for it; an ``accept`` only
      the key the offer names (``to``).
    - ``transfer_wrong_offer``: ``accepts`` is not the pending offer's ``seq``.
    - ``transfer_expired``: the ``accept`` was issued after the offer's ``expires_at``. (A gateway taking an
      accept from its signer also compares ``expires_at`` with its own clock: ``offer_open``.)
    - ``statement_already_registered``: a held name cannot be registered again; its owner sends an ``update``.

    ``issued_at`` is not compared: clocks differ, ``seq`` is the order.
    """
    if previous is None:
        if new.op != "register":
            raise StatementInvalid("statement_not_registered", f"{new.name!r} is not registered: {new.op} refused")
        return
    if new.name != previous.name:
        raise StatementInvalid("statement_wrong_name", f"the statement is about {new.name!r}, not {previous.name!r}")
    if new == previous:
        raise StatementInvalid("statement_duplicate", f"this statement is already the current one (seq {new.seq})")
    if new.seq <= previous.seq:
        raise StatementInvalid(
            "statement_stale_seq", f"seq {new.seq} is not greater than the current seq {previous.seq}"
        )
    if previous.op == "release":
        if new.op != "register":
            raise StatementInvalid("statement_after_release", f"{new.name!r} was released: only register may follow")
        return
    if new.op == "accept":
        _check_accept(previous, new)
        return
    if new.owner != previous.owner:
        raise StatementInvalid("statement_wrong_owner", f"{new.name!r} belongs to another key")
    if new.op == "register":
        raise StatementInvalid("statement_already_registered", f"{new.name!r} is already registered: use update")


def _check_accept(offer: NameStatement, accept: NameStatement) -> None:
    if offer.op != "transfer":
        raise StatementInvalid("transfer_not_pending", f"no transfer of {accept.name!r} is pending")
    if accept.owner != offer.to:
        raise StatementInvalid("statement_wrong_owner", f"the transfer of {accept.name!r} is offered to another key")
    if accept.accepts != offer.seq:
        raise StatementInvalid("transfer_wrong_offer", f"the pending offer is seq {offer.seq}, not {accept.accepts}")
    if accept.issued_at > offer.expires_at:
        raise StatementInvalid("transfer_expired", f"the offer of {accept.name!r} expired before it was accepted")


def offer_open(offer: NameStatement | None, now_ms: int) -> None:
    """Raise ``transfer_expired`` when ``offer`` (the current statement) is a transfer whose deadline has passed by
    ``now_ms``: what the gateway that takes an ``accept`` from its signer checks besides ``check_successor`` (a
    replica does not: it was checked where it was taken, and ``issued_at`` binds the signer)."""
    if offer is not None and offer.op == "transfer" and now_ms > offer.expires_at:
        raise StatementInvalid("transfer_expired", f"the offer of {offer.name!r} expired")
