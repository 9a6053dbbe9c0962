"""maxcreate, maxsign, maxverify, maxencrypt, maxdecrypt and maxmessage (fixtures 28-52).

All the cryptography is ``mns_client.protocol.crypto``; this module only parses parameters and shapes replies.
The default private key is the node's identity key, as on real nodes.
"""

import struct
from typing import TYPE_CHECKING, Any

from mns_client.protocol import crypto
from mns_client.protocol.codecs import mx_encode, to_hex
from mns_client.protocol.errors import CryptoError
from simnet.cmd_maxima import data_param, hex_param, key_param
from simnet.commands import CommandError, Params, Reply

if TYPE_CHECKING:
    from simnet.node import SimNode

_PLAIN_PREFIX = b"\xff\xff\xff\xff"
_VERSION_ONE = b"\x00\x01\x01"  # MiniNumber 1: scale 0, length 1, value 1 (fixture 53)
_U32 = struct.Struct(">I")
_BAD_KEY = "java.security.spec.InvalidKeySpecException: invalid key"
_BAD_DECRYPT = "javax.crypto.BadPaddingException: Decryption error"


def _private(params: Params) -> bytes | None:
    """The ``privatekey`` given, or None: the node's identity key."""
    return hex_param(params.get("privatekey")) if params.has("privatekey") else None


def _key(node: "SimNode", private: bytes | None) -> crypto.MaximaPrivateKey:
    """The key ``_private`` named, loaded (``CryptoError`` when it does not load); the node's own is loaded once."""
    return node.identity_key if private is None else crypto.MaximaPrivateKey(private)


def maxcreate(node: "SimNode", params: Params, reply: Reply) -> None:
    private, public = crypto.generate_maxima_keypair()
    reply["response"] = {
        "publickey": to_hex(public),
        "mxpublickey": mx_encode(public),
        "privatekey": to_hex(private),
        "mxprivatekey": mx_encode(private),
    }


def maxsign(node: "SimNode", params: Params, reply: Reply) -> None:
    private, data = _private(params), data_param(params)
    try:
        signature = _key(node, private).sign(data)
    except CryptoError:
        raise CommandError(_BAD_KEY) from None
    reply["response"] = {"signature": to_hex(signature)}


def maxverify(node: "SimNode", params: Params, reply: Reply) -> None:
    data, signature = data_param(params), hex_param(params.get("signature"))
    try:
        valid = crypto.maxverify(key_param(params, "publickey"), data, signature)
    except CryptoError:
        raise CommandError(_BAD_KEY) from None
    reply["response"] = {"valid": valid}


def maxencrypt(node: "SimNode", params: Params, reply: Reply) -> None:
    try:
        blob = crypto.maxencrypt(key_param(params, "publickey"), data_param(params))
    except CryptoError:
        raise CommandError(_BAD_KEY) from None
    reply["response"] = {"encrypted": to_hex(blob)}


def maxdecrypt(node: "SimNode", params: Params, reply: Reply) -> None:
    private, data = _private(params), hex_param(params.get("data"))
    try:
        plain = _key(node, private).decrypt(data)
    except CryptoError:
        raise CommandError(_BAD_DECRYPT) from None
    reply["response"] = {"decrypted": to_hex(plain)}


# ------------------------------------------------------------------------------------------------- maxmessage


def _field(value: bytes) -> bytes:
    return _U32.pack(len(value)) + value


def _envelope(data: bytes, public: bytes, signature: bytes) -> bytes:
    """``MaximumMessage``: version ‖ u32 data ‖ u32 publickey ‖ u32 signature."""
    return _VERSION_ONE + _field(data) + _field(public) + _field(signature)


def _parse_envelope(blob: bytes) -> tuple[bytes, bytes, bytes]:
    if not blob.startswith(_VERSION_ONE):
        raise ValueError("unknown version")
    fields, offset = [], len(_VERSION_ONE)
    for _ in range(3):
        (size,) = _U32.unpack_from(blob, offset)
        offset += 4
        fields.append(blob[offset : offset + size])
        offset += size
    if offset != len(blob):
        raise ValueError("trailing bytes")
    return fields[0], fields[1], fields[2]


def _message_json(data: bytes, public: bytes, signature: bytes) -> dict[str, Any]:
    try:
        valid = crypto.maxverify(public, data, signature)
    except CryptoError:
        valid = False
    return {
        "data": to_hex(data),
        "publickey": to_hex(public),
        "mxpublickey": mx_encode(public),
        "signature": to_hex(signature),
        "valid": valid,
    }


def _encrypt(node: "SimNode", params: Params) -> dict[str, Any]:
    data = hex_param(params.get("data"))
    signature = node.identity_key.sign(data)
    envelope = _envelope(data, node.identity_public, signature)
    encrypted = params.has("publickey")
    if encrypted:
        try:
            blob = crypto.maxencrypt(key_param(params, "publickey"), envelope)
        except CryptoError:
            raise CommandError(_BAD_KEY) from None
    else:
        blob = _PLAIN_PREFIX + envelope
    message = _message_json(data, node.identity_public, signature)
    return {"message": message, "encrypted": encrypted, "data": to_hex(blob)}


def _decrypt(node: "SimNode", params: Params) -> dict[str, Any]:
    blob = hex_param(params.get("data"))
    encrypted = not blob.startswith(_PLAIN_PREFIX)
    try:
        envelope = _key(node, _private(params)).decrypt(blob) if encrypted else blob[4:]
        data, public, signature = _parse_envelope(envelope)
    except (CryptoError, ValueError, struct.error):
        raise CommandError("Invalid message..cannot decrypt") from None
    return {"encrypted": encrypted, "message": _message_json(data, public, signature)}


def maxmessage(node: "SimNode", params: Params, reply: Reply) -> None:
    action = params.get("action")
    if action == "encrypt":
        reply["response"] = _encrypt(node, params)
    elif action == "decrypt":
        reply["response"] = _decrypt(node, params)
    else:
        raise CommandError(f"Unknown action : {action}")
