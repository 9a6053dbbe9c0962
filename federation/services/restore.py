"""A gateway restored from an older backup of its database (``docs/operations.md``, "Backup and restore").

Its peers hold its log further than it does: the positions after the backup's head were seen by them, with the ops
they carried. Numbering new ops from the backup's head would reuse those positions, and a peer reading by cursor
would take the new ops for ones it already has. So a restored gateway (told by its operator, ``manage.py
backup_restored``, or finding out when a peer holds its log past its head) starts a new **incarnation** of its log
and numbers nothing until it knows: it asks every peer how far it holds the log (``where``; a peer answers
``position``, and says so unasked when it sees the origin's head fall below its cursor), moves its head to the
highest position, and pulls its own lost ops back from the peers that hold copies (``pull`` of its own log, which a
peer answers from its copy). Each recovered op is verified and applied again as a peer's would be, and stored at
its old position. Once every peer answered and no position is missing (or after
``MNS_FEDERATION_RESTORE_WAIT_SECONDS``, with what is still missing said), numbering resumes after the head.
Health, the admin and the log say what happened.

A peer that meets a new op at a position it already holds with another op (a gateway restored and numbering before
it found out) applies it all the same (``position_reused``) and tells the origin its position.
"""

import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.queue import enqueue_now, enqueue_on_commit
from federation import selectors
from federation.models import LogHead, Operation, Peer, new_incarnation
from federation.services import kinds
from federation.services.kinds import Invalid, Skip, Wait
from federation.services.peers import _ms, _send, _short, invalid_count, self_key
from federation.services.relay import relaying
from maxima.models import OutboundMessage
from maxima.routing import Ignored
from maxima.services import outbound_cancel
from mns_client.protocol import sync
from mns_client.protocol.errors import MNSError

logger = logging.getLogger(__name__)


def log_incarnation(*, origin: str) -> str:
    """The incarnation of this gateway's log (made with its head row)."""
    head, _ = LogHead.objects.get_or_create(origin=origin)
    return head.incarnation


def log_recovering(*, origin: str) -> bool:
    return LogHead.objects.filter(origin=origin, recovering=True).exists()


def log_restored(*, reason: str) -> bool:
    """This gateway was restored from a backup: start a new incarnation of its log, stop numbering, and ask every
    active peer how far it holds the log. Returns False when it is recovering already (or has no identity yet)."""
    origin = self_key()
    if origin is None:
        logger.warning("restored from a backup, but the gateway does not know its identity key yet: %s", reason)
        return False
    with transaction.atomic():
        LogHead.objects.get_or_create(origin=origin)
        head = LogHead.objects.select_for_update().get(origin=origin)
        if head.recovering:
            return False
        incarnation = new_incarnation()
        LogHead.objects.filter(id=head.id).update(
            recovering=True,
            restored_at=timezone.now(),
            restored_from=head.seq,
            recovered_ops=0,
            incarnation=incarnation,
            recovery_note=f"restored from a backup ({reason[:300]}): the log was at {head.seq}; recovering",
        )
        Peer.objects.update(log_position=None)
        for peer in selectors.peers_active():
            _ask_where(peer, origin, incarnation)
        # Batches the backup had queued carry the old incarnation and positions the peers hold: not sent.
        queued = OutboundMessage.objects.filter(
            idempotency_key__startswith="fed-ops:", status=OutboundMessage.Status.QUEUED
        ).values_list("id", flat=True)
        for message_id in list(queued):
            outbound_cancel(message_id=message_id)
    logger.warning(
        "this gateway was restored from a backup (%s): its log was at %s; new incarnation %s, no new op is numbered "
        "until its peers said how far they hold it and its lost ops are recovered from them",
        reason,
        head.seq,
        incarnation,
    )
    return True


