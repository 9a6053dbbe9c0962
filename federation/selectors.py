"""Reads of the federation: who the peers are, which are fit to be entry points, and how far behind each one is."""

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone

from federation.models import Claim, Lease, LogHead, Operation, Peer


@dataclass(frozen=True)
class EntryCandidate:
    maxima_address: str
    identity_key: str
    api_url: str


def peers_active() -> QuerySet[Peer]:
    """The peers this gateway talks to: enabled and not paused."""
    return Peer.objects.filter(enabled=True, paused=False)


def peers_active_sql() -> str:
    """Whether ``peers_active()`` has any, as a boolean expression of the caller's statement (no round trip)."""
    return f"EXISTS (SELECT 1 FROM {Peer._meta.db_table} WHERE enabled AND NOT paused)"  # noqa: S608


def peers_far_behind() -> list[int]:
    """The active peers that lag behind their log by more than ``MNS_FEDERATION_SNAPSHOT_LAG`` ops, or whose log
    is compacted past our cursor once its tombstones are here (``services.compacted_received``): caught up by a
    snapshot (over their API, or Maxima) rather than a replay (``services.snapshot_wanted`` says the same of one)."""
    lag, cool_off = settings.MNS_FEDERATION_SNAPSHOT_LAG, 300  # as services.snapshots.FAILED_COOLS_OFF
    return list(
        peers_active()
        .exclude(reconcile_note__startswith="failed", reconciled_at__gt=timezone.now() - timedelta(seconds=cool_off))
        .filter(
            Q(remote_head__gt=F("cursor") + lag) | Q(remote_floor__gt=F("cursor"), tombstones_to__gte=F("remote_floor"))
        )
        .values_list("id", flat=True)
    )


def peers_to_reconcile() -> list[int]:
    """The active peers an anti-entropy round is due with: each with an API URL, and each without one that was not
    reconciled with (over Maxima) in the last ``MNS_FEDERATION_RECONCILE_MAXIMA_EVERY`` seconds."""
    with_api = peers_active().exclude(api_url="")
    every = settings.MNS_FEDERATION_RECONCILE_MAXIMA_EVERY
    if not every:
        return list(with_api.values_list("id", flat=True))
    due = Q(reconciled_at__isnull=True) | Q(reconciled_at__lte=timezone.now() - timedelta(seconds=every))
    over_maxima = peers_active().filter(api_url="").filter(due)
    return list(with_api.values_list("id", flat=True)) + list(over_maxima.values_list("id", flat=True))


def peer_of_key(*, key: str) -> Peer | None:
    """The enabled peer with this identity key (canonical form), paused or not."""
    return Peer.objects.filter(identity_key=key, enabled=True).first()


def entry_candidates() -> list[EntryCandidate]:
    """Enabled, unpaused peers with a permanent address that were heard from recently (the gateway itself not
    included: the entry-points code adds it)."""
    heard_since = timezone.now() - timedelta(seconds=settings.MNS_FEDERATION_HEALTHY_SECONDS)
    peers = peers_active().filter(permanent=True, last_heard_at__gte=heard_since).order_by("name")
    return [EntryCandidate(maxima_address=p.address, identity_key=p.identity_key, api_url=p.api_url) for p in peers]


def log_head(*, origin: str) -> int:
    """The last seq stored of ``origin``'s log."""
    return Operation.objects.filter(origin=origin).aggregate(head=Max("seq"))["head"] or 0


def ops_since(*, origin: str, since: int, limit: int) -> list[Operation]:
    return list(Operation.objects.filter(origin=origin, seq__gt=since).order_by("seq")[:limit])


def log_floor(*, origin: str) -> int:
    """How far this gateway's own log is compacted (``services.compaction``): only tombstones at or below it."""
    return LogHead.objects.filter(origin=origin).values_list("floor", flat=True).first() or 0


def tombstones_between(*, origin: str, after: int, upto: int, limit: int) -> list[Operation]:
    """The tombstones (``delete`` ops) a compacted range of ``origin``'s log kept, ``after`` < seq <= ``upto``."""
    rows = Operation.objects.filter(origin=origin, kind=Operation.Kind.DELETE, seq__gt=after, seq__lte=upto)
    return list(rows.order_by("seq")[:limit])


def lag_seconds(peer: Peer) -> float:
    """How long the peer's ops have been arriving here incomplete (0 while caught up)."""
    if peer.lag_ops == 0:
        return 0.0
    since = peer.caught_up_at or peer.created_at
    return max((timezone.now() - since).total_seconds(), 0.0)


@dataclass(frozen=True)
class PeerHealth:
    name: str
    last_heard_at: str | None
    lag_ops: int
    lag_seconds: float
    invalid_ops: int
    paused: bool
    healthy: bool
    reconciled_at: str | None
    reconcile_fetched: int
    reconcile_bytes: int
    reconcile_note: str
    below_floor: int  # its log is compacted up to here, past our cursor (0: not)


