"""Maxima messages and the encrypted package that carries them between simnet nodes.

As on real nodes (MaximaManager, REFERENCE §3) the message is signed with the sender's identity key, encrypted to the
recipient key with the ``maxencrypt`` scheme, and checked on arrival: the receiver needs the private key for ``to``,
the signature must verify and the signer must be ``from``. ``msgid`` is SHA3-256 over the serialised message
fields, so sender and receiver report the same value.
"""

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from mns_client.protocol import crypto
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.errors import CryptoError
from simnet.util import java_date

# The real package also carries a mined TxPoW and framing; this estimate makes 250 000 data bytes pass and
# 300 000 fail against the 262 144-byte limit, as on real nodes (fixture 19).
PACKAGE_OVERHEAD_ESTIMATE = 1500
MAX_PACKAGE_SIZE = 262144

_U32 = struct.Struct(">I")


def _fields(*parts: bytes) -> bytes:
    return b"".join(_U32.pack(len(p)) + p for p in parts)


def _unfields(blob: bytes, count: int) -> list[bytes]:
    out, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(blob):
            raise ValueError("truncated")
        (size,) = _U32.unpack_from(blob, offset)
        offset += 4
        if offset + size > len(blob):
            raise ValueError("truncated")
        out.append(blob[offset : offset + size])
        offset += size
    if offset != len(blob):
        raise ValueError("trailing bytes")
    return out


@dataclass(frozen=True)
class MaximaMessage:
    sender: bytes
    to: bytes
    random: bytes
    timemilli: int
    application: str
    data: bytes

    def serialise(self) -> bytes:
        return _fields(
            self.sender,
            self.to,
            self.random,
            self.timemilli.to_bytes(8, "big"),
            self.application.encode("utf-8"),
            self.data,
        )

    @classmethod
    def deserialise(cls, blob: bytes) -> "MaximaMessage":
        sender, to, random, millis, application, data = _unfields(blob, 6)
        return cls(sender, to, random, int.from_bytes(millis, "big"), application.decode("utf-8"), data)

    @property
    def msgid(self) -> str:
        return to_hex(hashlib.sha3_256(self.serialise()).digest())

    def to_json(self) -> dict[str, Any]:
        """``MaximaMessage.toJSON()``: the fields of the send reply and of the MAXIMA event, in their order."""
        return {
            "from": to_hex(self.sender),
            "to": to_hex(self.to),
            "time": java_date(self.timemilli),
            "timemilli": self.timemilli,
            "random": to_hex(self.random),
            "application": self.application,
            "data": to_hex(self.data),
        }

    def event_json(self) -> dict[str, Any]:
        return {**self.to_json(), "msgid": self.msgid}


def seal_package(message: MaximaMessage, sender_key: crypto.MaximaPrivateKey) -> bytes:
    """Sign with the sender's identity key and encrypt to ``message.to``."""
    body = message.serialise()
    signature = sender_key.sign(body)
    blob = crypto.maxencrypt(message.to, _fields(body, signature))
    return _fields(message.to, blob)


def package_size(package: bytes) -> int:
    return len(package) + PACKAGE_OVERHEAD_ESTIMATE


def package_recipient(package: bytes) -> bytes:
    return _unfields(package, 2)[0]


def open_package(package: bytes, private_key: crypto.MaximaPrivateKey) -> MaximaMessage | None:
    """Decrypt and check a package; None when it does not decrypt, does not verify, or ``from`` is not the signer."""
    try:
        _to, blob = _unfields(package, 2)
        body, signature = _unfields(private_key.decrypt(blob), 2)
        message = MaximaMessage.deserialise(body)
        if not crypto.maxverify(message.sender, body, signature):
            return None
    except (ValueError, CryptoError, UnicodeDecodeError):
        return None
    return message
