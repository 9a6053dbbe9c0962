"""The mailboxes' kinds of replicated operation, registered with federation in ``apps.py``: a mailbox announced by
its home gateway (``mailbox``), a message stored at a replica (``message``) and its deletion (``delete``)."""

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from core.errors import DomainError
from federation import selectors as federation_selectors
from federation import services as federation
from federation.services import Invalid, Skip, Wait, kinds, sets
from mailboxes import services
from mailboxes.models import Mailbox, Message
from mns_client.protocol import fields
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.errors import CodecError
from mns_client.protocol.reconcile import item_hash
from registry import services as registry_services
from registry.models import NameRecord


def _replica_record(payload: dict[str, Any]) -> NameRecord:
    record = NameRecord.objects.filter(name=kinds.text(payload, "name", 32)).first()
    if record is None:
        raise Wait()
    return record


def mailbox_apply(origin: str, payload: dict[str, Any]) -> str:
    record = _replica_record(payload)
    replicas = payload.get("replicas")
    if not isinstance(replicas, list) or not replicas or not all(isinstance(key, str) for key in replicas):
        raise Invalid("replicas_invalid")
    if record.status != NameRecord.Status.ACTIVE or record.owner_key != kinds.text(payload, "owner"):
        # First: the name's statements, relayed, may overtake its old home's mailbox op (which is not relayed).
        raise Skip("name_moved_on")
    if not record.gateways or record.gateways[0] != origin:
        raise Invalid("mailbox_not_from_home")
    replicas = [origin, *(key for key in replicas if key != origin)][:1000]
    registry_services.name_replicas_set(name=record.name, gateways=replicas)
    if federation.me() not in replicas:
        return "not_replica"
    address = payload.get("address") if isinstance(payload.get("address"), str) else ""
    services.mailbox_replicate(record=record, owner_key=record.owner_key, address=address)
    return "applied"


def message_apply(origin: str, payload: dict[str, Any]) -> str:
    if payload.get("gone") is True:
        raise Skip("gone")
    if federation_selectors.deletion_logged(uid=kinds.text(payload, "uid", 32)):
        raise Skip("deleted")  # its delete went by first (a compacted range's tombstones, another replica's log)
    record = _replica_record(payload)
    if origin not in record.gateways and len(record.gateways) <= 1:
        raise Wait()  # another replica's letter, before the home's op that names the replicas (another origin)
    if federation.me() not in record.gateways:
        raise Skip("not_replica")
    if origin not in record.gateways:
        raise Invalid("message_not_from_replica")
    mailbox = Mailbox.objects.filter(record=record).first()
    if mailbox is None:
        raise Wait()
    owner = payload.get("owner")  # absent from the ops of gateways from before transfers: one owner then
    if owner is not None and owner != mailbox.owner_key:
        raise Skip("owner_changed")  # a letter for the old owner, arriving after the name changed hands
    try:
        ciphertext = from_hex(kinds.text(payload, "ciphertext", 2 * settings.MNS_FEDERATION_MAX_OP_BYTES))
        received_ms = fields.integer(payload["received_at"], "received_at", invalid=_message_invalid)  # not true
        received_at = datetime.fromtimestamp(received_ms / 1000, tz=UTC)
        sender_verified = payload["sender_verified"]
        if not isinstance(sender_verified, bool) or not ciphertext:
            raise Invalid("message_invalid")
    except (CodecError, KeyError, TypeError, ValueError, OverflowError):
        raise Invalid("message_invalid") from None
    sender = payload.get("sender", "")
    if not isinstance(sender, str) or len(sender) > 1000:
        raise Invalid("sender_invalid")
    try:
        return services.message_replicate(
            mailbox=mailbox,
            uid=kinds.text(payload, "uid", 32),
            delivery_id=kinds.text(payload, "delivery_id", 64),
            sender_key=sender,
            sender_verified=sender_verified,
            scheme=kinds.text(payload, "scheme", 32),
            ciphertext=ciphertext,
            received_at=received_at,
        )
    except DomainError as refused:  # over_quota, too_large, bad_scheme here
        raise Skip(refused.code) from None


