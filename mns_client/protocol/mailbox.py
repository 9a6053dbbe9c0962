"""The mailbox's wire formats (``docs/protocol.md`` § Mailboxes), shared by the gateway and the client.

Pure functions and dataclasses, no Django, no I/O. Every message is an ``mns`` Maxima message whose data is the
compact UTF-8 JSON of ``{"v":1,"type":…,…}``; binary values (ciphertexts, the access-token blob) are ``0x`` + hex,
as everything else in Maxima. Every message is parsed strictly through ``fields`` (the one check all wire formats
share): unknown or repeated keys, ``null``, ``true`` for an integer and wrong types refuse, so there is one
spelling of every message.

The access token's plaintext ``{"token_id":…,"secret":…}`` travels only inside a ``maxencrypt`` blob made with the
owner's Maxima key, so the owner's own node opens it with ``maxdecrypt`` and nobody else can.
"""

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from . import fields
from .codecs import from_hex, parse_address, parse_public_key, public_key_hex, to_hex
from .crypto import maxdecrypt
from .errors import CodecError, CryptoError, MNSError
from .statements import SignedStatement

APPLICATION = "mns"
VERSION = 1
SCHEMES = ("nacl-sealedbox-v1", "maxima-rsa-v1")
DELIVERY_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
TOKEN_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
SECRET_HASH_RE = re.compile(r"[0-9a-f]{64}")
RECEIPT_STATUSES = ("stored", "refused")
# Why a delivery is refused: the receipt's ``reason`` and the REST API's ``error`` are the same code.
REFUSALS = (
    "malformed",
    "unknown_name",
    "suspended",
    "bad_scheme",
    "too_large",
    "blocked",
    "rate_limited",
    "over_quota",
    "owner_changed",
)
MAX_NAME_CHARS = 128  # a ``to`` in any spelling; the gateway normalises it


class MailboxMessageInvalid(MNSError):
    """An ``mns`` mailbox message that does not follow its format."""

    code = "malformed"


def _invalid(field: str, problem: str) -> MailboxMessageInvalid:
    return MailboxMessageInvalid(f"{field}: {problem}")


def new_delivery_id() -> str:
    """A fresh delivery id for a sender: 24 random bytes, base64url (32 characters)."""
    return secrets.token_urlsafe(24)


# ------------------------------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Deliver:
    """``{"v":1,"type":"deliver","id":…,"to":…,"scheme":…,"ciphertext":"0x…","reply_to":…?,"owner":…?}``: a
    sender's message.

    ``id`` is the sender's own (random, 16-64 of ``[A-Za-z0-9_-]``): the gateway stores one message per sender and
    id, so a resent delivery is stored once. The receipt goes to ``reply_to`` when given (``Mx…@host:port`` or
    ``MAX#…``), else to the sender's key (which works only for the gateway's contacts). ``owner``, when given, is
    the owner key of the record the sender encrypted to: if the name has changed hands since, the gateway refuses
    the delivery (``owner_changed``) rather than give a letter meant for the old owner to the new one.
    """

    id: str
    to: str
    scheme: str
    ciphertext: bytes
    reply_to: str | None = None
    owner: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "v": VERSION,
            "type": "deliver",
            "id": self.id,
            "to": self.to,
            "scheme": self.scheme,
            "ciphertext": to_hex(self.ciphertext),
        }
        if self.reply_to is not None:
            body["reply_to"] = self.reply_to
        if self.owner is not None:
            body["owner"] = self.owner
        return body

    def to_bytes(self) -> bytes:
        return encode(self.to_dict())

    @classmethod
    def from_dict(cls, body: Any) -> "Deliver":
        """Parse strictly. The scheme is only checked to be text: an unknown one is a refusal, not malformed."""
        check_header(body, "deliver", required={"id", "to", "scheme", "ciphertext"}, optional={"reply_to", "owner"})
        delivery_id = delivery_id_of(body)
        if delivery_id is None:
            raise MailboxMessageInvalid("id: expected 16 to 64 characters of A-Z a-z 0-9 _ -")
        to, scheme = _text(body, "to", MAX_NAME_CHARS), _text(body, "scheme", 64)
        ciphertext = _hex(body, "ciphertext")
        if not ciphertext:
            raise MailboxMessageInvalid("ciphertext: must not be empty")
        return cls(
            id=delivery_id,
            to=to,
            scheme=scheme,
            ciphertext=ciphertext,
            reply_to=_reply_to(body),
            owner=_owner(body),
        )


