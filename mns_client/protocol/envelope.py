"""Envelopes: the signed letter inside every mailbox ciphertext (DESIGN §2; ``docs/protocol.md`` § Envelopes).

The gateway stores a ciphertext and a scheme tag and never opens either. Inside, in both schemes, is the same
plaintext: the **letter** (sender, recipient, delivery id, time, subject, body) and the sender's ``maxsign``
signature over its canonical bytes, so the recipient can tell who wrote it (the gateway cannot)::

    {"letter": {"v":1,"type":"letter","id":…,"from":"0x…","to":"alice","sent_at":…,"subject":…,"body":…},
     "sig": "0x…"}

- ``nacl-sealedbox-v1``: a NaCl sealed box of that plaintext to the name's box key.
- ``maxima-rsa-v1``: the ``maxencrypt`` blob of that plaintext to the owner's Maxima key (the owner's node opens
  it with ``maxdecrypt``).

Rules, each kept by ``Letter.__post_init__`` so an invalid letter cannot exist:

- Canonical bytes = ``json.dumps(to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8,
  the same rule as name statements. Absent optional fields are omitted, never ``null``; every value has one
  spelling (keys ``0x`` + upper-case hex, names in normal form, a UTF-8 body as ``body`` text and any other body
  as canonical padded base64 in ``body_b64``), so the signed bytes can be recomputed from the parsed letter.
- ``to`` and ``id`` are signed: a letter cannot be re-addressed to another name or passed off as another
  delivery. ``type`` is ``"letter"``, so a signed letter can never be read as a name statement (which has no
  ``type`` and refuses unknown fields), nor a statement as a letter.
- Strings may not contain lone surrogates (they have no UTF-8 form, so two implementations would disagree).

Pure functions and dataclasses: no I/O, no Django. Decrypting ``maxima-rsa-v1`` without the private key is the
node's job (``maxdecrypt``), so ``decrypt`` takes it as a callable.
"""

import base64
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from . import fields
from .codecs import canonical_json, canonical_public_key, from_hex, to_hex
from .crypto import maxencrypt, seal, signed_by, unseal
from .errors import CodecError, CryptoError, Refusal
from .mailbox import DELIVERY_ID_RE
from .names import NameRefused, normalise

VERSION = 1
TYPE = "letter"
SCHEME_NACL = "nacl-sealedbox-v1"
SCHEME_RSA = "maxima-rsa-v1"
SCHEMES = (SCHEME_NACL, SCHEME_RSA)
MAX_SAFE_INTEGER = fields.MAX_SAFE_INTEGER
MAX_SUBJECT_CHARS = 200
SIGNATURE_LENGTH = 128

_REQUIRED = ("v", "type", "id", "from", "to", "sent_at")
_OPTIONAL = ("from_name", "subject", "body", "body_b64")
_B64_RE = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class EnvelopeInvalid(Refusal):
    """An envelope that is malformed, does not open, or does not verify.

    ``code``: ``envelope_invalid`` (malformed; ``field`` names the culprit), ``envelope_undecryptable`` (no key
    opens it), ``envelope_signature_invalid``, ``envelope_wrong_recipient`` (signed for another name),
    ``envelope_scheme_unknown``.
    """

    code = "envelope_invalid"


def _invalid(name: str, problem: str) -> EnvelopeInvalid:
    return EnvelopeInvalid("envelope_invalid", f"{name}: {problem}", field=name)


def _not_a_letter(field: str, problem: str) -> EnvelopeInvalid:
    """A plaintext that is not one JSON object in one spelling: what the reader is told (the ``mns`` CLI shows it)."""
    return EnvelopeInvalid("envelope_invalid", f"the plaintext is not a signed MNS letter ({field} {problem})")


def _not_signed_letter(field: str, problem: str) -> EnvelopeInvalid:
    return EnvelopeInvalid("envelope_invalid", "a signed letter has exactly: letter, sig")


def _text(name: str, value: object) -> str:
    fields.text(value, name, invalid=_invalid, min_chars=0)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(name, "must not contain lone surrogates") from None
    return value


def _check_key(name: str, value: object) -> None:
    text = _text(name, value)
    try:
        canonical = canonical_public_key(text) if text.startswith("0x") else None
    except CodecError:
        canonical = None
    if canonical is None:
        raise _invalid(name, "must be 0x followed by the hex of an RSA-1024 public key")
    if canonical != text:
        raise _invalid(name, "must be written as 0x followed by upper-case hex")