def _period() -> int:
    return int(time.time() // settings.MNS_FEDERATION_SYNC_EVERY)


def _ask_where(peer: Peer, origin: str, incarnation: str) -> None:
    body = sync.message("where", origin=origin, incarnation=incarnation)
    _send(peer, body, f"fed-where:{_short(peer.identity_key)}:{incarnation}:{_period()}")


def where_received(*, peer: Peer, body: dict[str, Any]) -> None:
    """A restored peer asks how far we hold its log: our cursor for it (and we note its new incarnation)."""
    if body["origin"] != peer.identity_key:
        raise Ignored("a where for a log other than the sender's")
    _incarnation_seen(peer, body["incarnation"])
    position_send(peer=Peer.objects.get(id=peer.id))


def position_send(*, peer: Peer) -> None:
    """Tell a peer how far we hold its log (at most once per cursor and sync period)."""
    body = sync.message("position", origin=peer.identity_key, seq=peer.cursor, incarnation=peer.incarnation or None)
    _send(peer, body, f"fed-position:{_short(peer.identity_key)}:{peer.cursor}:{_period()}")


def position_received(*, peer: Peer, body: dict[str, Any]) -> None:
    """A peer says how far it holds our log: past our head, we were restored from a backup (and now know how far
    to move the head); while recovering, one more answer."""
    origin = self_key()
    if origin is None or body["origin"] != origin:
        raise Ignored("a position in a log other than ours")
    position_seen(peer=peer, seq=body["seq"], origin=origin)


def position_seen(*, peer: Peer, seq: int, origin: str) -> None:
    """Record a peer's position in our log (from its ``position`` or the ``since`` of its pull)."""
    LogHead.objects.get_or_create(origin=origin)
    head = LogHead.objects.get(origin=origin)
    if not head.recovering:
        if seq <= head.seq:
            return
        log_restored(reason=f"{peer.name} holds this gateway's log up to {seq}, past its head {head.seq}")
    Peer.objects.filter(id=peer.id).update(log_position=seq, log_position_at=timezone.now())
    transaction.on_commit(_progress_later)


def _progress_later() -> None:
    from federation import tasks  # the app's own tasks, which call back into these services

    enqueue_now(tasks.restore_progress)


def log_seen(*, peer: Peer, body: dict[str, Any]) -> None:
    """An ``ops`` batch of the peer's own log arrived: a new incarnation, or a head below our cursor (the peer was
    restored from a backup and may not know it yet), and we tell it how far we hold its log."""
    incarnation = body.get("incarnation")
    changed = incarnation is not None and _incarnation_seen(peer, incarnation)
    if changed or body["head"] < peer.cursor:
        position_send(peer=peer)


def _incarnation_seen(peer: Peer, incarnation: str) -> bool:
    """Note the incarnation of the peer's log; returns whether it replaced another (the peer was restored)."""
    before = peer.incarnation
    if before == incarnation:
        return False
    Peer.objects.filter(id=peer.id).update(incarnation=incarnation)
    peer.incarnation = incarnation
    if before:
        logger.warning("peer %s's log has a new incarnation: it was restored from a backup", peer.name)
    return bool(before)


def own_log_served(*, peer: Peer, since: int) -> dict[str, Any]:
    """The peer's own log as we hold it, after ``since``: one ``ops`` batch for a peer restored from a backup
    (``head`` is how far we hold it); from below the floor of our compacted copy, the ``compacted`` answer."""
    from federation.services.oplog import compacted_answer, op_wire

    if since < peer.copy_floor:
        return compacted_answer(origin=peer.identity_key, since=since, floor=peer.copy_floor, head=peer.cursor)

    ops = [op_wire(op) for op in selectors.ops_since(origin=peer.identity_key, since=since, limit=sync.MAX_BATCH_OPS)]
    batches = sync.batches(
        origin=peer.identity_key, head=peer.cursor, ops=ops, max_bytes=settings.MNS_FEDERATION_BATCH_BYTES
    )
    return next(batches, sync.message("ops", origin=peer.identity_key, head=peer.cursor, ops=[]))


def own_ops_recovered(*, peer: Peer, body: dict[str, Any]) -> dict[str, int]:
    """A peer sent back ops of our own log: each at a position we do not hold (up to how far the peer holds it),
    verified and applied as a peer's op would be, and stored at its position. A position we hold with another op
    (reused before we knew we were restored) keeps ours; the old op is applied all the same."""
    counts = {"recovered": 0, "held": 0, "skipped": 0, "invalid": 0}
    origin = self_key()
    if origin is None:
        return counts
    with transaction.atomic():
        LogHead.objects.get_or_create(origin=origin)
        head = LogHead.objects.select_for_update().get(origin=origin)
        if not head.recovering:
            return counts  # a late answer: the recovery is over
        top = max(head.seq, body["head"])
        ops = sorted((op for op in body["ops"] if isinstance(op, dict)), key=lambda op: op.get("seq") or 0)
        seqs = [op["seq"] for op in ops if isinstance(op.get("seq"), int)]
        held = {
            row.seq: (row.kind, _ms(row.created_at))
            for row in Operation.objects.filter(origin=origin, seq__in=seqs).only("seq", "kind", "created_at")
        }
        why = ""
        for op in ops:
            outcome = _recover(op, after=head.restored_from or 0, upto=body["head"], held=held, peer=peer)
            if outcome == "wait":
                break
            if outcome.startswith("invalid"):
                counts["invalid"], why = counts["invalid"] + 1, outcome
            elif outcome == "held":
                counts["held"] += 1
            else:
                counts["recovered" if outcome == "applied" else "skipped"] += 1
        LogHead.objects.filter(id=head.id).update(seq=top, recovered_ops=F("recovered_ops") + counts["recovered"])
        if body.get("compacted", 0) > head.floor:
            # The peer compacted its copy of our log: the positions up to there (but their tombstones) will not
            # come back from it. They are not waited for; what they did comes back by reconciliation (``_finish``).
            LogHead.objects.filter(id=head.id, floor__lt=body["compacted"]).update(floor=body["compacted"])
        Peer.objects.filter(id=peer.id).update(log_position=body["head"], log_position_at=timezone.now())
        if counts["invalid"]:
            invalid_count(peer=peer, count=counts["invalid"], why=f"in our own log it sent back: {why}")
    transaction.on_commit(_progress_later)
    return counts


def _recover(op: dict[str, Any], *, after: int, upto: int, held: dict[int, tuple[str, int]], peer: Peer) -> str:
    """One op of our log a peer sent back, if at a position after the backup's head and up to how far that peer
    says it holds the log (what the database had before is kept as it is)."""
    origin = self_key() or ""
    try:
        sync.check_op(op)
        if not after < op["seq"] <= upto:
            return "held"
        mine = held.get(op["seq"])
        if mine is not None and mine[0] == op["kind"] and abs(mine[1] - op["created_at"]) <= 1:
            return "held"  # the same op (``created_at`` to the millisecond, as the wire rounds it)
        kind, relay = kinds.kind_of(op["kind"]), sync.op_relay(op["payload"])
        payload = sync.unrelayed(op["payload"])
        with transaction.atomic(), relaying(peer.identity_key if relay else None):
            outcome = kind.apply(relay[0] if relay else origin, payload)
    except Wait:
        return "wait"
    except Skip as skip:
        outcome = str(skip)
    except Invalid as invalid:
        return f"invalid:{invalid}"
    except MNSError as refused:
        return f"invalid:{getattr(refused, 'code', 'refused')}"
    if op["seq"] not in held:
        created_at = datetime.fromtimestamp(op["created_at"] / 1000, tz=UTC)
        payload = {key: value for key, value in op["payload"].items() if key != "ciphertext"}
        Operation.objects.bulk_create(
            [
                Operation(
                    origin=origin,
                    seq=op["seq"],
                    kind=op["kind"],
                    payload=payload,
                    created_at=created_at,
                    outcome=outcome[:32],
                )
            ],
            ignore_conflicts=True,
        )
    return outcome


def restore_progress() -> bool:
    """While recovering: ask the peers that did not answer where they hold our log, pull the missing positions
    from those that hold them, and resume numbering once nothing is missing and every peer answered (or the wait
    is over). Returns whether it is still recovering."""
    origin = self_key()
    head = LogHead.objects.filter(origin=origin, recovering=True).first() if origin else None
    if head is None:
        return False
    peers = list(selectors.peers_active())
    top = max([head.seq, *(peer.log_position or 0 for peer in peers)])
    if top > head.seq:
        LogHead.objects.filter(id=head.id, seq__lt=top).update(seq=top)
    missing, first = _missing(origin, after=max(head.restored_from or 0, head.floor), upto=top)
    silent = [peer for peer in peers if peer.log_position is None]
    waited = (timezone.now() - head.restored_at).total_seconds() > settings.MNS_FEDERATION_RESTORE_WAIT_SECONDS
    if (not missing and not silent) or waited:
        _finish(head, top=top, missing=(missing, first), silent=silent)
        return False
    for peer in silent:
        _ask_where(peer, origin, head.incarnation)
    if missing:
        since = first - 1
        for peer in peers:
            if (peer.log_position or 0) > since:
                body = sync.message("pull", origin=origin, since=since, incarnation=head.incarnation)
                _send(peer, body, f"fed-recover:{_short(peer.identity_key)}:{since}:{_period()}")
    return True


def _missing(origin: str, *, after: int, upto: int) -> tuple[int, int]:
    """How many positions of our log in ``after+1 … upto`` we do not hold, and the first of them (0: none)."""
    held = Operation.objects.filter(origin=origin, seq__gt=after, seq__lte=upto).order_by("seq")
    first, expected = 0, after + 1
    for seq in held.values_list("seq", flat=True).iterator():
        if seq != expected:
            first = expected
            break
        expected += 1
    if not first and expected <= upto:
        first = expected
    return upto - after - held.count(), first


def _finish(head: LogHead, *, top: int, missing: tuple[int, int], silent: list[Peer]) -> None:
    head.refresh_from_db()
    note = (
        f"restored from a backup at {head.restored_at:%Y-%m-%d %H:%M:%S} UTC: the log was at {head.restored_from}, "
        f"its peers held it up to {top}; {head.recovered_ops} lost op(s) recovered from them; numbering resumes "
        f"after {top} (incarnation {head.incarnation})"
    )
    if head.floor > (head.restored_from or 0):
        note += f"; positions up to {head.floor} were compacted by the peers: what they did comes by reconciliation"
    if missing[0]:
        note += f"; {missing[0]} position(s) no peer sent back (first: {missing[1]})"
    if silent:
        note += f"; not answered: {', '.join(peer.name for peer in silent)}"
    LogHead.objects.filter(id=head.id).update(recovering=False, recovery_note=note[:2000])
    logger.warning("%s", note)
    from federation import tasks  # the app's own tasks, which call back into these services

    enqueue_on_commit(tasks.push)
    if head.floor > (head.restored_from or 0):
        enqueue_on_commit(tasks.reconcile)