def delivery_id_of(body: Any) -> str | None:
    """The ``id`` of a (perhaps malformed) delivery when it is well-formed, so a refusal can still be receipted."""
    value = body.get("id") if isinstance(body, dict) else None
    return value if isinstance(value, str) and DELIVERY_ID_RE.fullmatch(value) else None


def reply_to_of(body: Any) -> str | None:
    """The ``reply_to`` of a (perhaps malformed) message when it is a valid address, else ``None``."""
    try:
        return _reply_to(body) if isinstance(body, dict) else None
    except MailboxMessageInvalid:
        return None


@dataclass(frozen=True)
class Receipt:
    """``{"v":1,"type":"receipt","id":…,"status":"stored"|"refused","message_id"?,"reason"?,"detail"?}``.

    ``message_id`` comes with ``stored``; ``reason`` (one of ``REFUSALS``) and ``detail`` with ``refused``. The
    gateway's node is the Maxima sender, so the receipt's ``from`` authenticates it: no other signature is needed.
    """

    id: str
    status: str
    message_id: str | None = None
    reason: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"v": VERSION, "type": "receipt", "id": self.id, "status": self.status}
        for key in ("message_id", "reason", "detail"):
            if getattr(self, key) is not None:
                body[key] = getattr(self, key)
        return body

    def to_bytes(self) -> bytes:
        return encode(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Receipt":
        body = decode(data)
        check_header(body, "receipt", required={"id", "status"}, optional={"message_id", "reason", "detail"})
        fields.one_of(body["status"], "status", RECEIPT_STATUSES, invalid=_invalid)
        optional = {
            key: fields.text(body[key], key, invalid=_invalid, min_chars=0)
            for key in ("message_id", "reason", "detail")
            if key in body
        }
        return cls(id=fields.text(body["id"], "id", invalid=_invalid), status=body["status"], **optional)


@dataclass(frozen=True)
class Forwarded:
    """``{"v":1,"type":"forwarded","name":…,"message_id":…,"sender":…,"sender_verified":…,"scheme":…,
    "ciphertext":"0x…","received_at":<ms>}``: a stored message, sent on to its owner's node (option 2)."""

    name: str
    message_id: str
    sender: str
    sender_verified: bool
    scheme: str
    ciphertext: bytes
    received_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": "forwarded",
            "name": self.name,
            "message_id": self.message_id,
            "sender": self.sender,
            "sender_verified": self.sender_verified,
            "scheme": self.scheme,
            "ciphertext": to_hex(self.ciphertext),
            "received_at": self.received_at,
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Forwarded":
        body = decode(data)
        required = {"name", "message_id", "sender", "sender_verified", "scheme", "ciphertext", "received_at"}
        check_header(body, "forwarded", required=required, optional=set())
        return cls(
            name=fields.text(body["name"], "name", invalid=_invalid, max_chars=MAX_NAME_CHARS),
            message_id=fields.text(body["message_id"], "message_id", invalid=_invalid),
            sender=fields.text(body["sender"], "sender", invalid=_invalid, min_chars=0),  # "": a REST submission
            sender_verified=fields.boolean(body["sender_verified"], "sender_verified", invalid=_invalid),
            scheme=fields.text(body["scheme"], "scheme", invalid=_invalid, max_chars=64),
            ciphertext=_hex(body, "ciphertext"),
            received_at=fields.integer(body["received_at"], "received_at", invalid=_invalid),
        )


# --------------------------------------------------------------------------------------------- registration


@dataclass(frozen=True)
class Register:
    """``{"v":1,"type":"register","statement":{…},"signature":"0x…","address":…,"reply_to"?,"verifier_hash"?}``.

    The same request as ``POST /api/v1/mailboxes``, from the owner's own node: ``address`` is where the mailbox
    forwards to and where the access token is sent; the challenge goes to ``reply_to`` (default: ``address``).
    ``verifier_hash`` is optional: without it nobody can pick up the register session over REST, and the
    access token arrives over Maxima only.
    """

    signed: SignedStatement
    address: str
    reply_to: str | None = None
    verifier_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"v": VERSION, "type": "register", **self.signed.to_dict(), "address": self.address}
        if self.reply_to is not None:
            body["reply_to"] = self.reply_to
        if self.verifier_hash is not None:
            body["verifier_hash"] = self.verifier_hash
        return body

    def to_bytes(self) -> bytes:
        return encode(self.to_dict())

    @classmethod
    def from_dict(cls, body: Any) -> "Register":
        """Parse strictly; the statement is parsed by ``SignedStatement.from_dict`` (``StatementInvalid``)."""
        required, optional = {"statement", "signature", "address"}, {"reply_to", "verifier_hash"}
        check_header(body, "register", required=required, optional=optional)
        signed = SignedStatement.from_dict({"statement": body["statement"], "signature": body["signature"]})
        verifier_hash = body.get("verifier_hash")
        if "verifier_hash" in body and not (isinstance(verifier_hash, str) and SECRET_HASH_RE.fullmatch(verifier_hash)):
            raise MailboxMessageInvalid("verifier_hash: expected the lower-case hex SHA-256 of a verifier")
        return cls(
            signed=signed, address=address_text(body["address"]), reply_to=_reply_to(body), verifier_hash=verifier_hash
        )


