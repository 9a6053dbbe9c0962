"""The MNS network (DESIGN §5): peers, the operation log and its replication, and claims of new names.

Every message of the ``mns-sync`` application is accepted only from an enabled peer's identity key (the ``from``
Maxima verified). Refusals raise before anything is written, except where a refusal must itself be recorded
(an invalid operation counts against its peer, in the same transaction as the batch's other effects).
"""

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import DomainError
from core.queue import enqueue_now, enqueue_on_commit
from federation import selectors
from federation.models import Claim, Lease, LogHead, Operation, Peer
from handshake.models import Challenge
from mailboxes import services as mailbox_services
from mailboxes.models import Mailbox, Message
from maxima.models import OutboundMessage
from maxima.routing import Ignored, InboundMessage
from maxima.selectors import gateway_identity_key
from maxima.services import outbound_enqueue
from mns_client.protocol import fields, sync
from mns_client.protocol.codecs import canonical_public_key, from_hex, parse_address, to_hex
from mns_client.protocol.errors import CodecError, MNSError
from mns_client.protocol.names import NameRefused, normalise, skeleton
from mns_client.protocol.statements import SignedStatement, StatementInvalid
from registry import services as registry_services
from registry.models import NameRecord

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------------- peers


def peer_upsert(
    *, name: str, identity_key: str, address: str, api_url: str = "", permanent: bool = False, enabled: bool = True
) -> tuple[Peer, bool]:
    """Add a peer, or change the one of that name (idempotent: the same arguments again change nothing)."""
    try:
        key = canonical_public_key(identity_key)
    except CodecError:
        raise DomainError(
            "peer_key_invalid", "The identity key is not a Maxima public key (0x… hex of the DER)."
        ) from None
    try:
        parsed = parse_address(address)
    except CodecError as exc:
        raise DomainError("peer_address_invalid", f"Not a Maxima address (MAX#… or Mx…@host:port): {exc}") from None
    if permanent and not str(parsed).startswith("MAX#"):
        raise DomainError("peer_address_invalid", "A permanent address is a MAX#… address.")
    with transaction.atomic():
        clash = Peer.objects.filter(identity_key=key).exclude(name=name).first()
        if clash is not None:
            raise DomainError("peer_key_taken", f"The peer {clash.name!r} has this identity key.", status=409)
        peer, created = Peer.objects.update_or_create(
            name=name,
            defaults={
                "identity_key": key,
                "address": str(parsed),
                "api_url": api_url,
                "permanent": permanent,
                "enabled": enabled,
            },
        )
    logger.info("%s peer %s", "added" if created else "updated", name)
    return peer, created


def peer_remove(*, name: str) -> bool:
    deleted, _ = Peer.objects.filter(name=name).delete()
    return bool(deleted)


def peer_pause(*, peer_id: int, reason: str) -> bool:
    """Stop talking to a peer (staff, or too many invalid operations); its messages are refused until resumed."""
    paused = Peer.objects.filter(id=peer_id, paused=False).update(
        paused=True, paused_reason=reason[:2000], paused_at=timezone.now()
    )
    if paused:
        logger.warning("paused peer %s: %s", peer_id, reason)
    return bool(paused)


def peer_resume(*, peer_id: int) -> bool:
    """Talk to a paused peer again, with its invalid-operation count reset."""
    resumed = Peer.objects.filter(id=peer_id, paused=True).update(
        paused=False, paused_reason="", paused_at=None, invalid_ops=0
    )
    if resumed:
        logger.info("resumed peer %s", peer_id)
    return bool(resumed)


def self_key() -> str | None:
    """This gateway's own identity key (the origin of its operations), once its node reported it."""
    return gateway_identity_key()


