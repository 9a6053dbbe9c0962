"""The ``mns-sync`` application: what gateways of the MNS network say to one another (``docs/protocol.md``,
"Federation"). Django-free, so a third implementation can follow the page and these functions.

Every message is compact UTF-8 JSON ``{"v":1,"type":…,…}`` sent over Maxima; Maxima's verified ``from`` says which
gateway sent it. Types: ``claim``, ``claim-ack``, ``claim-nack``, ``commit``, ``abort`` (name claims), ``ops`` (a
batch of one origin's operations, pushed or answering a ``pull``), ``pull`` (ask for an origin's operations
after a cursor), ``where``/``position`` (a gateway restored from a backup asks how far its peers hold its
log; a peer says so, asked or not) and ``root`` (the directory's root at a cut-off, signed with the sender's
Maxima key: ``docs/protocol.md``, "Transparency"), and ``ask``/``told`` (a reconciliation question for a peer
without an HTTPS API, and its answer: ``mns_client.protocol.reconcile``'s ``QUESTIONS``). ``ops`` and ``pull`` may
name the ``incarnation`` of the origin's log. An ``ops`` answer to a pull from below the origin's compaction floor
says ``compacted`` (the floor) and carries only the tombstones (``delete`` ops) the compacted range kept; the field
is optional, so answers from a gateway that does not compact read as before.

An operation relayed by a gateway that is not its origin carries ``"relay":{"origin":…,"hops":n}`` in its
payload (``op_relay``): the gateway whose log it first appeared in, and how many gateways passed it on.
"""

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from mns_client.protocol import fields, reconcile
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
    "ops": ({"origin", "head", "ops"}, {"incarnation", "compacted"}),
    "pull": ({"origin", "since"}, {"limit", "incarnation"}),
    "where": ({"origin", "incarnation"}, set()),
    "position": ({"origin", "seq"}, {"incarnation"}),
    "root": ({"cutoff", "size", "root", "signature"}, set()),
    "ask": ({"ask", "question"}, set()),
    "told": ({"ask"}, {"answer", "error", "detail"}),  # an answer, or a refusal (error, detail)
}
_OP_FIELDS = {"seq", "kind", "payload", "created_at"}


_TEXT_FIELDS = ("claim_id", "name", "owner", "origin", "reason", "skeleton", "incarnation", "error", "detail")
_COUNT_FIELDS = ("expires_at", "head", "since", "limit", "seq", "cutoff", "size", "compacted")
_HEX_FIELDS = {"root": 32, "signature": 128}  # bytes: a SHA-256 hash, a maxsign (RSA-1024) signature
MAX_TEXT_CHARS = 600


class SyncMessageInvalid(Refusal):
    code = "sync_invalid"


def _invalid(field: str, problem: str) -> SyncMessageInvalid:
    return SyncMessageInvalid("sync_invalid", f"{field}: {problem}"[:200], field=field)


def _op_invalid(field: str, problem: str) -> SyncMessageInvalid:
    return SyncMessageInvalid("op_invalid", f"{field}: {problem}"[:200], field=field)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def message(message_type: str, **fields: Any) -> dict[str, Any]:
    """A message of ``message_type``, checked as a receiver would check it."""
    body = {"v": VERSION, "type": message_type, **{key: value for key, value in fields.items() if value is not None}}
    check(body)
    return body


