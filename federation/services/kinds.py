"""The kinds of operation in the log, each registered by the app that owns its rows.

Federation moves operations; it does not know names or mailboxes. The registry registers ``statement``,
``suspend`` and ``restore``, the mailboxes ``mailbox``, ``message`` and ``delete`` (in their ``AppConfig.ready``):
how to apply a peer's op of that kind here, and, where the log keeps less than travels, how to complete an op for
the wire (a ``message`` op takes its ciphertext from the stored message).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mns_client.protocol import sync

Apply = Callable[[str, dict[str, Any]], str]
Wire = Callable[[dict[str, Any]], dict[str, Any]]
Lock = Callable[[list[dict[str, Any]]], None]


class Wait(Exception):
    """The op follows another origin's op this gateway has not applied yet: stop here, try again later."""


class Invalid(Exception):
    """The op does not verify: refused and counted against the peer."""


class Skip(Exception):
    """The op is valid but changes nothing here (a duplicate, not a replica, a limit): recorded, not counted."""


@dataclass(frozen=True)
class Kind:
    apply: Apply  # (the origin's identity key, the payload) -> the outcome: "applied", or why it changed nothing
    wire: Wire | None
    lock: Lock | None  # takes, in its own order, the rows a batch's ops of this kind will lock, before any applies
    relay: bool = False  # verifiable without trusting the sender (owner-signed): relayed on to the other peers


_kinds: dict[str, Kind] = {}


def register(
    kind: str, *, apply: Apply, wire: Wire | None = None, lock: Lock | None = None, relay: bool = False
) -> None:
    _kinds[kind] = Kind(apply=apply, wire=wire, lock=lock, relay=relay)


def lock_for(ops: list[Any]) -> None:
    """Before a batch applies: let each kind take the rows its ops will lock, in that kind's own order (the order
    the app's other writers take them in), so applying the ops in the peer's order cannot deadlock with them.
    Each ``lock`` gets the payloads of its kind's ops as they came (dicts, not verified yet). The kinds that share
    a ``lock`` are handed their payloads together, in one call."""
    payloads: dict[Lock, list[dict[str, Any]]] = {}
    for op in ops:
        registered = _kinds.get(op.get("kind")) if isinstance(op, dict) else None
        if registered is not None and registered.lock is not None and isinstance(op.get("payload"), dict):
            payloads.setdefault(registered.lock, []).append(op["payload"])
    for lock, batch in payloads.items():
        lock(batch)


def kind_of(kind: str) -> Kind:
    """The registered kind; a kind of the protocol that no app registered fails (the batch rolls back and is
    applied later), never counted against the peer nor skipped for good."""
    try:
        return _kinds[kind]
    except KeyError:
        if kind in sync.KINDS:
            raise RuntimeError(f"no app registered the {kind!r} operation kind") from None
        raise Invalid("op_kind_unknown") from None


def for_wire(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    registered = kind_of(kind)
    return registered.wire(payload) if registered.wire is not None else payload


def text(payload: dict[str, Any], key: str, limit: int = 600) -> str:
    """A required string field of an op's payload, 1 to ``limit`` characters, else ``Invalid("<key>_invalid")``."""
    value = payload.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise Invalid(f"{key}_invalid")
    return value