def _check_name(name: str, value: object) -> None:
    text = _text(name, value)
    try:
        normal = normalise(text)
    except NameRefused as refused:
        raise _invalid(name, refused.message) from None
    if normal != text:
        raise _invalid(name, f"must be in normal form ({normal!r})")


def _check_subject(value: object) -> None:
    text = _text("subject", value)
    if not 0 < len(text) <= MAX_SUBJECT_CHARS:
        raise _invalid("subject", f"must be 1 to {MAX_SUBJECT_CHARS} characters (omit an empty subject)")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise _invalid("subject", "must not contain control characters")


def _check_body_b64(value: object) -> None:
    text = _text("body_b64", value)
    if not _B64_RE.fullmatch(text):
        raise _invalid("body_b64", "must be standard base64 with padding")
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode("ascii") != text:
        raise _invalid("body_b64", "must be canonical base64")
    if _utf8_text(raw) is not None:
        raise _invalid("body_b64", "UTF-8 text goes in body, not body_b64")


def _utf8_text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True, kw_only=True)
class Letter:
    """The signed document inside an envelope.

    ``body`` holds a body that is valid UTF-8, ``body_b64`` one that is not (exactly one of the two is present;
    ``Letter.make`` picks). ``from_name`` is the sender's *claim* to an MNS name, checked by the recipient with a
    lookup (the signature proves only the key). ``subject`` is omitted rather than empty.
    """

    v: int = VERSION
    type: str = TYPE
    id: str
    from_: str  # "from" on the wire
    from_name: str | None = None
    to: str
    sent_at: int
    subject: str | None = None
    body: str | None = None
    body_b64: str | None = None

    def __post_init__(self) -> None:
        if not fields.is_integer(self.v) or self.v != VERSION:
            raise _invalid("v", f"must be {VERSION}")
        if self.type != TYPE:
            raise _invalid("type", f'must be "{TYPE}"')
        if not isinstance(self.id, str) or not DELIVERY_ID_RE.fullmatch(self.id):
            raise _invalid("id", "must be 16 to 64 characters of A-Z a-z 0-9 _ -")
        _check_key("from", self.from_)
        _check_name("to", self.to)
        if self.from_name is not None:
            _check_name("from_name", self.from_name)
        fields.integer(self.sent_at, "sent_at", invalid=_invalid)
        if self.subject is not None:
            _check_subject(self.subject)
        if (self.body is None) == (self.body_b64 is None):
            raise _invalid("body", "exactly one of body and body_b64 is present")
        if self.body is not None:
            _text("body", self.body)
        else:
            _check_body_b64(self.body_b64)

    @classmethod
    def make(
        cls,
        *,
        id: str,
        sender: str,
        to: str,
        sent_at: int,
        body: bytes,
        subject: str | None = None,
        from_name: str | None = None,
    ) -> "Letter":
        """A letter for ``body`` bytes: as ``body`` when they are UTF-8 text, else as ``body_b64``."""
        text = _utf8_text(bytes(body))
        return cls(
            id=id,
            from_=sender,
            from_name=from_name,
            to=to,
            sent_at=sent_at,
            subject=subject or None,
            body=text,
            body_b64=None if text is not None else base64.b64encode(bytes(body)).decode("ascii"),
        )

    @property
    def sender_key(self) -> bytes:
        return from_hex(self.from_)

    @property
    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8") if self.body is not None else base64.b64decode(self.body_b64 or "")

    @property
    def is_text(self) -> bool:
        return self.body is not None

    def to_dict(self) -> dict[str, Any]:
        """The letter as JSON-ready data, with ``from`` spelled as on the wire and ``None`` fields omitted."""
        data = {("from" if key == "from_" else key): value for key, value in asdict(self).items()}
        return {key: value for key, value in data.items() if value is not None}

    def canonical(self) -> bytes:
        """The exact bytes the sender signs (``maxsign data:0x<hex of these bytes>``)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Letter":
        """Parse strictly: unknown, missing or ``null`` fields and every wrong value raise ``EnvelopeInvalid``."""
        fields.check_keys(data, required=_REQUIRED, optional=_OPTIONAL, invalid=_invalid, what="letter")
        values = dict(data)
        values["from_"] = values.pop("from")
        return cls(**values)


@dataclass(frozen=True)
class SignedLetter:
    """A letter and its sender's ``maxsign`` signature: the plaintext of an envelope."""

    letter: Letter
    signature: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.letter, Letter):
            raise _invalid("letter", "must be a Letter")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_LENGTH:
            raise _invalid("sig", f"must be {SIGNATURE_LENGTH} bytes")

    def verify(self) -> None:
        """Raise ``EnvelopeInvalid("envelope_signature_invalid")`` unless the letter's ``from`` key signed it."""
        if not signed_by(self.letter.sender_key, self.letter.canonical(), self.signature):
            raise EnvelopeInvalid(
                "envelope_signature_invalid", "the letter's signature does not match its sender key", field="sig"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"letter": self.letter.to_dict(), "sig": to_hex(self.signature)}

    def to_bytes(self) -> bytes:
        """The plaintext that is encrypted: compact JSON (the letter's key order does not matter to readers)."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_bytes(cls, plaintext: bytes) -> "SignedLetter":
        """Parse a decrypted plaintext strictly; does not verify (call ``verify``)."""
        data = fields.loads(plaintext, invalid=_not_a_letter, what="it")
        fields.check_keys(data, required={"letter", "sig"}, invalid=_not_signed_letter)
        signature = data["sig"]
        try:
            raw = from_hex(signature)
        except CodecError:
            raw = b""
        if len(raw) != SIGNATURE_LENGTH or to_hex(raw) != signature:
            raise _invalid("sig", f"must be 0x followed by the upper-case hex of {SIGNATURE_LENGTH} bytes")
        return cls(letter=Letter.from_dict(data["letter"]), signature=raw)


# ------------------------------------------------------------------------------------------------ encryption


def encrypt(scheme: str, plaintext: bytes, *, box_key: bytes | None = None, owner_key: bytes | None = None) -> bytes:
    """The ciphertext of ``plaintext`` in ``scheme``: a sealed box to ``box_key``, or maxencrypt to ``owner_key``."""
    if scheme == SCHEME_NACL:
        if box_key is None:
            raise EnvelopeInvalid("envelope_invalid", f"{SCHEME_NACL} needs the name's box key")
        return seal(box_key, plaintext)
    if scheme == SCHEME_RSA:
        if owner_key is None:
            raise EnvelopeInvalid("envelope_invalid", f"{SCHEME_RSA} needs the owner's Maxima key")
        return maxencrypt(owner_key, plaintext)
    raise EnvelopeInvalid("envelope_scheme_unknown", f"unknown scheme {scheme[:40]!r}")


def decrypt(
    scheme: str,
    ciphertext: bytes,
    *,
    box_privates: Iterable[bytes] = (),
    maxdecrypt: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """Open a ciphertext: try each box private key (current first) for a sealed box; ask ``maxdecrypt`` (the
    owner's node) for a maxencrypt blob. ``EnvelopeInvalid("envelope_undecryptable")`` when nothing opens it."""
    if scheme == SCHEME_NACL:
        for private in box_privates:
            try:
                return unseal(private, ciphertext)
            except CryptoError:
                continue
        raise EnvelopeInvalid("envelope_undecryptable", "none of this client's box keys opens the sealed box")
    if scheme == SCHEME_RSA:
        if maxdecrypt is None:
            raise EnvelopeInvalid("envelope_undecryptable", f"{SCHEME_RSA} needs the owner's node (maxdecrypt)")
        try:
            return maxdecrypt(ciphertext)
        except CryptoError:
            raise EnvelopeInvalid("envelope_undecryptable", "the node's maxdecrypt did not open the blob") from None
    raise EnvelopeInvalid("envelope_scheme_unknown", f"unknown scheme {scheme[:40]!r}")


# ------------------------------------------------------------------------------------------------ checking


@dataclass(frozen=True)
class Opened:
    """A decrypted, verified letter and what the recipient could check about it.

    ``sender_matches`` compares the signer with the key Maxima verified as the delivery's sender: ``True``,
    ``False`` (signed by one key, delivered by another: a relay or a replay), or ``None`` when the delivery's
    sender was not verified (a REST submission) or not known.
    """

    letter: Letter
    sender_matches: bool | None


def open_letter(plaintext: bytes, *, name: str, delivery_sender: str | None = None) -> Opened:
    """Parse, verify and check a decrypted plaintext for the mailbox ``name``.

    Raises ``EnvelopeInvalid``: malformed, ``envelope_signature_invalid``, or ``envelope_wrong_recipient`` when
    the letter was signed for another name (someone re-encrypted a letter meant for them).
    """
    signed = SignedLetter.from_bytes(plaintext)
    signed.verify()
    if signed.letter.to != name:
        raise EnvelopeInvalid(
            "envelope_wrong_recipient", f"the letter was written to {signed.letter.to!r}, not {name!r}", field="to"
        )
    matches = None
    if delivery_sender:
        try:
            matches = canonical_public_key(delivery_sender) == signed.letter.from_
        except CodecError:
            matches = False
    return Opened(letter=signed.letter, sender_matches=matches)