def _short(key: str) -> str:
    """A short, stable tag of a key for idempotency keys (they are at most 200 characters)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _send(peer: Peer, body: dict[str, Any], idempotency_key: str) -> None:
    outbound_enqueue(
        destination=peer.address,
        application=sync.APPLICATION,
        payload=sync.encode(body),
        idempotency_key=idempotency_key,
    )


def peer_heard(*, message: InboundMessage) -> Peer:
    """The enabled, unpaused peer that sent ``message`` (Maxima verified its ``from``), now marked as heard from;
    ``Ignored`` (nothing written) for anyone else."""
    try:
        peer = selectors.peer_of_key(key=canonical_public_key(message.sender))
    except CodecError:
        peer = None
    if peer is None:
        raise Ignored("mns-sync from a key that is not an enabled peer")
    if peer.paused:
        raise Ignored(f"mns-sync from the paused peer {peer.name}")
    Peer.objects.filter(id=peer.id).update(last_heard_at=timezone.now())
    _outbox_nudge(peer)
    return peer


def _outbox_nudge(peer: Peer) -> int:
    """The peer is answering again: what waits in the outbox for it after failed tries (its node was away) goes
    now rather than at the end of its backoff (usually nothing waits: one small query per message)."""
    from maxima.tasks import send_outbound

    now = timezone.now()
    waiting = list(
        OutboundMessage.objects.filter(
            destination=peer.address,
            status=OutboundMessage.Status.QUEUED,
            attempts__gte=1,
            next_attempt_at__gt=now,
        ).values_list("id", flat=True)[:100]
    )
    if not waiting:
        return 0
    OutboundMessage.objects.filter(id__in=waiting, status=OutboundMessage.Status.QUEUED).update(next_attempt_at=now)
    for message_id in waiting:
        enqueue_on_commit(send_outbound, message_id)
    logger.info("peer %s answers again: sending its %s waiting message(s) now", peer.name, len(waiting))
    return len(waiting)


def invalid_count(*, peer: Peer, count: int, why: str) -> None:
    """Count invalid operations against a peer; past ``MNS_FEDERATION_PAUSE_AFTER_INVALID`` it is paused."""
    Peer.objects.filter(id=peer.id).update(invalid_ops=F("invalid_ops") + count)
    peer.refresh_from_db(fields=["invalid_ops", "paused"])
    logger.warning("peer %s sent %s invalid operation(s): %s", peer.name, count, why)
    if peer.invalid_ops >= settings.MNS_FEDERATION_PAUSE_AFTER_INVALID and not peer.paused:
        peer_pause(peer_id=peer.id, reason=f"{peer.invalid_ops} invalid operations; the last: {why}")


# ---------------------------------------------------------------------------------------------- the op log


def op_append(*, kind: str, payload: dict[str, Any]) -> Operation | None:
    """Append one of this gateway's own operations to its log, in the caller's transaction; numbered and pushed
    to peers after the commit.

    The append is one INSERT with no ``seq`` yet: it locks nothing, so concurrent writers (deliveries above all)
    commit side by side, their fsyncs grouped, instead of queueing on one head row until each has committed.
    ``op_sequence`` numbers the committed ones later (a push, the sync round). Without its own identity key yet
    the gateway cannot have confirmed anything worth replicating: nothing is appended, and a warning says so.
    """
    origin = self_key()
    if origin is None:
        logger.warning("a %s operation was not logged: this gateway does not know its identity key yet", kind)
        return None
    op = Operation.objects.create(origin=origin, kind=kind, payload=payload, created_at=timezone.now(), outcome="own")
    if selectors.peers_active().exists():
        from federation.tasks import push

        transaction.on_commit(lambda: enqueue_now(push))
    return op


def op_sequence(*, chunk: int = 2000) -> int:
    """Give this gateway's committed, unnumbered operations the next ``seq`` numbers, each round in the order they
    were appended (an op that commits after a round is numbered by a later one); returns how many it numbered.
    Call it outside a transaction: inside one, the head row stays locked until that transaction ends.

    One sequencer at a time: each round first UPDATEs the ``LogHead`` row (a row lock on PostgreSQL, the write
    lock on SQLite) and only then reads the head and the unnumbered ops, so two sequencers never hand out one
    number. It sees committed ops only, so no number is ever given to an op that could still roll back, and an op
    committed after a round gets a later number than every op that round numbered: a peer reading the log by
    cursor never misses one. Causal order is kept: an op whose transaction began after another committed was
    appended after it (a higher id) and is numbered after it, in the same round or a later one.
    """
    origin = self_key()
    if origin is None or not Operation.objects.filter(origin=origin, seq__isnull=True).exists():
        return 0  # nothing to number: no lock taken, nothing written
    numbered = 0
    while True:
        with transaction.atomic():
            LogHead.objects.get_or_create(origin=origin)
            LogHead.objects.filter(origin=origin).update(seq=F("seq"))  # the lock, before reading anything
            head = LogHead.objects.filter(origin=origin).values_list("seq", flat=True).get()
            ops = list(Operation.objects.filter(origin=origin, seq__isnull=True).order_by("id").only("id")[:chunk])
            if not ops:
                return numbered
            for offset, op in enumerate(ops, start=1):
                op.seq = head + offset
            Operation.objects.bulk_update(ops, ["seq"], batch_size=500)
            LogHead.objects.filter(origin=origin).update(seq=head + len(ops))
        numbered += len(ops)
        if len(ops) < chunk:
            return numbered


def op_wire(op: Operation) -> dict[str, Any]:
    """An operation as it travels: a ``message`` op takes its ciphertext from the stored message (the log does not
    keep a copy), or says ``gone`` when the message was deleted or expired since."""
    payload = dict(op.payload)
    if op.kind == Operation.Kind.MESSAGE:
        message = Message.objects.filter(uid=payload.get("uid")).only("ciphertext").first()
        if message is None:
            payload["gone"] = True
        else:
            payload["ciphertext"] = to_hex(bytes(message.ciphertext))
    return {"seq": op.seq, "kind": op.kind, "payload": payload, "created_at": _ms(op.created_at)}


def push_to_peer(*, peer_id: int, limit: int = 2000) -> int:
    """Queue this gateway's operations the peer has not been sent yet, in batches below Maxima's size limit.

    Each batch is claimed by a conditional UPDATE of the peer's ``pushed`` mark (two pushes at once never send
    one range twice) and goes through the outbox with an idempotency key of its range. Returns how many ops.

    While an earlier batch to the peer waits in the outbox after a failed try (the peer is not answering), no new
    batch is queued: the ops coalesce, and go in one batch once that one is sent (``ops_batch_sent``), while the
    peer's pull catches it up meanwhile. (Otherwise each commit during an outage queues its own small batch, and
    the returning peer gets them one by one, out of order, as their backoffs end.)
    """
    origin, peer = self_key(), selectors.peers_active().filter(id=peer_id).first()
    if origin is None or peer is None or _push_stalled(peer):
        return 0
    op_sequence()
    head = selectors.log_head(origin=origin)
    if peer.pushed >= head:
        return 0
    ops = [op_wire(op) for op in selectors.ops_since(origin=origin, since=peer.pushed, limit=limit)]
    sent = 0
    for batch in sync.batches(origin=origin, head=head, ops=ops, max_bytes=settings.MNS_FEDERATION_BATCH_BYTES):
        first, last = batch["ops"][0]["seq"], batch["ops"][-1]["seq"]
        with transaction.atomic():
            if not Peer.objects.filter(id=peer.id, pushed=first - 1).update(pushed=last):
                break  # another push took this range
            _send(peer, batch, f"fed-ops:{_short(peer.identity_key)}:{first}-{last}")
        sent += len(batch["ops"])
    return sent


def _push_stalled(peer: Peer) -> bool:
    return OutboundMessage.objects.filter(
        idempotency_key__startswith=f"fed-ops:{_short(peer.identity_key)}:",
        status__in=[OutboundMessage.Status.QUEUED, OutboundMessage.Status.SENDING],
        attempts__gte=1,
    ).exists()


def ops_batch_sent(message: OutboundMessage) -> None:
    """The outbox sent a ``fed-ops`` batch: push what coalesced behind it to that peer, after the commit."""
    from federation.tasks import push_peer

    for peer_id in selectors.peers_active().filter(address=message.destination).values_list("id", flat=True):
        enqueue_on_commit(push_peer, peer_id)


def pull_request(*, peer_id: int) -> bool:
    """Ask a peer for its operations after our cursor (at most once per peer and cursor per sync period)."""
    peer = selectors.peers_active().filter(id=peer_id).first()
    if peer is None:
        return False
    period = int(time.time() // settings.MNS_FEDERATION_SYNC_EVERY)
    body = sync.message("pull", origin=peer.identity_key, since=peer.cursor)
    _send(peer, body, f"fed-pull:{_short(peer.identity_key)}:{peer.cursor}:{period}")
    Peer.objects.filter(id=peer.id).update(last_pull_at=timezone.now())
    return True


def pull_received(*, peer: Peer, message: InboundMessage, body: dict[str, Any]) -> int:
    """Answer a peer's ``pull`` with one ``ops`` batch of our log after its cursor (it pulls again while behind)."""
    origin = self_key()
    if origin is None or body["origin"] != origin:
        raise Ignored("a pull for a log this gateway does not keep")
    # Not numbered here: this runs in the inbound task's transaction, which would hold the head row while the
    # answer is built. Pushes (after every commit that logs, when there are peers) and each sync round number it.
    head = selectors.log_head(origin=origin)
    ops = [op_wire(op) for op in selectors.ops_since(origin=origin, since=body["since"], limit=sync.MAX_BATCH_OPS)]
    batch = next(
        sync.batches(origin=origin, head=head, ops=ops, max_bytes=settings.MNS_FEDERATION_BATCH_BYTES),
        sync.message("ops", origin=origin, head=head, ops=[]),
    )
    _send(peer, batch, f"fed-answer:{_short(peer.identity_key)}:{body['since']}:{message.msgid[2:26]}")
    return len(batch["ops"])


