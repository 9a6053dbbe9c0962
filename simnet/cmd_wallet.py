"""keys, sign, verify, convert, hash and coinnotify (fixtures 100-116, 130-134).

Wallet signatures: a real node signs with a TreeKey (a three-level Winternitz tree, 4125 bytes with its proofs).
simnet keeps that outer shape, so replies have the fixtures' sizes and layout: a MiniNumber count 3, then three
levels of ``u32 32 ‖ key ‖ u32 1088 ‖ one-time signature ‖ proof``. Inside, the bytes are simnet's own: level 0's
key is the wallet key itself (a real root is a hash over the tree, not stored), and every other byte is a keyed
hash of the wallet secret, the data and the key use, which only the shared chain can recompute. So signatures
verify on every simnet node and nowhere else, and any changed data or signature byte is refused.
"""

import hashlib
import struct
from typing import TYPE_CHECKING, Any

from mns_client.protocol.codecs import mx_decode, to_hex
from mns_client.protocol.errors import CodecError
from simnet.cmd_chain import address_param
from simnet.commands import CommandError, Params, Reply

if TYPE_CHECKING:
    from simnet.node import SimNode

SIGNATURE_SIZE = 4125
_LEVELS = 3
_COUNT = b"\x00\x01\x03"  # MiniNumber 3: the tree depth
_U32 = struct.Struct(">I")
_OTS_SIZE = 1088
_PROOF_SIZE = (SIGNATURE_SIZE - len(_COUNT)) // _LEVELS - (4 + 32 + 4 + _OTS_SIZE)
_KEY_SIZE, _KEY_DEPTH, _KEY_MAXUSES = 64, 3, 262144
_NULL_KEY = (
    'java.lang.NullPointerException: Cannot invoke "org.minima.utils.Streamable.writeDataStream'
    '(java.io.DataOutputStream)" because "<parameter1>" is null'
)
_BAD_SIGNATURE = "java.io.EOFException"


def data_param(params: Params, name: str) -> bytes:
    """``Command.getDataParam``: ``0x`` hex or an ``Mx`` address; anything else is refused with the node's text."""
    text = params.get(name)
    try:
        if text.lower().startswith("mx"):
            return mx_decode(text)
        digits = text[2:] if text[:2] in ("0x", "0X") else text
        return bytes.fromhex(digits if len(digits) % 2 == 0 else "0" + digits)
    except (ValueError, CodecError):
        raise CommandError(f"Invalid Data param specified : {name} {text}") from None


def _stream(secret: bytes, data: bytes, use: int, label: str, size: int) -> bytes:
    digest = hashlib.shake_256()
    for part in (label.encode(), secret, _U32.pack(use), data):
        digest.update(_U32.pack(len(part)) + part)
    return digest.digest(size)


def make_signature(rootkey: bytes, secret: bytes, data: bytes, use: int) -> bytes:
    """The simnet stand-in for a TreeKey signature of ``data`` at key use ``use`` (layout in the module doc)."""
    out = bytearray(_COUNT)
    for level in range(_LEVELS):
        key = rootkey if level == 0 else _stream(secret, b"", use, f"key{level}", 32)
        proof = _stream(secret, data, use, f"proof{level}", _PROOF_SIZE)
        if level == 0:
            proof = _U32.pack(use) + proof[4:]
        out += _U32.pack(32) + key + _U32.pack(_OTS_SIZE) + _stream(secret, data, use, f"ots{level}", _OTS_SIZE)
        out += proof
    return bytes(out)


def signature_parts(signature: bytes) -> tuple[bytes, int]:
    """The root key and key use a signature names; a signature of another shape is refused as the node does."""
    if len(signature) != SIGNATURE_SIZE or not signature.startswith(_COUNT):
        raise CommandError(_BAD_SIGNATURE)
    offset = len(_COUNT)
    (size,) = _U32.unpack_from(signature, offset)
    if size != 32:
        raise CommandError(_BAD_SIGNATURE)
    rootkey = signature[offset + 4 : offset + 36]
    (use,) = _U32.unpack_from(signature, offset + 36 + 4 + _OTS_SIZE)
    return rootkey, use


def signature_valid(node: "SimNode", data: bytes, signature: bytes) -> bool:
    rootkey, use = signature_parts(signature)
    secret = node.chain.key_secrets.get(to_hex(rootkey))
    if secret is None:
        return False
    return make_signature(rootkey, secret, data, use) == signature