def _message_invalid(field: str, problem: str) -> Exception:
    return Invalid("message_invalid")


def _tombstone_invalid(field: str, problem: str) -> Exception:
    return Invalid("tombstone_invalid")


def message_wire(payload: dict[str, Any]) -> dict[str, Any]:
    """A ``message`` op takes its ciphertext from the stored message (the log does not keep a copy), or says
    ``gone`` when the message was deleted or expired since."""
    message = Message.objects.filter(uid=payload.get("uid")).only("ciphertext").first()
    if message is None:
        return {**payload, "gone": True}
    return {**payload, "ciphertext": to_hex(bytes(message.ciphertext))}


def delete_apply(origin: str, payload: dict[str, Any]) -> str:
    record = NameRecord.objects.filter(name=kinds.text(payload, "name", 32)).first()
    if record is None:
        raise Skip("unknown_name")
    if origin not in record.gateways:
        raise Invalid("delete_not_from_replica")
    deleted = services.message_replicated_delete(name=record.name, uid=kinds.text(payload, "uid", 32))
    return "applied" if deleted else "already_deleted"


def counters_lock(payloads: list[dict[str, Any]]) -> None:
    """Lock the rows of the mailboxes a batch's ops name, in id order, and then their counter shards, before it
    applies any: the order a batch of deliveries takes them in (``services.deliveries_store``; the rule is in
    ``services.counters``), so the two can never wait on each other in a cycle, whatever the order of the peer's
    ops."""
    names = {payload.get("name") for payload in payloads if isinstance(payload.get("name"), str)}
    if names:
        services.counters_lock(Mailbox.objects.filter(record__name__in=names).values_list("id", flat=True))


# --- The ``mailboxes`` and ``messages:<name>`` sets, for reconciliation and snapshots ----------------------------
def _announced(home: str) -> Any:
    """The names whose mailbox ``home`` announced with its replicas (its ``mailbox`` op): active, ``home`` first."""
    return NameRecord.objects.filter(status=NameRecord.Status.ACTIVE, gateways__0=home, gateways__1__isnull=False)


def mailboxes_items(argument: str, home: str) -> Iterator[tuple[str, bytes]]:
    rows = _announced(home).values_list("name", "owner_key", "gateways")
    for name, owner, gateways in rows.iterator(chunk_size=5000):
        yield name, item_hash(name, owner, json.dumps(gateways))


def mailboxes_serve(argument: str, keys: list[str]) -> list[dict[str, Any]]:
    """Each mailbox as its home's ``mailbox`` op says it (served by the home only: the asker checks that)."""
    rows = _announced(federation.me() or "").filter(name__in=keys, mailbox__isnull=False)
    return [
        {"name": name, "owner": owner, "address": address, "replicas": gateways}
        for name, owner, address, gateways in rows.values_list("name", "owner_key", "mailbox__address", "gateways")
    ]


def mailboxes_apply(origin: str, item: dict[str, Any]) -> str:
    """A mailbox from its home's snapshot, applied as the home's ``mailbox`` op is (which checks the home)."""
    return mailbox_apply(origin, item)


def _kept_with(peer_key: str, *, name: str | None = None) -> list[str]:
    """The names of the mailboxes kept here of which the peer is a replica too, in name order. PostgreSQL finds
    them by the JSON array's containment; SQLite has no such lookup, and its gateways (a laptop, the tests) keep
    few mailboxes, so it reads the lists."""
    rows = Mailbox.objects.order_by("record__name")
    if name is not None:
        rows = rows.filter(record__name=name)
    if connection.features.supports_json_field_contains:
        return list(rows.filter(record__gateways__contains=[peer_key]).values_list("record__name", flat=True))
    return [kept for kept, gateways in rows.values_list("record__name", "record__gateways") if peer_key in gateways]


def messages_shared(peer_key: str) -> list[str]:
    """The mailboxes this gateway keeps of which the peer is a replica too: one ``messages:<name>`` set each."""
    return _kept_with(peer_key)