# ------------------------------------------------------------------------------------------ applying ops


class _Wait(Exception):
    """The op follows another origin's op this gateway has not applied yet: stop here, try again later."""


class _Invalid(Exception):
    """The op does not verify: refused and counted against the peer."""


class _Skip(Exception):
    """The op is valid but changes nothing here (a duplicate, not a replica, a limit): recorded, not counted."""


def ops_received(*, peer: Peer, body: dict[str, Any]) -> dict[str, int]:
    """Apply a batch of the peer's own operations in ``seq`` order, each at most once; returns the outcomes.

    An op at or below the peer's cursor was applied before and is skipped; a gap stops the batch and asks for
    the missing ops. Each op is applied in a savepoint: one that does not verify writes nothing and is counted
    against the peer (paused past the threshold); one that must wait for another origin's op stops the batch
    (given up after ``MNS_FEDERATION_WAIT_SECONDS``). The cursor, the counters and the health marks move in the
    same transaction as the ops' effects, so a crash half-way applies nothing twice.
    """
    counts = {"applied": 0, "skipped": 0, "invalid": 0, "duplicate": 0}
    if body["origin"] != peer.identity_key:
        invalid_count(peer=peer, count=1, why="a batch of another origin's log")
        counts["invalid"] = 1
        return counts
    ops = sorted(body["ops"], key=lambda op: op.get("seq", 0) if isinstance(op, dict) else 0)
    allowed = _rate_take(peer, len(ops))
    peer = Peer.objects.select_for_update().get(id=peer.id)
    batch = _Batch(me=self_key(), known={peer.identity_key, *Peer.objects.values_list("identity_key", flat=True)})
    token = _batch.set(batch)
    try:
        cursor, stopped, why_invalid = _ops_apply(peer, ops[:allowed], counts)
    finally:
        _batch.reset(token)
    Operation.objects.bulk_create(batch.rows, ignore_conflicts=True)
    _peer_advance(peer, cursor=cursor, head=max(body["head"], cursor), counts=counts)
    if counts["invalid"]:
        invalid_count(peer=peer, count=counts["invalid"], why=why_invalid)
    if cursor < body["head"] and (stopped or allowed == len(ops)) and not _is_waiting(peer, cursor):
        pull_request(peer_id=peer.id)
    return counts


