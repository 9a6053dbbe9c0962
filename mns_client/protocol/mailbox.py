"""The mailbox's wire formats (``docs/protocol.md`` § Mailboxes), shared by the gateway and the client.

Pure functions and dataclasses, no Django, no I/O. Every message is an ``mns`` Maxima message whose data is the
compact UTF-8 JSON of ``{"v":1,"type":…,…}``; binary values (ciphertexts, the access-token blob) are ``0x`` + hex,
as everything else in Maxima. What the gateway reads from strangers (``deliver``, ``register``) is parsed
strictly: unknown keys, ``null`` and wrong types refuse, so there is one spelling of every message.

The access token's plaintext ``{"token_id":…,"secret":…}`` travels only inside a ``maxencrypt`` blob made with the
owner's Maxima key, so the owner's own node opens it with ``maxdecrypt`` and nobody else can.
"""

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from .codecs import from_hex, parse_address, to_hex
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
)
MAX_NAME_CHARS = 128  # a ``to`` in any spelling; the gateway normalises it


class MailboxMessageInvalid(MNSError):
    """An ``mns`` mailbox message that does not follow its format."""

    code = "malformed"


def new_delivery_id() -> str:
    """A fresh delivery id for a sender: 24 random bytes, base64url (32 characters)."""
    return secrets.token_urlsafe(24)


# ------------------------------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Deliver:
    """``{"v":1,"type":"deliver","id":…,"to":…,"scheme":…,"ciphertext":"0x…","reply_to":…?}``: a sender's message.

    ``id`` is the sender's own (random, 16-64 of ``[A-Za-z0-9_-]``): the gateway stores one message per sender and
    id, so a resent delivery is stored once. The receipt goes to ``reply_to`` when given (``Mx…@host:port`` or
    ``MAX#…``), else to the sender's key (which works only for the gateway's contacts).
    """

    id: str
    to: str
    scheme: str
    ciphertext: bytes
    reply_to: str | None = None

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
        return body

    def to_bytes(self) -> bytes:
        return encode(self.to_dict())

    @classmethod
    def from_dict(cls, body: Any) -> "Deliver":
        """Parse strictly. The scheme is only checked to be text: an unknown one is a refusal, not malformed."""
        check_header(body, "deliver", required={"id", "to", "scheme", "ciphertext"}, optional={"reply_to"})
        delivery_id = delivery_id_of(body)
        if delivery_id is None:
            raise MailboxMessageInvalid("id: expected 16 to 64 characters of A-Z a-z 0-9 _ -")
        to, scheme = _text(body, "to", MAX_NAME_CHARS), _text(body, "scheme", 64)
        try:
            ciphertext = from_hex(body["ciphertext"])
        except CodecError:
            raise MailboxMessageInvalid("ciphertext: expected 0x and hex digits") from None
        if not ciphertext:
            raise MailboxMessageInvalid("ciphertext: must not be empty")
        return cls(id=delivery_id, to=to, scheme=scheme, ciphertext=ciphertext, reply_to=_reply_to(body))


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
        if body["status"] not in RECEIPT_STATUSES:
            raise MailboxMessageInvalid("status: expected stored or refused")
        fields = {key: body.get(key) for key in ("message_id", "reason", "detail")}
        return cls(id=str(body["id"]), status=body["status"], **fields)


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
        fields = {"name", "message_id", "sender", "sender_verified", "scheme", "ciphertext", "received_at"}
        check_header(body, "forwarded", required=fields, optional=set())
        return cls(
            name=body["name"],
            message_id=body["message_id"],
            sender=body["sender"],
            sender_verified=body["sender_verified"],
            scheme=body["scheme"],
            ciphertext=from_hex(body["ciphertext"]),
            received_at=body["received_at"],
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
        if verifier_hash is not None and not (
            isinstance(verifier_hash, str) and SECRET_HASH_RE.fullmatch(verifier_hash)
        ):
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
        return cls(name=body["name"], challenge=body["challenge"], code=body["code"], expires_at=body["expires_at"])


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
        return cls(name=body["name"], token_id=body["token_id"], blob=from_hex(body["token"]))


def access_token_plaintext(*, token_id: str, secret: str) -> bytes:
    """What the blob holds: ``{"secret":…,"token_id":…}`` (keys sorted, compact, UTF-8)."""
    return json.dumps({"secret": secret, "token_id": token_id}, sort_keys=True, separators=(",", ":")).encode()


def access_token_read(plaintext: bytes) -> tuple[str, str]:
    """``(token_id, secret)`` from a blob's plaintext (what ``maxdecrypt`` returned)."""
    try:
        body = json.loads(bytes(plaintext).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MailboxMessageInvalid("the access token is not UTF-8 JSON") from None
    if not isinstance(body, dict) or set(body) != {"token_id", "secret"}:
        raise MailboxMessageInvalid("the access token has exactly: token_id, secret")
    token_id, secret = body["token_id"], body["secret"]
    if not isinstance(token_id, str) or not TOKEN_ID_RE.fullmatch(token_id) or not isinstance(secret, str):
        raise MailboxMessageInvalid("the access token's fields are malformed")
    return token_id, secret


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
    try:
        return json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MailboxMessageInvalid("not UTF-8 JSON") from None


def check_header(body: Any, message_type: str, *, required: set[str], optional: set[str]) -> None:
    """``{"v":1,"type":message_type}`` with every required key, no unknown key and no ``null``."""
    if not isinstance(body, dict) or body.get("v") != VERSION or body.get("type") != message_type:
        raise MailboxMessageInvalid(f'expected {{"v":1,"type":"{message_type}",…}}')
    unknown = set(body) - required - optional - {"v", "type"}
    if unknown:
        raise MailboxMessageInvalid(f"unknown fields: {', '.join(sorted(str(key)[:40] for key in unknown))}")
    missing = required - set(body)
    if missing:
        raise MailboxMessageInvalid(f"missing fields: {', '.join(sorted(missing))}")
    nulls = [key for key, value in body.items() if value is None]
    if nulls:
        raise MailboxMessageInvalid(f"omit rather than null: {', '.join(sorted(nulls))}")


def address_text(value: Any, field: str = "address") -> str:
    """A Maxima address (``Mx…@host:port`` or ``MAX#…``) in its canonical text."""
    try:
        return str(parse_address(value))
    except CodecError:
        raise MailboxMessageInvalid(f"{field}: expected Mx…@host:port or MAX#…") from None


def _reply_to(body: dict[str, Any]) -> str | None:
    value = body.get("reply_to")
    return None if value is None else address_text(value, "reply_to")


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise MailboxMessageInvalid(f"{key}: expected text of 1 to {limit} characters")
    return value
