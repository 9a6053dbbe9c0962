import functools
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.rows import columns
from maxima.models import InboundEvent, NodeState, OutboundMessage
from maxima.node import has_pool, pool_keys
from maxima.timing import lease_classes, send_limits


def node_state() -> NodeState | None:
    return NodeState.objects.filter(pk=1).first()


def gateway_identity_key() -> str | None:
    """This gateway's Maxima identity key ("0x…"), as its node last reported it."""
    state = node_state()
    return state.publickey if state and state.publickey else None


def gateway_identity_key_sql() -> str:
    """``gateway_identity_key()`` as a scalar subquery of the caller's statement (NULL while the node has not
    reported it): read in the same round trip as the writes that need it, so always the committed value."""
    return f"(SELECT NULLIF(publickey, '') FROM {NodeState._meta.db_table} WHERE id = 1)"  # noqa: S608


def gateway_identity() -> dict[str, object]:
    """This gateway's Maxima identity and address, as its identity node last reported them (published in the
    policy); with a pool of nodes, ``pool``: the keys of the other nodes, from which messages to users also come."""
    identity: dict[str, object] = {"publickey": gateway_identity_key(), "address": gateway_address()}
    if has_pool():
        identity["pool"] = pool_keys()
    return identity


def gateway_address() -> str | None:
    """The address users send to: the configured permanent one, else the node's stable p2pidentity.

    While supervision finds that the permanent ``MAX#`` address does not resolve through its MLS (for minutes after
    the node restarts), the p2pidentity stands in: an address known not to resolve is never handed out. Never
    ``contact``: it is chosen at random among the node's hosts on every call.
    """
    return address_of(node_state())


# The columns of the node's state that ``address_of`` reads: a statement that needs the gateway's address with
# other rows (a handshake's issue reads it with the name's record) loads these (``core.rows``).
ADDRESS_COLUMNS = columns(NodeState, {"id", "localidentity", "p2pidentity", "address_resolves"})


def address_of(state: NodeState | None) -> str | None:
    """``gateway_address`` from the node's state as read (``None``: no state yet)."""
    if settings.MNS_MAXIMA_ADDRESS and not (state is not None and state.address_resolves is False):
        return settings.MNS_MAXIMA_ADDRESS
    if state is None:
        return settings.MNS_MAXIMA_ADDRESS or None
    return state.p2pidentity or state.localidentity or settings.MNS_MAXIMA_ADDRESS or None


# A row the sweep enqueued waits before the next sweep enqueues it again (its task may still be in the queue,
# behind a backlog): as long again as it had waited since it was due, at least MNS_INBOUND_SWEEP_AFTER_SECONDS and
# at most this. So a backlog is piled on with a few copies per row (doubling), not one per sweep.
SWEEP_WAIT_MAX = timedelta(minutes=15)


def _sweep_wait(due_since: datetime, enqueued_at: datetime) -> timedelta:
    floor = timedelta(seconds=settings.MNS_INBOUND_SWEEP_AFTER_SECONDS)
    return min(max(enqueued_at - due_since, floor), SWEEP_WAIT_MAX)


def inbound_due(*, limit: int) -> list[int]:
    """Events a worker should (re)process: pending ones the queue may have lost, and claims that went stale; not
    those enqueued too recently (``_sweep_wait``). The sweep marks what it enqueues (``sweep_mark_enqueued``)."""
    now = timezone.now()
    lost_after = timedelta(seconds=settings.MNS_INBOUND_SWEEP_AFTER_SECONDS)
    pending = Q(status=InboundEvent.Status.PENDING)
    abandoned = Q(status=InboundEvent.Status.PROCESSING, claimed_at__lt=now - inbound_lease())
    rows = (
        InboundEvent.objects.filter(pending | abandoned)
        .annotate(last_enqueued=Coalesce("enqueued_at", "received_at"))
        .filter(last_enqueued__lt=now - lost_after)
        .order_by("last_enqueued", "id")
        .values_list("id", "received_at", "last_enqueued")[: limit * 4]
    )
    due = [ident for ident, received, last in rows if last + _sweep_wait(received, last) <= now]
    return sorted(due[:limit])


def outbound_due(*, limit: int) -> list[int]:
    """Messages due for a (re)try not enqueued since they became due, or enqueued long enough ago that the task
    was lost (``_sweep_wait``), and claims that went stale."""
    now = timezone.now()
    queued = Q(status=OutboundMessage.Status.QUEUED, next_attempt_at__lte=now)
    abandoned = stale_sending(now)
    rows = (
        OutboundMessage.objects.filter(queued | abandoned)
        .order_by("next_attempt_at", "id")
        .values_list("id", "next_attempt_at", "enqueued_at")[: limit * 4]
    )
    due = [
        ident
        for ident, due_since, enqueued in rows
        if enqueued is None or enqueued < due_since or enqueued + _sweep_wait(due_since, enqueued) <= now
    ]
    return due[:limit]