@dataclass
class _Batch:
    """What the ops of one batch share: this gateway's key, the gateways it knows, the log rows to store."""

    me: str | None
    known: set[str]
    rows: list[Operation] = field(default_factory=list)


_batch: ContextVar[_Batch | None] = ContextVar("federation_batch", default=None)


def _me() -> str | None:
    batch = _batch.get()
    return batch.me if batch is not None else self_key()


def _ops_apply(peer: Peer, ops: list[Any], counts: dict[str, int]) -> tuple[int, bool, str]:
    cursor, stopped, why_invalid = peer.cursor, False, ""
    for op in ops:
        seq = op.get("seq") if isinstance(op, dict) else None
        if isinstance(seq, int) and seq <= cursor:
            counts["duplicate"] += 1
            continue
        if seq != cursor + 1:
            stopped = True  # a gap (or garbage): ask for what follows the cursor
            break
        outcome = _apply(peer, op)
        if outcome == "wait":
            if not _waited_too_long(peer, seq):
                stopped = True
                break
            outcome = "skipped"
            logger.warning("gave up waiting to apply op %s of %s", seq, peer.name)
        if outcome.startswith("invalid"):
            counts["invalid"] += 1
            why_invalid = outcome
        else:
            counts["applied" if outcome == "applied" else "skipped"] += 1
        cursor = seq
    return cursor, stopped, why_invalid


def _peer_advance(peer: Peer, *, cursor: int, head: int, counts: dict[str, int]) -> None:
    now = timezone.now()
    changes: dict[str, Any] = {
        "cursor": cursor,
        "remote_head": head,
        "applied_ops": F("applied_ops") + counts["applied"],
        "refused_ops": F("refused_ops") + counts["skipped"],
    }
    if cursor >= head or peer.cursor >= peer.remote_head:
        changes["caught_up_at"] = now
    if peer.waiting_seq is not None and cursor >= peer.waiting_seq:
        changes.update(waiting_seq=None, waiting_since=None)
    Peer.objects.filter(id=peer.id).update(**changes)


def _is_waiting(peer: Peer, cursor: int) -> bool:
    return Peer.objects.filter(id=peer.id, waiting_seq=cursor + 1).exists()


def _waited_too_long(peer: Peer, seq: int) -> bool:
    now = timezone.now()
    if peer.waiting_seq != seq:
        Peer.objects.filter(id=peer.id).update(waiting_seq=seq, waiting_since=now)
        peer.waiting_seq, peer.waiting_since = seq, now
        return False
    return (now - peer.waiting_since).total_seconds() > settings.MNS_FEDERATION_WAIT_SECONDS


def _rate_take(peer: Peer, wanted: int) -> int:
    """How many of ``wanted`` ops the peer may still have applied this minute (shared by every worker)."""
    if not wanted:
        return 0
    key = f"rate:fed-ops:{peer.id}:{int(time.time() // 60)}"
    try:
        used = cache.incr(key, wanted) if not cache.add(key, wanted, timeout=61) else wanted
    except Exception as exc:  # the cache is down: do not limit, as core.ratelimit does
        logger.warning("federation rate limit not applied, the cache failed: %s", type(exc).__name__)
        return wanted
    allowed = max(0, min(wanted, settings.MNS_FEDERATION_OPS_PER_MINUTE - (used - wanted)))
    if allowed < wanted:
        logger.warning("peer %s is over %s ops a minute", peer.name, settings.MNS_FEDERATION_OPS_PER_MINUTE)
    return allowed