# --------------------------------------------------------------------------------------------- commands


def _key_json(node: "SimNode", index: int, key: str) -> dict[str, Any]:
    return {
        "size": _KEY_SIZE,
        "depth": _KEY_DEPTH,
        "uses": node.key_uses.get(key, 0),
        "maxuses": _KEY_MAXUSES,
        "modifier": f"0x{index:02X}",
        "publickey": key,
    }


def keys(node: "SimNode", params: Params, reply: Reply) -> None:
    action = params.opt("action", "list")
    if action != "list":
        raise CommandError(f"Invalid action : {action}")
    wanted = to_hex(data_param(params, "publickey")) if params.has("publickey") else None
    rows = [_key_json(node, i, key) for i, key in enumerate(node.wallet_keys) if wanted in (None, key)]
    reply["response"] = {"keys": rows, "total": len(rows), "maxuses": max((r["uses"] for r in rows), default=0)}


def sign(node: "SimNode", params: Params, reply: Reply) -> None:
    data = data_param(params, "data")
    key = to_hex(data_param(params, "publickey"))
    secret = node.chain.key_secrets.get(key)
    if secret is None or key not in node.wallet_keys:
        raise CommandError(_NULL_KEY)
    with node.lock:
        use = node.key_uses.get(key, 0) + 1
        node.key_uses[key] = use
    reply["response"] = to_hex(make_signature(bytes.fromhex(key[2:]), secret, data, use))


def verify(node: "SimNode", params: Params, reply: Reply) -> None:
    data = data_param(params, "data")
    publickey = data_param(params, "publickey")
    signature = data_param(params, "signature")
    rootkey, _ = signature_parts(signature)
    if rootkey != publickey:
        raise CommandError(f"Signature publickey is different : {to_hex(rootkey)}")
    if signature_valid(node, data, signature):
        reply["response"] = "Signature valid"
    else:
        # A failed check is a ``message``, not an ``error`` (fixtures 103, 104).
        reply["status"] = False
        reply["message"] = "Signature NOT valid"


def _decode16(text: str) -> bytes:
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        return bytes.fromhex(digits if len(digits) % 2 == 0 else "0" + digits)
    except ValueError:
        raise CommandError(f"java.lang.NumberFormatException: Invalid HEX string in decode16 : {text}") from None


def convert(node: "SimNode", params: Params, reply: Reply) -> None:
    source, target = params.get("from").lower(), params.get("to").lower()
    text = params.get("data")
    if source == "hex":
        raw = _decode16(text)
    elif source == "string":
        raw = text.encode("utf-8")
    elif source == "mx":
        try:
            raw = mx_decode(text)
        except CodecError:
            raise CommandError("java.lang.ArithmeticException: Minima Address Checksum Error") from None
    else:
        raise CommandError(f"Invalid FROM type : {source}")
    if target == "hex":
        out = to_hex(raw)
    elif target == "string":
        out = raw.decode("utf-8", errors="replace")
    else:
        raise CommandError(f"Invalid TO type : {target}")
    reply["response"] = {"conversion": out}


def hash_(node: "SimNode", params: Params, reply: Reply) -> None:
    text = params.get("data")
    raw = _decode16(text) if text.startswith("0x") else text.encode("utf-8")
    kind = params.opt("type", "sha3")
    if kind == "sha3":
        digest = hashlib.sha3_256(raw).digest()
    elif kind == "sha2":
        digest = hashlib.sha256(raw).digest()
    else:
        raise CommandError(f"Invalid hash type : {kind}")
    reply["response"] = {"input": text, "data": to_hex(raw), "type": kind, "hash": to_hex(digest)}


def coinnotify(node: "SimNode", params: Params, reply: Reply) -> None:
    """Addresses whose coins raise ``NOTIFYCOIN`` events; kept in memory only, as on real nodes (MinimaDB)."""
    action = params.get("action")
    address = address_param(params)
    response: dict[str, Any] = {"address": address}
    with node.lock:
        if action == "add":
            node.coin_notify.add(address)
        elif action == "remove":
            response["found"] = address in node.coin_notify
            node.coin_notify.discard(address)
        elif action == "check":
            response["found"] = address in node.coin_notify
        else:
            raise CommandError(f"Invalid action : {action}")
    reply["response"] = response