def check(body: Any) -> None:
    """Raise ``SyncMessageInvalid`` unless ``body`` has its type's fields, no other, and sane values (``fields``:
    no ``null``, no ``true`` for an integer)."""
    message_type = body.get("type") if isinstance(body, dict) else None
    if not isinstance(message_type, str) or message_type not in _FIELDS:
        raise SyncMessageInvalid("sync_invalid", 'expected {"v":1,"type":<an mns-sync type>,…}', field="type")
    required, optional = _FIELDS[message_type]
    fields.check_header(body, message_type, required=required, optional=optional, invalid=_invalid)
    for key in _TEXT_FIELDS:
        if key in body:
            fields.text(body[key], key, invalid=_invalid, max_chars=MAX_TEXT_CHARS)
    for key in _COUNT_FIELDS:
        if key in body:
            fields.integer(body[key], key, invalid=_invalid)
    if message_type == "ops":
        fields.json_list(body["ops"], "ops", invalid=_invalid, max_items=MAX_BATCH_OPS)
    if message_type in ("ask", "told"):
        _check_ask(body)
    for key, size in _HEX_FIELDS.items():
        if key in body:
            _check_hex(body[key], key, size)


ASK_ID = re.compile(r"[0-9a-f]{32}")


def _check_ask(body: dict[str, Any]) -> None:
    """``ask``: the asker's id of the question (32 lower-case hex digits) and the question, whose ``q`` and field
    names are checked here (their values by the holder, which refuses a bad one in its ``told``); ``told``: the id,
    and either an ``answer`` object or an ``error`` code (with a ``detail``)."""
    fields.text(body["ask"], "ask", invalid=_invalid, pattern=ASK_ID)
    if body["type"] == "ask":
        question = fields.json_object(body["question"], "question", invalid=_invalid)
        kind = fields.one_of(question.get("q"), "question.q", tuple(reconcile.QUESTIONS), invalid=_invalid)
        required, optional = reconcile.QUESTIONS[kind]
        fields.check_keys(question, required={"q", *required}, optional=optional, invalid=_invalid, what="question")
    elif ("answer" in body) == ("error" in body) or ("detail" in body and "error" not in body):
        raise _invalid("told", "an answer, or an error (and its detail)")
    elif "answer" in body:
        fields.json_object(body["answer"], "answer", invalid=_invalid)


def _check_hex(value: Any, key: str, size: int) -> None:
    if not isinstance(value, str) or len(value) != 2 + 2 * size or not value.startswith("0x"):
        raise _invalid(key, f"0x + {2 * size} hex digits")
    try:
        bytes.fromhex(value[2:])
    except ValueError:
        raise _invalid(key, "not hex") from None


def check_op(op: Any) -> None:
    """One operation of an ``ops`` batch: ``{"seq","kind","payload","created_at"}``."""
    fields.check_keys(op, required=_OP_FIELDS, invalid=_op_invalid, what="operation")
    fields.integer(op["seq"], "seq", invalid=_op_invalid, low=1)
    fields.integer(op["created_at"], "created_at", invalid=_op_invalid)
    fields.one_of(op["kind"], "kind", KINDS, invalid=_op_invalid)
    fields.json_object(op["payload"], "payload", invalid=_op_invalid)


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


RELAY = "relay"
MAX_RELAY_HOPS = 64


def op_relay(payload: dict[str, Any]) -> tuple[str, int] | None:
    """The ``(origin, hops)`` a relayed op's payload names (``"relay":{"origin":"0x…","hops":n}``), ``None`` for
    an op of the sender's own; ``SyncMessageInvalid`` when the relay is malformed."""
    relay = payload.get(RELAY)
    if relay is None:
        return None
    fields.check_keys(relay, required={"origin", "hops"}, invalid=_op_invalid, what="relay")
    origin = fields.text(relay["origin"], "relay.origin", invalid=_op_invalid, max_chars=MAX_TEXT_CHARS)
    return origin, fields.integer(relay["hops"], "relay.hops", invalid=_op_invalid, low=1, high=MAX_RELAY_HOPS)


def relayed(payload: dict[str, Any], *, origin: str, hops: int) -> dict[str, Any]:
    """An op's payload as a relay passes it on: the same, naming the origin and the hops so far."""
    return {**unrelayed(payload), RELAY: {"origin": origin, "hops": hops}}


def unrelayed(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as its origin logged it (the relay's note taken off)."""
    return {key: value for key, value in payload.items() if key != RELAY}