def _apply(peer: Peer, op: Any) -> str:
    """Apply one op in a savepoint; returns ``applied``, ``wait``, ``invalid:<why>`` or ``<why it changed nothing>``.

    Only what verified is stored (with its outcome) in the local copy of the peer's log; an invalid op writes
    nothing at all.
    """
    try:
        sync.check_op(op)
        if sync.op_size(op) > settings.MNS_FEDERATION_MAX_OP_BYTES:
            raise _Invalid("op_too_large")
        with transaction.atomic():
            outcome = _APPLY[op["kind"]](peer, op["payload"])
            _op_store(peer, op, outcome)
            return outcome
    except _Wait:
        return "wait"
    except _Skip as skip:
        with transaction.atomic():
            _op_store(peer, op, str(skip))
        return str(skip)
    except _Invalid as invalid:
        return f"invalid:{invalid}"
    except MNSError as refused:  # sync.check_op, and anything a service refused that the branches did not map
        return f"invalid:{getattr(refused, 'code', 'refused')}"


def _op_store(peer: Peer, op: dict[str, Any], outcome: str) -> None:
    """Keep the op in the local copy of the peer's log (stored with the batch's others at its end)."""
    row = Operation(
        origin=peer.identity_key,
        seq=op["seq"],
        kind=op["kind"],
        payload={key: value for key, value in op["payload"].items() if key != "ciphertext"},
        created_at=datetime.fromtimestamp(op["created_at"] / 1000, tz=UTC),
        outcome=outcome[:32],
    )
    batch = _batch.get()
    if batch is None:
        Operation.objects.bulk_create([row], ignore_conflicts=True)
    else:
        batch.rows.append(row)


_INVALID_STATEMENT = {"signature_invalid", "statement_invalid", "statement_wrong_owner", "statement_wrong_name"}


def _apply_statement(peer: Peer, payload: dict[str, Any]) -> str:
    try:
        signed = SignedStatement.from_dict(payload)
    except StatementInvalid as invalid:
        raise _Invalid(invalid.code) from None
    statement = signed.statement
    batch = _batch.get()
    known = batch.known if batch is not None else set(Peer.objects.values_list("identity_key", flat=True))
    if statement.gateway not in known | {peer.identity_key, _me()}:
        raise _Invalid("statement_gateway_unknown")
    try:
        signed.verify()
    except StatementInvalid as invalid:
        raise _Invalid(invalid.code) from None
    if statement.op == "register":
        _local_hold_lose(statement.name, statement.owner)
    try:
        _record, outcome = registry_services.statement_replicate(signed=signed)
    except StatementInvalid as refused:
        if refused.code in _INVALID_STATEMENT:
            raise _Invalid(refused.code) from None
        if refused.code == "statement_not_registered":
            raise _Wait() from None
        raise _Skip(refused.code) from None
    except MNSError as refused:  # the name-space rules: taken here, look-alike, names per owner
        raise _Skip(getattr(refused, "code", "refused")) from None
    return outcome


def _local_hold_lose(name: str, owner: str) -> None:
    """A confirmed register from the network beats a local hold of another owner still waiting for its claim."""
    record = NameRecord.objects.filter(name=name, status=NameRecord.Status.PENDING).exclude(owner_key=owner).first()
    if record is None:
        return
    _name_lock(name)
    claim = Claim.objects.select_for_update().filter(name=name, owner_key=record.owner_key, status=Claim.Status.OPEN)
    claim = claim.order_by("-id").first()
    if claim is not None:
        _claim_refuse(claim, Claim.Status.REFUSED, "name_taken")
    else:
        _registration_refuse(name=name, owner_key=record.owner_key, code="name_taken")


def _text(payload: dict[str, Any], key: str, limit: int = 600) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise _Invalid(f"{key}_invalid")
    return value


def _replica_record(peer: Peer, payload: dict[str, Any]) -> NameRecord:
    record = NameRecord.objects.filter(name=_text(payload, "name", 32)).first()
    if record is None:
        raise _Wait()
    return record


def _apply_mailbox(peer: Peer, payload: dict[str, Any]) -> str:
    record = _replica_record(peer, payload)
    replicas = payload.get("replicas")
    if not isinstance(replicas, list) or not replicas or not all(isinstance(key, str) for key in replicas):
        raise _Invalid("replicas_invalid")
    if not record.gateways or record.gateways[0] != peer.identity_key:
        raise _Invalid("mailbox_not_from_home")
    if record.status != NameRecord.Status.ACTIVE or record.owner_key != _text(payload, "owner"):
        raise _Skip("name_moved_on")
    replicas = [peer.identity_key, *(key for key in replicas if key != peer.identity_key)][:1000]
    registry_services.name_replicas_set(name=record.name, gateways=replicas)
    if _me() not in replicas:
        return "not_replica"
    address = payload.get("address") if isinstance(payload.get("address"), str) else ""
    mailbox_services.mailbox_replicate(record=record, owner_key=record.owner_key, address=address)
    return "applied"


