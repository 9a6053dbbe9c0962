"""Log compaction (``docs/operations.md``, "Log compaction"): a log only grows, and after the peers have what it
says, most of it is dead weight. So each log kept here is compacted up to a **floor**: its ops at or below the floor
are deleted, except its tombstones.

- This gateway's own log (``LogHead.floor``): the floor keeps ``MNS_FEDERATION_LOG_KEEP`` ops behind the head, and
  never passes what an active peer holds of the log (``Peer.log_position``, the ``since`` of its last pull), unless
  that peer said nothing of it for ``MNS_FEDERATION_COMPACT_SILENT_SECONDS`` or is below the floor already: such a
  peer's pull from below the floor is answered ``compacted`` with the tombstones of the range, and it catches up by
  reconciliation (a snapshot moves its cursor past the floor). The floor never moves while the log is recovering
  from a restored backup (its positions are being pulled back).
- The copies of the peers' logs kept here (``Peer.copy_floor``): ``MNS_FEDERATION_LOG_KEEP`` ops behind how far
  they were applied here (the cursor). A peer restored from a backup pulls its own log back from this copy
  (``restore.own_log_served``); from below the copy's floor it gets the ``compacted`` answer too.

A tombstone is a ``delete`` op: the log is the only thing that remembers a message was deleted, and that memory keeps
a reconciliation from bringing it back (``selectors.deletion_logged``). One is kept, at or below its log's floor,
until it cannot matter: ``MNS_RETENTION_DAYS`` and a day after it was made, every message it could have deleted has
expired here, and a copy of one arriving later is not stored (``mailboxes.services.message_replicate``). Nothing
else is read back from the log once applied: statements, mailboxes and messages live in their apps' rows.

Deletes go in chunks of their own short transaction (by primary key, found on the ``(origin, seq)`` index), so no
lock is held for long and a compaction cut short (a deploy, a time limit) is carried on by the next: the floor is
written first, and every run deletes what lies below it. Safe to run twice, or two at once.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from federation import selectors
from federation.models import LogHead, Operation, Peer
from federation.selectors import tombstone_horizon
from federation.services.peers import self_key

logger = logging.getLogger(__name__)

CHUNK = 1000  # ops a delete: a short transaction, well within any lock timeout


@dataclass
class CompactReport:
    floor: int = 0  # of this gateway's own log
    why: str = ""  # what holds the floor where it is
    removed: int = 0  # ops of the own log deleted by this run
    copies_removed: int = 0  # ops of the peers' logs deleted by this run
    tombstones_dropped: int = 0  # of every log, older than the tombstone horizon
    copy_floors: dict[str, int] = field(default_factory=dict)  # peer name -> the floor of our copy of its log


def floor_wanted(*, head: LogHead, peers: list[Peer], now: datetime) -> tuple[int, str]:
    """How far this gateway's own log may be compacted, and what stops it there.

    ``MNS_FEDERATION_LOG_KEEP`` ops behind the head at least; no further than an active peer holds the log, unless
    that peer is silent (no position said, nor anything heard, for ``MNS_FEDERATION_COMPACT_SILENT_SECONDS``) or
    below the floor already (it catches up by reconciliation either way). A peer heard from that never said its
    position holds the floor where it is. Never below the present floor."""
    floor = head.seq - settings.MNS_FEDERATION_LOG_KEEP
    why = f"{settings.MNS_FEDERATION_LOG_KEEP} ops kept behind the head {head.seq}"
    silent_before = now - timedelta(seconds=settings.MNS_FEDERATION_COMPACT_SILENT_SECONDS)
    for peer in peers:
        if peer.log_position is None or peer.log_position_at is None:
            if (peer.last_heard_at or peer.created_at) >= silent_before and head.floor < floor:
                floor, why = head.floor, f"{peer.name} has not said how far it holds the log"
            continue
        if peer.log_position_at < silent_before or peer.log_position < head.floor:
            continue
        if peer.log_position < floor:
            floor, why = peer.log_position, f"{peer.name} holds it up to {peer.log_position}"
    return max(floor, head.floor), why


def compact(*, now: datetime | None = None, chunk: int = CHUNK) -> CompactReport:
    """One compaction of every log kept here (see the module's docstring); returns what it did."""
    now, report = now or timezone.now(), CompactReport()
    horizon = tombstone_horizon(now)
    origin = self_key()
    if origin is not None:
        LogHead.objects.get_or_create(origin=origin)
        head = LogHead.objects.get(origin=origin)
        if head.recovering:
            report.floor, report.why = head.floor, "recovering from a restored backup: not compacted"
        else:
            report.floor, report.why = floor_wanted(head=head, peers=list(selectors.peers_active()), now=now)
            LogHead.objects.filter(id=head.id, floor__lt=report.floor).update(floor=report.floor)
            report.removed = _remove(origin, floor=report.floor, chunk=chunk)
            report.tombstones_dropped = _remove(origin, floor=report.floor, chunk=chunk, horizon=horizon)
    for peer in Peer.objects.exclude(identity_key=origin or ""):
        copy_floor = max(peer.copy_floor, peer.cursor - settings.MNS_FEDERATION_LOG_KEEP)
        Peer.objects.filter(id=peer.id, copy_floor__lt=copy_floor).update(copy_floor=copy_floor)
        report.copy_floors[peer.name] = copy_floor
        report.copies_removed += _remove(peer.identity_key, floor=copy_floor, chunk=chunk)
        report.tombstones_dropped += _remove(peer.identity_key, floor=copy_floor, chunk=chunk, horizon=horizon)
    if origin is not None:
        _report_keep(origin, report, now)
    return report


def _remove(origin: str, *, floor: int, chunk: int, horizon: datetime | None = None) -> int:
    """Delete the ops of ``origin``'s log at or below ``floor``, a chunk a transaction: every one but the
    tombstones, or (``horizon``) the tombstones made before it. Returns how many."""
    below = Operation.objects.filter(origin=origin, seq__lte=floor)
    if horizon is None:
        below = below.exclude(kind=Operation.Kind.DELETE)
    else:
        below = below.filter(kind=Operation.Kind.DELETE, created_at__lt=horizon)
    removed = 0
    while True:
        ids = list(below.order_by("seq").values_list("id", flat=True)[:chunk])
        if not ids:
            return removed
        removed += Operation.objects.filter(id__in=ids).delete()[0]


def _report_keep(origin: str, report: CompactReport, now: datetime) -> None:
    removed = report.removed + report.copies_removed + report.tombstones_dropped
    note = (
        f"floor {report.floor} ({report.why}); removed {report.removed} of this log, {report.copies_removed} of the "
        f"peers' copies, {report.tombstones_dropped} expired tombstones"
    )
    LogHead.objects.filter(origin=origin).update(
        compacted_ops=F("compacted_ops") + removed, compacted_at=now, compact_note=note[:300]
    )
    if removed:
        logger.info("log compaction: %s", note)


def below_floor(peer: Peer) -> bool:
    """Whether the peer's log is compacted past our cursor: its ops up to its floor will not come by the log."""
    return peer.cursor < peer.remote_floor
