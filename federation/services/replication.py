"""Applying a peer's operations: in order, each once, verified, within the peer's limits."""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.queue import enqueue_coalesced
from federation.models import Operation, Peer
from federation.services import kinds, restore
from federation.services.kinds import Invalid, Skip, Wait
from federation.services.oplog import pull_request
from federation.services.peers import _ms, invalid_count, self_key
from federation.services.relay import relay_onward, relaying
from federation.services.snapshots import snapshot_wanted
from mns_client.protocol import sync
from mns_client.protocol.errors import MNSError

logger = logging.getLogger(__name__)


def ops_received(*, peer: Peer, body: dict[str, Any]) -> dict[str, int]:
    """Apply a batch of the peer's own operations in ``seq`` order, each at most once; returns the outcomes.

    An op at or below the peer's cursor was applied before and is skipped; a gap stops the batch and asks for
    the missing ops. Each op is applied in a savepoint: one that does not verify writes nothing and is counted
    against the peer (paused past the threshold); one that must wait for another origin's op stops the batch
    (given up after ``MNS_FEDERATION_WAIT_SECONDS``). A batch far ahead of the cursor (``snapshot_wanted``) is
    not applied: a reconciliation round catches the peer up instead. The cursor, the counters and the health
    marks move in the same transaction as the ops' effects, so a crash half-way applies nothing twice.
    """
    counts = {"applied": 0, "skipped": 0, "invalid": 0, "duplicate": 0, "reused": 0}
    if body["origin"] == me() != peer.identity_key:
        return restore.own_ops_recovered(peer=peer, body=body)  # our own log, sent back after a restore
    if body["origin"] != peer.identity_key:
        invalid_count(peer=peer, count=1, why="a batch of another origin's log")
        counts["invalid"] = 1
        return counts
    if body.get("compacted", 0) > peer.cursor:
        return compacted_received(peer=peer, body=body)
    if snapshot_wanted(peer, head=body["head"]):
        _snapshot_instead(peer, head=body["head"])
        counts["skipped"] = len(body["ops"])
        return counts
    ops = sorted(body["ops"], key=lambda op: op.get("seq", 0) if isinstance(op, dict) else 0)
    allowed = _rate_take(peer, len(ops))
    peer = Peer.objects.select_for_update().get(id=peer.id)
    restore.log_seen(peer=peer, body=body)
    batch = _Batch(me=self_key(), known={peer.identity_key, *Peer.objects.values_list("identity_key", flat=True)})
    token = _batch.set(batch)
    try:
        kinds.lock_for(ops[:allowed])
        cursor, stopped, why_invalid = _ops_apply(peer, ops[:allowed], counts)
    finally:
        _batch.reset(token)
    Operation.objects.bulk_create(batch.rows, ignore_conflicts=True)
    _peer_advance(peer, cursor=cursor, head=max(body["head"], cursor), counts=counts)
    if counts["invalid"]:
        invalid_count(peer=peer, count=counts["invalid"], why=why_invalid)
    if counts["reused"]:
        logger.warning("peer %s sent %s new op(s) at positions it used before: restored?", peer.name, counts["reused"])
        restore.position_send(peer=Peer.objects.get(id=peer.id))
    if cursor < body["head"] and (stopped or allowed == len(ops)) and not _is_waiting(peer, cursor):
        pull_request(peer_id=peer.id)
    return counts


def compacted_received(*, peer: Peer, body: dict[str, Any]) -> dict[str, int]:
    """The peer answered our pull ``compacted``: its log is compacted up to that floor, past our cursor, so the ops
    we lack up to there will never come by the log. The tombstones it kept of the range are applied here (and kept
    in our copy of its log, so no reconciliation brings back what they deleted); the next pull asks for the ones
    after the last (``pull_request``); once an answer brings none, a reconciliation round catches us up and moves
    the cursor past the floor (``_snapshot_instead``). The cursor itself stays: the ops between it and the floor
    were not applied; until the round moves it, health and the admin show the peer below its floor."""
    counts = {"applied": 0, "skipped": 0, "invalid": 0, "duplicate": 0, "reused": 0}
    floor = body["compacted"]
    peer = Peer.objects.select_for_update().get(id=peer.id)
    restore.log_seen(peer=peer, body=body)
    ops = [op for op in body["ops"] if isinstance(op, dict) and isinstance(op.get("seq"), int)]
    counts["invalid"] = len(body["ops"]) - len(ops)  # not ops at all; ops the range did not keep are left
    ops.sort(key=lambda op: op["seq"])
    kept = [op for op in ops if op.get("kind") == "delete" and peer.cursor < op["seq"] <= floor]
    tombstones = kept[: _rate_take(peer, len(kept))]  # the rest: the next pull, from after the last applied
    with batch_context(peer):
        kinds.lock_for(tombstones)
        for op in tombstones:
            # One that does not verify here (a mailbox whose replicas the compacted range changed) is skipped, not
            # counted against the peer: our state is behind its log, as while recovering (``_ops_apply``).
            outcome = _apply(peer, op)
            counts["applied" if outcome == "applied" else "skipped"] += 1
        rows = _batch.get().rows
    Operation.objects.bulk_create(rows, ignore_conflicts=True)
    fetched_to = tombstones[-1]["seq"] if tombstones else peer.tombstones_to if kept else floor
    Peer.objects.filter(id=peer.id).update(
        remote_floor=max(peer.remote_floor, floor),
        tombstones_to=fetched_to,
        remote_head=max(peer.remote_head, body["head"]),
        applied_ops=F("applied_ops") + counts["applied"],
    )
    if counts["invalid"]:
        invalid_count(peer=peer, count=counts["invalid"], why="a compacted answer with garbage for ops")
    if tombstones:
        pull_request(peer_id=peer.id)
    elif not kept:
        _below_floor(peer, floor=floor, head=body["head"])
    return counts