def _apply_message(peer: Peer, payload: dict[str, Any]) -> str:
    if payload.get("gone") is True:
        raise _Skip("gone")
    record = _replica_record(peer, payload)
    if _me() not in record.gateways:
        raise _Skip("not_replica")
    if peer.identity_key not in record.gateways:
        raise _Invalid("message_not_from_replica")
    mailbox = Mailbox.objects.filter(record=record).first()
    if mailbox is None:
        raise _Wait()
    try:
        ciphertext = from_hex(_text(payload, "ciphertext", 2 * settings.MNS_FEDERATION_MAX_OP_BYTES))
        received_ms = fields.integer(payload["received_at"], "received_at", invalid=_message_invalid)  # not true
        received_at = datetime.fromtimestamp(received_ms / 1000, tz=UTC)
        sender_verified = payload["sender_verified"]
        if not isinstance(sender_verified, bool) or not ciphertext:
            raise _Invalid("message_invalid")
    except (CodecError, KeyError, TypeError, ValueError, OverflowError):
        raise _Invalid("message_invalid") from None
    sender = payload.get("sender", "")
    if not isinstance(sender, str) or len(sender) > 1000:
        raise _Invalid("sender_invalid")
    try:
        return mailbox_services.message_replicate(
            mailbox=mailbox,
            uid=_text(payload, "uid", 32),
            delivery_id=_text(payload, "delivery_id", 64),
            sender_key=sender,
            sender_verified=sender_verified,
            scheme=_text(payload, "scheme", 32),
            ciphertext=ciphertext,
            received_at=received_at,
        )
    except DomainError as refused:  # over_quota, too_large, bad_scheme here
        raise _Skip(refused.code) from None


def _message_invalid(field: str, problem: str) -> Exception:
    return _Invalid("message_invalid")


def _apply_delete(peer: Peer, payload: dict[str, Any]) -> str:
    record = NameRecord.objects.filter(name=_text(payload, "name", 32)).first()
    if record is None:
        raise _Skip("unknown_name")
    if peer.identity_key not in record.gateways:
        raise _Invalid("delete_not_from_replica")
    deleted = mailbox_services.message_replicated_delete(name=record.name, uid=_text(payload, "uid", 32))
    return "applied" if deleted else "already_deleted"


def _apply_moderation(suspend: bool) -> Callable[[Peer, dict[str, Any]], str]:
    def apply(peer: Peer, payload: dict[str, Any]) -> str:
        record = NameRecord.objects.filter(name=_text(payload, "name", 32)).first()
        if record is None:
            raise _Skip("unknown_name")
        if not record.gateways or record.gateways[0] != peer.identity_key:
            raise _Skip("not_home")
        changed = registry_services.name_status_replicate(name=record.name, suspended=suspend)
        return "applied" if changed else "unchanged"

    return apply


_APPLY: dict[str, Callable[[Peer, dict[str, Any]], str]] = {
    "statement": _apply_statement,
    "mailbox": _apply_mailbox,
    "message": _apply_message,
    "delete": _apply_delete,
    "suspend": _apply_moderation(True),
    "restore": _apply_moderation(False),
}


# ------------------------------------------------------------------------------------------------- claims


def claim_start(*, record: NameRecord) -> Claim | None:
    """Claim a newly held name across the membership (the enabled, unpaused peers and this gateway).

    Runs in the registration's transaction, right after the local hold. This gateway takes its own lease first
    (refused at once, ``name_taken``, when it holds another owner's lease on the name or a look-alike); the
    ``claim`` goes to every peer through the outbox. With no peer the membership is this gateway alone: nothing
    is written and the name is confirmed as before. The same owner registering the same name again while a claim
    is open or confirmed re-uses that claim.
    """
    peers = list(selectors.peers_active())
    if not peers:
        return None
    me, now = self_key(), timezone.now()
    current = selectors.claim_for_name(name=record.name)
    if (
        current is not None
        and current.owner_key == record.owner_key
        and current.status in (Claim.Status.OPEN, Claim.Status.CONFIRMED)
        and current.expires_at > now
    ):
        return current
    claim = Claim(
        claim_id=secrets.token_urlsafe(18),
        name=record.name,
        skeleton=record.skeleton,
        owner_key=record.owner_key,
        membership=len(peers) + 1,
        asked=[peer.identity_key for peer in peers],
        acks=[me],
        expires_at=now + timedelta(seconds=settings.MNS_FEDERATION_CLAIM_SECONDS),
    )
    refusal = _lease_take(claimant=me, claim=claim)
    if refusal is not None:
        raise NameRefused("name_taken", f"the name {record.name!r} is being claimed at another gateway")
    claim.save()
    body = sync.message(
        "claim",
        claim_id=claim.claim_id,
        name=claim.name,
        skeleton=claim.skeleton,
        owner=claim.owner_key,
        expires_at=_ms(claim.expires_at),
    )
    for peer in peers:
        _send(peer, body, f"fed-claim:{claim.claim_id}:{_short(peer.identity_key)}")
    logger.info("claimed %s across %s gateways", claim.name, claim.membership)
    return claim