@dataclass(frozen=True)
class RegisterChallenge:
    """``{"v":1,"type":"register-challenge","name":…,"challenge":…,"code":…,"expires_at":<ms>}``: the gateway's
    answer to a ``register`` over Maxima. The owner's node answers it with a ``handshake`` message."""

    name: str
    challenge: str
    code: str
    expires_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": "register-challenge",
            "name": self.name,
            "challenge": self.challenge,
            "code": self.code,
            "expires_at": self.expires_at,
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "RegisterChallenge":
        body = decode(data)
        check_header(body, "register-challenge", required={"name", "challenge", "code", "expires_at"}, optional=set())
        return cls(
            name=fields.text(body["name"], "name", invalid=_invalid, max_chars=MAX_NAME_CHARS),
            challenge=fields.text(body["challenge"], "challenge", invalid=_invalid),
            code=fields.text(body["code"], "code", invalid=_invalid),
            expires_at=fields.integer(body["expires_at"], "expires_at", invalid=_invalid),
        )


@dataclass(frozen=True)
class RegisterRefused:
    """``{"v":1,"type":"register-refused","name":…,"reason":…,"detail":…}``: a ``register`` the gateway refused
    (the same ``reason`` the REST API answers as ``error``)."""

    name: str | None
    reason: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": "register-refused",
            "name": self.name,
            "reason": self.reason,
            "detail": self.detail,
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "RegisterRefused":
        """``name`` is the one key of the mailbox formats that may be ``null`` (the statement could not be read)."""
        body = decode(data)
        fields.check_header(
            body, "register-refused", required={"name", "reason", "detail"}, nullable={"name"}, invalid=_invalid
        )
        name = None if body["name"] is None else fields.text(body["name"], "name", invalid=_invalid)
        reason = fields.text(body["reason"], "reason", invalid=_invalid)
        return cls(
            name=name, reason=reason, detail=fields.text(body["detail"], "detail", invalid=_invalid, min_chars=0)
        )


# --------------------------------------------------------------------------------------------- access tokens