def inbound_lease() -> timedelta:
    """After this long a claimed event whose worker died is taken over: longer than any task may run (the hard
    time limit kills it first), so a claim is never taken from a task still running."""
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 5)


def outbound_lease() -> timedelta:
    """The same for a small message being sent (its RPC times out below the task's soft limit); a bigger one's
    send may take longer, and so does its lease (``maxima.timing.send_limits``)."""
    return send_limits(0).lease


def stale_sending(now: datetime) -> Q:
    """Messages claimed for sending whose claim is older than the lease of their size: their task died."""
    stale = Q(pk__in=[])
    for above, up_to, lease in lease_classes():
        stale |= Q(size__gt=above, size__lte=up_to, claimed_at__lt=now - lease)
    return Q(status=OutboundMessage.Status.SENDING) & stale


def batch_in_flight(destination: str, application: str, now: datetime) -> bool:
    """Whether a batch to ``destination`` is being sent: a batchable message to it claimed, and not stale
    (``stale_sending``). Most of a busy sender's batch tasks ask it; the ORM built the same ``EXISTS`` for each
    (about 1.5 ms of CPU, seven times the statement's), so it is one statement kept as text, written from the
    same lease classes: a claim is stale when older than the lease of the first class whose bound its size is
    within, as ``stale_sending`` says (a size past every class, or no claim time, is never stale there either)."""
    classes = lease_classes()
    sql = _in_flight_sql(connection.vendor, len(classes))
    claimed_at = OutboundMessage._meta.get_field("claimed_at")
    params: list[object] = [OutboundMessage.Status.SENDING.value, destination, application]
    for above, up_to, lease in classes:
        params += [above, up_to, claimed_at.get_db_prep_value(now - lease, connection)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


@functools.cache
def _in_flight_sql(vendor: str, count: int) -> str:
    """The statement of ``batch_in_flight`` for ``count`` lease classes, quoted for ``connection``, whose vendor
    ``vendor`` is (the cache's key: the quoting is the backend's)."""
    q = connection.ops.quote_name
    size, claimed_at = q("size"), q("claimed_at")
    stale = " OR ".join([f"({size} > %s AND {size} <= %s AND {claimed_at} < %s)"] * count)
    return (
        f"SELECT 1 FROM {q(OutboundMessage._meta.db_table)} WHERE {q('status')} = %s AND {q('batchable')}"  # noqa: S608
        f" AND {q('destination')} = %s AND {q('application')} = %s AND NOT COALESCE({stale}, FALSE) LIMIT 1"
    )


def outbound_sizes(ids: list[int]) -> dict[int, int]:
    return dict(OutboundMessage.objects.filter(id__in=ids).values_list("id", "size"))


def address_check() -> str:
    """The ``address`` part of ``/api/v1/health`` (degraded, never down): whether the published ``MAX#`` address
    resolves through its MLS, as supervision last found."""
    state = node_state()
    if state is None or state.address_resolves is None:
        return "not checked yet"
    if not state.address_resolves:
        since = (timezone.now() - (state.address_dark_since or timezone.now())).total_seconds()
        raise RuntimeError(
            f"the MAX# address does not resolve through its MLS (for {since:.0f} s; after a restart of the node "
            "it takes about 4.5 minutes); the direct address is published meanwhile"
        )
    return "resolves through its MLS"


def has_permanent_address() -> bool:
    return settings.MNS_MAXIMA_ADDRESS.startswith("MAX#")


def queue_figures(*, now: datetime | None = None) -> dict[str, float]:
    """The inbox and outbox now: rows waiting (or being worked on) and the age of the oldest, in seconds."""
    now = now or timezone.now()
    inbound = InboundEvent.objects.filter(status__in=["pending", "processing"]).aggregate(
        depth=Count("id"), oldest=Min("received_at")
    )
    outbound = OutboundMessage.objects.filter(status__in=["queued", "sending"]).aggregate(
        depth=Count("id"), oldest=Min("created_at")
    )
    return {
        "inbound_depth": inbound["depth"],
        "inbound_oldest_seconds": _age(now, inbound["oldest"]),
        "outbound_depth": outbound["depth"],
        "outbound_oldest_seconds": _age(now, outbound["oldest"]),
    }


def _age(now: datetime, oldest: datetime | None) -> float:
    return round(max((now - oldest).total_seconds(), 0.0), 1) if oldest else 0.0
