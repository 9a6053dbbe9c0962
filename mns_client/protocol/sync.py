"""The ``mns-sync`` application: what gateways of the MNS network say to one another (``docs/protocol.md``,
"Federation"). Django-free, so a third implementation can follow the page and these functions.

Every message is compact UTF-8 JSON ``{"v":1,"type":…,…}`` sent over Maxima; Maxima's verified ``from`` says which
gateway sent it. Types: ``claim``, ``claim-ack``, ``claim-nack``, ``commit``, ``abort`` (name claims), ``ops`` (a
batch of one origin's operations, pushed or answering a ``pull``) and ``pull`` (ask for an origin's operations
after a cursor).
"""

import json
from collections.abc import Iterable, Iterator
from typing import Any

from mns_client.protocol.errors import Refusal

APPLICATION = "mns-sync"
VERSION = 1
KINDS = ("statement", "mailbox", "message", "delete", "suspend", "restore")
MAX_SAFE_INTEGER = 2**53 - 1
MAX_BATCH_OPS = 500

_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # type: (required, optional)
    "claim": ({"claim_id", "name", "owner", "expires_at"}, {"skeleton"}),
    "claim-ack": ({"claim_id"}, set()),
    "claim-nack": ({"claim_id"}, {"reason"}),
    "commit": ({"claim_id"}, set()),
    "abort": ({"claim_id"}, set()),
    "ops": ({"origin", "head", "ops"}, set()),
    "pull": ({"origin", "since"}, {"limit"}),
}
_OP_FIELDS = {"seq", "kind", "payload", "created_at"}


class SyncMessageInvalid(Refusal):
    code = "sync_invalid"


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def message(message_type: str, **fields: Any) -> dict[str, Any]:
    """A message of ``message_type``, checked as a receiver would check it."""
    body = {"v": VERSION, "type": message_type, **{key: value for key, value in fields.items() if value is not None}}
    check(body)
    return body


def check(body: Any) -> None:
    """Raise ``SyncMessageInvalid`` unless ``body`` has its type's fields, no other, and sane values."""
    if not isinstance(body, dict) or body.get("v") != VERSION or body.get("type") not in _FIELDS:
        raise SyncMessageInvalid("sync_invalid", 'expected {"v":1,"type":<an mns-sync type>,…}')
    required, optional = _FIELDS[body["type"]]
    unknown = set(body) - required - optional - {"v", "type"}
    missing = required - set(body)
    if unknown or missing:
        problem = f"unknown {sorted(unknown)}" if unknown else f"missing {sorted(missing)}"
        raise SyncMessageInvalid("sync_invalid", f"{body['type']}: {problem}"[:200])
    for key in ("claim_id", "name", "owner", "origin", "reason", "skeleton"):
        if key in body and (not isinstance(body[key], str) or not 0 < len(body[key]) <= 600):
            raise SyncMessageInvalid("sync_invalid", f"{key}: expected a short string")
    for key in ("expires_at", "head", "since", "limit"):
        if key in body and not _is_count(body[key]):
            raise SyncMessageInvalid("sync_invalid", f"{key}: expected a non-negative integer")
    if body["type"] == "ops" and (not isinstance(body["ops"], list) or len(body["ops"]) > MAX_BATCH_OPS):
        raise SyncMessageInvalid("sync_invalid", f"ops: expected a list of at most {MAX_BATCH_OPS} operations")


def check_op(op: Any) -> None:
    """One operation of an ``ops`` batch: ``{"seq","kind","payload","created_at"}``."""
    if not isinstance(op, dict) or set(op) != _OP_FIELDS:
        raise SyncMessageInvalid("op_invalid", f"an operation has exactly: {', '.join(sorted(_OP_FIELDS))}")
    if not _is_count(op["seq"]) or op["seq"] < 1 or not _is_count(op["created_at"]):
        raise SyncMessageInvalid("op_invalid", "seq and created_at must be non-negative integers (seq from 1)")
    if op["kind"] not in KINDS or not isinstance(op["payload"], dict):
        raise SyncMessageInvalid("op_invalid", f"kind must be one of {', '.join(KINDS)}, payload an object")


def op_size(op: dict[str, Any]) -> int:
    return len(encode(op))


def batches(*, origin: str, head: int, ops: Iterable[dict[str, Any]], max_bytes: int) -> Iterator[dict[str, Any]]:
    """``ops`` messages of one origin, each at most ``max_bytes`` once encoded (an op alone may not fit: the
    caller keeps operations below ``max_bytes`` minus the header)."""
    header = len(encode({"v": VERSION, "type": "ops", "origin": origin, "head": head, "ops": []}))
    batch: list[dict[str, Any]] = []
    size = header
    for op in ops:
        extra = op_size(op) + 1
        if batch and (size + extra > max_bytes or len(batch) >= MAX_BATCH_OPS):
            yield message("ops", origin=origin, head=head, ops=batch)
            batch, size = [], header
        batch.append(op)
        size += extra
    if batch:
        yield message("ops", origin=origin, head=head, ops=batch)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SAFE_INTEGER