def _lease_take(*, claimant: str, claim: Claim) -> str | None:
    """Ack ``claim`` as a lease on its skeleton, or say why not (``None``: acked).

    Acked only if this gateway knows no other owner of the name or a look-alike (a live record, a reserved
    name) and holds no live lease of another owner; the same owner claiming again is acked without a second
    lease. The database allows one holding lease per skeleton: of two concurrent claims one inserts, and the
    other, retried once, sees it and is refused. An expired lease is marked so first.
    """
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return _lease_decide(claimant, claim)
        except IntegrityError:
            if attempt == 2:
                return "claimed"
    return "claimed"


def _lease_decide(claimant: str, claim: Claim) -> str | None:
    now = timezone.now()
    existing = Lease.objects.filter(claim_id=claim.claim_id).first()
    if existing is not None:
        return None if existing.status in Lease.HOLDING else existing.status
    Lease.objects.filter(skeleton=claim.skeleton, status__in=Lease.HOLDING, expires_at__lte=now).update(
        status=Lease.Status.EXPIRED
    )
    live = NameRecord.objects.filter(skeleton=claim.skeleton, status__in=NameRecord.LIVE)
    for record in live:
        if record.status == NameRecord.Status.RESERVED or record.owner_key != claim.owner_key:
            return "name_taken"
    holding = Lease.objects.filter(skeleton=claim.skeleton, status__in=Lease.HOLDING).first()
    if holding is not None:
        return None if holding.owner_key == claim.owner_key else "claimed"
    held = NameRecord.objects.filter(owner_key=claim.owner_key, status__in=NameRecord.HELD).exclude(name=claim.name)
    if held.count() >= settings.MNS_NAMES_PER_OWNER:
        return "owner_limit_reached"
    Lease.objects.create(
        claim_id=claim.claim_id,
        claimant=claimant,
        name=claim.name,
        skeleton=claim.skeleton,
        owner_key=claim.owner_key,
        expires_at=claim.expires_at,
    )
    return None


def claim_received(*, peer: Peer, body: dict[str, Any]) -> str | None:
    """A peer's ``claim``: ack it as a lease, or nack it with the reason; the answer goes back over Maxima."""
    claim_id = body["claim_id"]
    try:
        name = normalise(body["name"])
        owner = canonical_public_key(body["owner"])
        if name != body["name"]:
            raise NameRefused("name_invalid", "not a name in normal form")
    except (NameRefused, CodecError):
        reason: str | None = "claim_invalid"
    else:
        cap = timezone.now() + timedelta(seconds=settings.MNS_FEDERATION_CLAIM_SECONDS)
        expires = min(datetime.fromtimestamp(body["expires_at"] / 1000, tz=UTC), cap)
        claim = Claim(claim_id=claim_id, name=name, skeleton=skeleton(name), owner_key=owner, expires_at=expires)
        reason = _lease_take(claimant=peer.identity_key, claim=claim)
    if reason is None:
        _send(peer, sync.message("claim-ack", claim_id=claim_id), f"fed-claim-reply:{claim_id}")
    else:
        _send(peer, sync.message("claim-nack", claim_id=claim_id, reason=reason), f"fed-claim-reply:{claim_id}")
    logger.info("claim of %s by %s: %s", body["name"][:32], peer.name, reason or "acked")
    return reason


def claim_answered(*, peer: Peer, claim_id: str, ack: bool) -> str:
    """A peer's ``claim-ack``/``claim-nack``: count it once, and decide the claim as soon as it can be decided.

    Confirmed on a majority of the membership (this gateway's own ack included); refused (``name_taken``) as soon
    as a majority can no longer be reached. Returns the claim's status (``ignored`` for an unknown claim).
    """
    with transaction.atomic():
        _name_lock(Claim.objects.filter(claim_id=claim_id).values_list("name", flat=True).first())
        claim = Claim.objects.select_for_update().filter(claim_id=claim_id).first()
        if claim is None or peer.identity_key not in claim.asked:
            return "ignored"
        if claim.status != Claim.Status.OPEN or peer.identity_key in claim.acks + claim.nacks:
            return claim.status
        (claim.acks if ack else claim.nacks).append(peer.identity_key)
        claim.save(update_fields=["acks", "nacks"])
        if len(claim.acks) >= claim.majority:
            _claim_confirm(claim)
        elif len(claim.nacks) > claim.membership - claim.majority:
            _claim_refuse(claim, Claim.Status.REFUSED, "name_taken")
        return claim.status