def peers_health() -> list[PeerHealth]:
    """Each enabled peer's health: heard from recently, not paused, under the lag thresholds, and not stuck below
    the floor of its compacted log."""
    now, answer = timezone.now(), []
    for peer in Peer.objects.filter(enabled=True).order_by("name"):
        lag = lag_seconds(peer)
        heard = peer.last_heard_at is not None and (now - peer.last_heard_at).total_seconds() <= (
            settings.MNS_FEDERATION_HEALTHY_SECONDS
        )
        below_floor = peer.remote_floor if peer.cursor < peer.remote_floor else 0
        healthy = (
            heard
            and not peer.paused
            and not below_floor
            and peer.lag_ops <= settings.MNS_FEDERATION_LAG_OPS_WARN
            and lag <= settings.MNS_FEDERATION_LAG_SECONDS_WARN
        )
        answer.append(
            PeerHealth(
                name=peer.name,
                last_heard_at=peer.last_heard_at.isoformat() if peer.last_heard_at else None,
                lag_ops=peer.lag_ops,
                lag_seconds=round(lag, 1),
                invalid_ops=peer.invalid_ops,
                paused=peer.paused,
                healthy=healthy,
                reconciled_at=peer.reconciled_at.isoformat() if peer.reconciled_at else None,
                reconcile_fetched=peer.reconcile_fetched,
                reconcile_bytes=peer.reconcile_bytes,
                reconcile_note=peer.reconcile_note,
                below_floor=below_floor,
            )
        )
    return answer


def lease_holding(*, skeleton: str) -> Lease | None:
    """The lease this gateway holds on a skeleton (live or committed, unexpired), if any."""
    return (
        Lease.objects.filter(skeleton=skeleton, status__in=Lease.HOLDING, expires_at__gt=timezone.now())
        .order_by("-created_at")
        .first()
    )


def claim_of(*, claim_id: str) -> Claim | None:
    return Claim.objects.filter(claim_id=claim_id).first()


def claim_for_name(*, name: str) -> Claim | None:
    """The newest claim this gateway made for a name."""
    return Claim.objects.filter(name=name).order_by("-created_at", "-id").first()


def peers_check() -> str:
    """The peers part of ``/api/v1/health``: degraded (never down) when an enabled peer is paused, silent, or lags."""
    peers = peers_health()
    unhealthy = [peer.name for peer in peers if not peer.healthy]
    if unhealthy:
        raise RuntimeError(f"unhealthy peers: {', '.join(unhealthy)}"[:180])
    return f"{len(peers)} peers"


def peers_report() -> list[dict]:
    """Each enabled peer's last heard, lag in operations and seconds, invalid operations and pause, and its last
    reconciliation round (when, items fetched, bytes, what it did)."""
    return [asdict(peer) for peer in peers_health()]


def log_check() -> str:
    """The log part of ``/api/v1/health``: degraded while the gateway, restored from a backup, recovers its log
    from its peers; else its head and incarnation, and what the last restore did."""
    head = LogHead.objects.order_by("-id").first()
    if head is None:
        return "no log yet"
    if head.recovering:
        raise RuntimeError(f"{head.recovery_note}"[:180])
    detail = f"head {head.seq}, incarnation {head.incarnation}"
    if head.floor:
        detail += f", compacted up to {head.floor} ({head.compacted_ops} ops removed)"
    return f"{detail}; {head.recovery_note}"[:400] if head.restored_at else detail


def has_log() -> bool:
    return LogHead.objects.exists()


def has_peers() -> bool:
    """A gateway alone (a membership of one) has no peers part in its health."""
    return Peer.objects.filter(enabled=True).exists()


def tombstone_horizon(now: datetime | None = None) -> datetime:
    """Tombstones made before this can no longer matter: every message they deleted has expired everywhere since
    (a replica does not store a copy past its retention)."""
    return (now or timezone.now()) - timedelta(days=settings.MNS_RETENTION_DAYS + 1)


def tombstones_of(*, name: str) -> dict[str, datetime]:
    """The messages of mailbox ``name`` whose ``delete`` op (any origin's) is in the log here and still matters
    (made after ``tombstone_horizon``): uid -> when the oldest of them was made."""
    rows = (
        Operation.objects.filter(kind=Operation.Kind.DELETE, payload__name=name, created_at__gte=tombstone_horizon())
        .order_by()
        .values_list("payload__uid", "created_at")
    )
    found: dict[str, datetime] = {}
    for uid, made in rows:
        if isinstance(uid, str) and (uid not in found or made < found[uid]):
            found[uid] = made
    return found


def deletion_logged(*, uid: str) -> bool:
    """Whether a ``delete`` op of this message (any origin's) is in the log here: a tombstone that keeps a
    snapshot from bringing the message back."""
    return Operation.objects.filter(kind=Operation.Kind.DELETE, payload__uid=uid).exists()