def messages_allowed(name: str, peer_key: str) -> bool:
    return bool(_kept_with(peer_key, name=name))


TOMBSTONE = "deleted"  # what a deleted message's item says in place of its contents


def messages_items(name: str, home: str) -> Iterator[tuple[str, bytes]]:
    """A mailbox's messages (uid, the sender's delivery id, the scheme and a hash of the ciphertext), and its
    tombstones: a message deleted here is an item too, so that a gateway that still holds it (it was away when the
    delete went by, and a snapshot moved its cursor past it) learns of the deletion, not only of what it lacks.
    A tombstone is listed while it matters (``federation_selectors.tombstones_of``), and its date is not hashed:
    two gateways that hold it agree on it whenever each learnt it."""
    rows = Message.objects.filter(mailbox__record__name=name).values_list("uid", "delivery_id", "scheme", "ciphertext")
    live = set()
    for uid, delivery_id, scheme, ciphertext in rows.iterator(chunk_size=500):
        live.add(uid)
        yield uid, item_hash(uid, delivery_id, scheme, hashlib.sha256(bytes(ciphertext)).digest())
    for uid in sorted(federation_selectors.tombstones_of(name=name).keys() - live):
        yield uid, item_hash(uid, TOMBSTONE)


def messages_serve(name: str, keys: list[str]) -> list[dict[str, Any]]:
    """Each message as a ``message`` op carries it on the wire, ciphertext included; a tombstone with the date of
    the deletion (``deleted_at``, ms), for the receiver's copy to expire when this one does."""
    messages = Message.objects.filter(mailbox__record__name=name, uid__in=keys).select_related("mailbox__record")
    served = [services.message_op(message, message.mailbox, ciphertext=True) for message in messages]
    held = {item["uid"] for item in served}
    tombstones = federation_selectors.tombstones_of(name=name)
    return served + [
        {"name": name, "uid": uid, TOMBSTONE: True, "deleted_at": int(tombstones[uid].timestamp() * 1000)}
        for uid in sorted(set(keys) & tombstones.keys() - held)
    ]


def messages_apply(origin: str, item: dict[str, Any]) -> str:
    """A message from a replica's snapshot, applied as its ``message`` op is (the origin must be a replica, and no
    ``delete`` of it may be logged here). A tombstone from a replica deletes the message here, as that replica's
    ``delete`` op would have, and this gateway logs the deletion as its own, dated as the tombstone was (a
    replica's word, as the one it learnt it from): it is then kept and compacted like any, refuses the message
    from a peer that still holds it, and reaches the peers by the log too. One past the horizon is not taken: every
    message it could delete has expired."""
    if item.get(TOMBSTONE) is not True:
        return message_apply(origin, item)
    uid = kinds.text(item, "uid", 32)
    try:
        deleted_ms = fields.integer(item["deleted_at"], "deleted_at", invalid=_tombstone_invalid)
        deleted_at = min(datetime.fromtimestamp(deleted_ms / 1000, tz=UTC), timezone.now())
    except (KeyError, ValueError, OverflowError, OSError):
        raise Invalid("tombstone_invalid") from None
    if deleted_at < federation_selectors.tombstone_horizon():
        raise Skip("tombstone_expired")
    outcome = delete_apply(origin, item)
    if not federation_selectors.deletion_logged(uid=uid):
        federation.op_append(
            kind="delete", payload={"name": kinds.text(item, "name", 32), "uid": uid}, created_at=deleted_at
        )
    return outcome


def register() -> None:
    sets.register("mailboxes", items=mailboxes_items, serve=mailboxes_serve, apply=mailboxes_apply, after="names")
    sets.register(
        "messages",
        items=messages_items,
        serve=messages_serve,
        apply=messages_apply,
        allowed=messages_allowed,
        shared=messages_shared,
        after="mailboxes",
    )
    kinds.register("mailbox", apply=mailbox_apply, lock=counters_lock)
    kinds.register("message", apply=message_apply, wire=message_wire, lock=counters_lock)
    kinds.register("delete", apply=delete_apply, lock=counters_lock)