def _name_lock(name: str | None) -> None:
    """Lock the name's row FOR NO KEY UPDATE before a claim of it: the answer to a ``register`` handshake locks the
    name, then its challenge, then the claim (``claim_allows_confirm``); deciding a claim takes the same order (the
    name first), or the two deadlock. Does not block a session pickup's key-share lock on the row."""
    if name is not None:
        NameRecord.objects.select_for_update(no_key=True).filter(name=name).first()


def _claim_confirm(claim: Claim) -> None:
    now = timezone.now()
    claim.status, claim.decided_at = Claim.Status.CONFIRMED, now
    claim.save(update_fields=["status", "decided_at"])
    _lease_commit(claim.claim_id)
    _claim_tell(claim, "commit")
    logger.info("the network confirmed the claim of %s (%s of %s)", claim.name, len(claim.acks), claim.membership)
    if claim.answered_challenge:
        challenge = Challenge.objects.filter(id=claim.answered_challenge).first()
        if challenge is not None:
            mailbox_services.registration_complete(challenge=challenge)


def _claim_refuse(claim: Claim, status: str, code: str) -> None:
    claim.status, claim.decided_at = status, timezone.now()
    claim.save(update_fields=["status", "decided_at"])
    Lease.objects.filter(claim_id=claim.claim_id, status__in=Lease.HOLDING).update(status=Lease.Status.ABORTED)
    _claim_tell(claim, "abort")
    _registration_refuse(name=claim.name, owner_key=claim.owner_key, code=code)
    logger.info("the claim of %s was %s (%s)", claim.name, status, code)


def _claim_tell(claim: Claim, message_type: str) -> None:
    body = sync.message(message_type, claim_id=claim.claim_id)
    for peer in Peer.objects.filter(identity_key__in=claim.asked, enabled=True):
        _send(peer, body, f"fed-{message_type}:{claim.claim_id}:{_short(peer.identity_key)}")


def _registration_refuse(*, name: str, owner_key: str, code: str) -> None:
    mailbox_services.registration_refuse(name=name, owner_key=owner_key, code=code)


def _lease_commit(claim_id: str) -> int:
    """A committed lease keeps refusing other owners until the name's statement arrives (or the hold time ends)."""
    until = timezone.now() + timedelta(seconds=settings.MNS_NAME_HOLD_SECONDS)
    return Lease.objects.filter(claim_id=claim_id, status=Lease.Status.LIVE).update(
        status=Lease.Status.COMMITTED, expires_at=until
    )


def claim_finished(*, peer: Peer, claim_id: str, committed: bool) -> int:
    """A claimant's ``commit`` or ``abort`` for the lease this gateway gave it (another gateway's is left alone)."""
    leases = Lease.objects.filter(claim_id=claim_id, claimant=peer.identity_key)
    if committed:
        return _lease_commit(claim_id) if leases.exists() else 0
    return leases.filter(status__in=Lease.HOLDING).update(status=Lease.Status.ABORTED)


def claim_allows_confirm(*, name: str, owner_key: str, challenge_id: str) -> bool:
    """Whether the owner's answered ``register`` handshake may confirm the name now.

    Yes without a claim (no peers when it was held) or once it is confirmed. While it is open the answer is noted,
    and the claim's confirmation finishes the registration (whichever comes last finishes it). Never after a
    refusal or expiry.
    """
    with transaction.atomic():
        claim = Claim.objects.select_for_update().filter(name=name, owner_key=owner_key).order_by("-id").first()
        if claim is None or claim.status == Claim.Status.CONFIRMED:
            return True
        if claim.status == Claim.Status.OPEN:
            Claim.objects.filter(id=claim.id).update(answered_challenge=challenge_id)
            logger.info("%s: handshake answered, waiting for the network's answer to the claim", name)
        return False


def claims_expire() -> tuple[int, int]:
    """Expire open claims past their time (their registrations refused, ``claim_expired``) and expired leases."""
    now, expired = timezone.now(), 0
    due = Claim.objects.filter(status=Claim.Status.OPEN, expires_at__lte=now).values_list("id", "name")
    for claim_id, name in due:
        with transaction.atomic():
            _name_lock(name)
            claim = Claim.objects.select_for_update().filter(id=claim_id, status=Claim.Status.OPEN).first()
            if claim is not None:
                _claim_refuse(claim, Claim.Status.EXPIRED, "claim_expired")
                expired += 1
    leases = Lease.objects.filter(status__in=Lease.HOLDING, expires_at__lte=now).update(status=Lease.Status.EXPIRED)
    return expired, leases


# ------------------------------------------------------------------------------------------------ helpers


def replicas_for_new_mailbox() -> list[str]:
    """The gateways to keep a new mailbox: this one (home) first, then every active peer, or the first
    ``MNS_FEDERATION_REPLICATION_FACTOR`` of them by name."""
    keys = list(selectors.peers_active().order_by("name").values_list("identity_key", flat=True))
    factor = settings.MNS_FEDERATION_REPLICATION_FACTOR
    return [self_key(), *(keys[:factor] if factor else keys)]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