def _below_floor(peer: Peer, *, floor: int, head: int) -> None:
    """Every tombstone of the peer's compacted range is here: a reconciliation round moves us past its floor (over
    its API, or over Maxima when it has none); meanwhile its note, health and the admin say why we are behind."""
    way = "its API" if peer.api_url else "Maxima (it has no API URL)"
    note = (
        f"its log is compacted up to {floor}, past our cursor {peer.cursor}: catching up by reconciliation over {way}"
    )
    Peer.objects.filter(id=peer.id).update(reconcile_note=note[:200])
    logger.info("peer %s: %s", peer.name, note)
    _snapshot_instead(peer, head=head)


def _snapshot_instead(peer: Peer, *, head: int) -> None:
    """The peer's log is too far ahead of its cursor here to replay (a new peer, a long outage): the batch is left,
    and a reconciliation round fetches a snapshot, after which the cursor jumps and the log carries on."""
    from federation import tasks  # the app's own tasks, which call back into these services

    Peer.objects.filter(id=peer.id, remote_head__lt=head).update(remote_head=head)
    enqueue_coalesced(tasks.reconcile_peer, peer.id, window=settings.MNS_FEDERATION_SYNC_EVERY)


@dataclass
class _Batch:
    """What the ops of one batch share: this gateway's key, the gateways it knows, the log rows to store."""

    me: str | None
    known: set[str]
    rows: list[Operation] = field(default_factory=list)


_batch: ContextVar[_Batch | None] = ContextVar("federation_batch", default=None)


@contextmanager
def batch_context(peer: Peer) -> Iterator[None]:
    """Items applied from one peer (a snapshot's chunk) share, as a batch's ops do, this gateway's key and the
    gateways it knows, read once."""
    token = _batch.set(
        _Batch(me=self_key(), known={peer.identity_key, *Peer.objects.values_list("identity_key", flat=True)})
    )
    try:
        yield
    finally:
        _batch.reset(token)


def me() -> str | None:
    """This gateway's identity key (in a batch, as read once for the whole batch)."""
    batch = _batch.get()
    return batch.me if batch is not None else self_key()


def _ops_apply(peer: Peer, ops: list[Any], counts: dict[str, int]) -> tuple[int, bool, str]:
    cursor, stopped, why_invalid = peer.cursor, False, ""
    recovering = restore.log_recovering(origin=me() or "")
    reused = _reused_positions(peer, ops)
    for op in ops:
        seq = op.get("seq") if isinstance(op, dict) else None
        if isinstance(seq, int) and seq <= cursor:
            if seq in reused:  # a new op at a position the peer used before it was restored: not a duplicate
                counts["reused"] += 1
                _apply(peer, op)
            else:
                counts["duplicate"] += 1
            continue
        if seq != cursor + 1:
            stopped = True  # a gap (or garbage): ask for what follows the cursor
            break
        outcome = _apply(peer, op)
        if outcome.startswith("invalid") and recovering:
            outcome = "wait"  # our state is behind what we are recovering: retried, not counted against the peer
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


def _reused_positions(peer: Peer, ops: list[Any]) -> set[int]:
    """The positions at or below the cursor where the batch brings another op than the one stored here (another
    ``created_at``): the peer was restored from a backup and numbered new ops from an older head."""
    sent = {
        op["seq"]: op.get("created_at")
        for op in ops
        if isinstance(op, dict) and isinstance(op.get("seq"), int) and op["seq"] <= peer.cursor
    }
    if not sent:
        return set()
    stored = Operation.objects.filter(origin=peer.identity_key, seq__in=list(sent)).values_list("seq", "created_at")
    return {seq for seq, at in stored if not isinstance(sent[seq], int) or abs(_ms(at) - sent[seq]) > 1}


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
            raise Invalid("op_too_large")
        kind, relay = kinds.kind_of(op["kind"]), sync.op_relay(op["payload"])
        if relay is not None and (not kind.relay or relay[0] == peer.identity_key):
            raise Invalid("relay_invalid")  # mailbox contents are never relayed; an origin does not relay its own
        origin, hops = relay or (peer.identity_key, 0)
        payload = sync.unrelayed(op["payload"])
        with transaction.atomic(), relaying(peer.identity_key if relay else None):
            outcome = kind.apply(origin, payload)
            if outcome == "applied" and kind.relay:
                relay_onward(kind=op["kind"], payload=payload, origin=origin, hops=hops + 1, sender=peer.identity_key)
            _op_store(peer, op, outcome)
            return outcome
    except Wait:
        return "wait"
    except Skip as skip:
        with transaction.atomic():
            _op_store(peer, op, str(skip))
        return str(skip)
    except Invalid as invalid:
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


def gateways_known() -> set[str]:
    """The identity keys of every gateway this one knows: its peers (in a batch, as read once for the batch)."""
    batch = _batch.get()
    return batch.known if batch is not None else set(Peer.objects.values_list("identity_key", flat=True))
