"""Several ``mns`` messages in one Maxima message (``docs/protocol.md`` § Batches), gateway → node.

``{"v":1,"type":"batch","messages":[{…},{…}]}``: each item is a whole ``mns`` message object (a ``receipt``, a
``handshake-result``, a ``forwarded``, …) exactly as it would travel alone, read by its own reader. The batch has
no signature of its own: like every reply of the gateway, its Maxima ``from`` authenticates it, and so each item.
A single message still travels alone, in its old form; readers take both.
"""

import json
from typing import Any

from . import fields
from .errors import MNSError

APPLICATION = "mns"
TYPE = "batch"
_HEAD = b'{"v":1,"type":"batch","messages":['
_TAIL = b"]}"


class BatchInvalid(MNSError):
    code = "malformed"


def _invalid(field: str, problem: str) -> BatchInvalid:
    return BatchInvalid(f"{field}: {problem}")


def pack(payloads: list[bytes]) -> bytes:
    """The batch of ``payloads`` (each the compact JSON object of one message, as it would be sent alone)."""
    if not payloads or any(not p.startswith(b"{") or is_batch(p) for p in payloads):
        raise ValueError("a batch holds one or more message objects, never another batch")
    return _HEAD + b",".join(payloads) + _TAIL


def packed_size(sizes: list[int]) -> int:
    """The size in bytes of the batch of messages of these sizes."""
    return len(_HEAD) + len(_TAIL) + sum(sizes) + max(len(sizes) - 1, 0)


def is_batch(data: bytes) -> bool:
    if b'"batch"' not in data[:200]:
        return False
    try:
        body = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(body, dict) and body.get("type") == TYPE


def unpack(data: bytes) -> list[bytes]:
    """The messages of a batch, each as the bytes of its own JSON object, in order; ``BatchInvalid`` when ``data``
    is not a well-formed batch (an item that is not an ``mns`` message object, another batch inside, no item)."""
    body = fields.loads(data, invalid=_invalid, what="data")
    fields.check_header(body, TYPE, required={"messages"}, invalid=_invalid)
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages", "expected a non-empty list")
    items = []
    for index, item in enumerate(messages):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) or item["type"] == TYPE:
            raise _invalid(f"messages[{index}]", "expected an mns message object other than a batch")
        items.append(_encode(item))
    return items


def messages_of(data: bytes) -> list[bytes]:
    """What a reader handles: the items of a batch, or ``data`` itself when it is a single message (or not a
    batch that can be read: its own reader refuses it then)."""
    if not is_batch(data):
        return [bytes(data)]
    try:
        return unpack(data)
    except BatchInvalid:
        return [bytes(data)]


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