@dataclass(frozen=True)
class AccessTokenMessage:
    """``{"v":1,"type":"access-token","name":…,"token_id":…,"token":"0x<maxencrypt blob>"}``, to the owner's node."""

    name: str
    token_id: str
    blob: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": "access-token",
            "name": self.name,
            "token_id": self.token_id,
            "token": to_hex(self.blob),
        }

    def to_bytes(self) -> bytes:
        return encode(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "AccessTokenMessage":
        body = decode(data)
        check_header(body, "access-token", required={"name", "token_id", "token"}, optional=set())
        return cls(
            name=fields.text(body["name"], "name", invalid=_invalid, max_chars=MAX_NAME_CHARS),
            token_id=fields.text(body["token_id"], "token_id", invalid=_invalid, pattern=TOKEN_ID_RE),
            blob=_hex(body, "token"),
        )


def access_token_plaintext(*, token_id: str, secret: str) -> bytes:
    """What the blob holds: ``{"secret":…,"token_id":…}`` (keys sorted, compact, UTF-8)."""
    return json.dumps({"secret": secret, "token_id": token_id}, sort_keys=True, separators=(",", ":")).encode()


def access_token_read(plaintext: bytes) -> tuple[str, str]:
    """``(token_id, secret)`` from a blob's plaintext (what ``maxdecrypt`` returned)."""
    body = fields.loads(plaintext, invalid=_invalid, what="the access token")
    fields.check_keys(body, required={"token_id", "secret"}, invalid=_invalid, what="the access token")
    token_id = fields.text(body["token_id"], "token_id", invalid=_invalid, pattern=TOKEN_ID_RE)
    return token_id, fields.text(body["secret"], "secret", invalid=_invalid)


def access_token_open(private_key_der: bytes, blob: bytes) -> tuple[str, str]:
    """Open a blob with the owner's Maxima private key, as ``maxdecrypt`` on their node does."""
    try:
        return access_token_read(maxdecrypt(private_key_der, blob))
    except CryptoError:
        raise MailboxMessageInvalid("the access token does not open with this key") from None


def access_token_header(token_id: str, secret: str) -> str:
    """The ``Authorization`` header value that presents an access token."""
    return f"MNS-Token {token_id}:{secret}"


# ------------------------------------------------------------------------------------------------------ helpers


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def decode(data: bytes) -> Any:
    return fields.loads(data, invalid=_invalid)


def check_header(body: Any, message_type: str, *, required: set[str], optional: set[str]) -> None:
    """``{"v":1,"type":message_type}`` with every required key, no unknown key and no ``null`` (``fields``)."""
    fields.check_header(body, message_type, required=required, optional=optional, invalid=_invalid)


def address_text(value: Any, field: str = "address") -> str:
    """A Maxima address (``Mx…@host:port`` or ``MAX#…``) in its canonical text."""
    try:
        return str(parse_address(value))
    except CodecError:
        raise MailboxMessageInvalid(f"{field}: expected Mx…@host:port or MAX#…") from None


def _reply_to(body: dict[str, Any]) -> str | None:
    """An absent ``reply_to`` is None; a present one, ``null`` included, must be an address."""
    return address_text(body["reply_to"], "reply_to") if "reply_to" in body else None


def _owner(body: dict[str, Any]) -> str | None:
    """An absent ``owner`` is None; a present one is a Maxima key as the protocol spells it (``0x`` + upper hex)."""
    if "owner" not in body:
        return None
    owner = _text(body, "owner", 2 + 2 * 1000)
    try:
        if public_key_hex(parse_public_key(owner)) == owner:
            return owner
    except CodecError:
        pass
    raise MailboxMessageInvalid("owner: expected 0x and the upper-case hex of an RSA-1024 public key")


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    return fields.text(body.get(key), key, invalid=_invalid, max_chars=limit)


def _hex(body: dict[str, Any], key: str) -> bytes:
    try:
        return from_hex(body[key])
    except CodecError:
        raise MailboxMessageInvalid(f"{key}: expected 0x and hex digits") from None
