"""The handshake's wire format and secrets (``docs/protocol.md`` § Handshake), shared by the gateway and the client.

Pure functions, no Django, no I/O. The three secrets are all text the client or the gateway makes with
``secrets``, and each is stored only as the lower-case hex SHA-256 of its ASCII bytes:

- the **code** (gateway → client → owner's node → gateway): ``secrets.token_urlsafe(24)``, 192 bits;
- the **verifier** (client only; the gateway sees its hash first and the verifier itself only at pickup):
  43 to 128 characters of RFC 7636's unreserved set, ``new_verifier()`` makes 32 random bytes as base64url;
- the **session token** (gateway → client): ``secrets.token_urlsafe(32)``, 256 bits.

A fast hash is right for them: they are random and high-entropy, so there is nothing to brute-force offline.
Every comparison is ``hmac.compare_digest``.
"""

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from . import fields
from .codecs import parse_address
from .errors import CodecError, MNSError

APPLICATION = "mns"
ANSWER_TYPE = "handshake"
RESULT_TYPE = "handshake-result"
PURPOSES = ("register", "read", "forward", "rotate", "delete", "manage")
RESULT_STATUSES = ("verified", "failed")

CODE_BYTES = 24  # 192 bits; DESIGN §4 asks for at least 128
TOKEN_BYTES = 32  # 256 bits
CHALLENGE_ID_BYTES = 16  # 128 bits: the id is polled without authentication, so it must not be guessable
VERIFIER_BYTES = 32

VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1 code_verifier
SECRET_HASH_RE = re.compile(r"[0-9a-f]{64}")
CHALLENGE_ID_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
MAX_CODE_CHARS = 128


class HandshakeMessageInvalid(MNSError):
    """An ``mns`` ``handshake`` or ``handshake-result`` message that does not follow the format."""

    code = "handshake_malformed"


def _invalid(field: str, problem: str) -> HandshakeMessageInvalid:
    return HandshakeMessageInvalid(f"{field}: {problem}")


# ------------------------------------------------------------------------------------------------------ secrets


def new_challenge_id() -> str:
    return secrets.token_urlsafe(CHALLENGE_ID_BYTES)


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_verifier() -> str:
    """A fresh PKCE-style verifier: 32 random bytes, base64url without padding (43 characters)."""
    return secrets.token_urlsafe(VERIFIER_BYTES)


def secret_hash(secret: str) -> str:
    """The stored form of a code or token: lower-case hex SHA-256 of its ASCII bytes."""
    return hashlib.sha256(secret.encode("ascii", errors="strict")).hexdigest()


def verifier_hash(verifier: str) -> str:
    """What the client sends when it asks for a challenge: ``secret_hash`` of a well-formed verifier."""
    if not isinstance(verifier, str) or not VERIFIER_RE.fullmatch(verifier):
        raise CodecError("a verifier is 43 to 128 characters of A-Z a-z 0-9 - . _ ~")
    return secret_hash(verifier)


def secret_matches(secret: object, stored_hash: str) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, in constant time; any non-ASCII or non-text value is no."""
    if not isinstance(secret, str) or not secret.isascii():
        return False
    return hmac.compare_digest(secret_hash(secret), stored_hash)


# ----------------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Answer:
    """``{"v":1,"type":"handshake","challenge":…,"code":…,"reply_to":…}``: the owner's node answers a challenge."""

    challenge: str
    code: str
    reply_to: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"v": 1, "type": ANSWER_TYPE, "challenge": self.challenge, "code": self.code}
        if self.reply_to is not None:
            body["reply_to"] = self.reply_to
        return body

    def to_bytes(self) -> bytes:
        return _encode(self.to_dict())

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> "Answer":
        """Read an answer strictly (``fields``): unknown keys, ``null``, a malformed id or code, or an unparsable
        ``reply_to`` refuse."""
        fields.check_header(body, ANSWER_TYPE, required={"challenge", "code"}, optional={"reply_to"}, invalid=_invalid)
        challenge = fields.text(body["challenge"], "challenge", invalid=_invalid, pattern=CHALLENGE_ID_RE)
        code = fields.text(body["code"], "code", invalid=_invalid, max_chars=MAX_CODE_CHARS)
        reply_to = None
        if "reply_to" in body:
            try:
                reply_to = str(parse_address(body["reply_to"]))
            except CodecError:
                raise HandshakeMessageInvalid("reply_to: expected Mx…@host:port or MAX#…") from None
        return cls(challenge=challenge, code=code, reply_to=reply_to)


@dataclass(frozen=True)
class Result:
    """``{"v":1,"type":"handshake-result","challenge":…,"status":…,"reason":…}``: the gateway's verdict.

    ``reason`` is present only when ``status`` is ``failed``. The code is never echoed back.
    """

    challenge: str
    status: str
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"v": 1, "type": RESULT_TYPE, "challenge": self.challenge, "status": self.status}
        if self.reason is not None:
            body["reason"] = self.reason
        return body

    def to_bytes(self) -> bytes:
        return _encode(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Result":
        body = fields.loads(data, invalid=_invalid)
        fields.check_header(body, RESULT_TYPE, required={"challenge", "status"}, optional={"reason"}, invalid=_invalid)
        status = fields.one_of(body["status"], "status", RESULT_STATUSES, invalid=_invalid)
        if (status == "failed") != ("reason" in body):
            raise HandshakeMessageInvalid("reason: present exactly when the status is failed")
        reason = fields.text(body["reason"], "reason", invalid=_invalid) if "reason" in body else None
        return cls(
            challenge=fields.text(body["challenge"], "challenge", invalid=_invalid), status=status, reason=reason
        )


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
