"""This gateway's own operation log: appended in the writers' transactions, numbered after commit, pushed and pulled."""

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.queue import enqueue_now, enqueue_on_commit
from federation import selectors
from federation.models import LogHead, Operation, Peer
from federation.services import kinds
from federation.services.peers import _ms, _send, _short, self_key
from maxima.models import OutboundMessage
from maxima.routing import Ignored, InboundMessage
from maxima.selectors import gateway_identity_key_sql
from mns_client.protocol import sync

logger = logging.getLogger(__name__)


def op_append(*, kind: str, payload: dict[str, Any], created_at: datetime | None = None) -> Operation | None:
    """Append one of this gateway's own operations to its log, in the caller's transaction; numbered and pushed
    to peers after the commit.

    The append is one INSERT with no ``seq`` yet: it locks nothing, so concurrent writers (deliveries above all)
    commit side by side, their fsyncs grouped, instead of queueing on one head row until each has committed.
    ``op_sequence`` numbers the committed ones later (a push, the sync round). Without its own identity key yet
    the gateway cannot have confirmed anything worth replicating: nothing is appended, and a warning says so.
    ``created_at`` (now by default) dates an op that records something that happened earlier (a deletion learnt
    from a peer's snapshot keeps the date of its first tombstone, so it expires when that one does).
    """
    origin = self_key()
    op = None
    if origin is not None:
        op = Operation.objects.create(
            origin=origin, kind=kind, payload=payload, created_at=created_at or timezone.now(), outcome="own"
        )
    op_appended(kind=kind, logged=op is not None, peers_active=op is not None and selectors.peers_active().exists())
    return op


@dataclass(frozen=True)
class OpInsert:
    """``op_append`` as one data-modifying CTE of the caller's PostgreSQL statement (``sql``, ``params``)."""

    sql: str
    params: list[Any]


def op_append_sql(*, kind: str, payload: dict[str, Any], source: str, owned: str | None = None) -> OpInsert:
    """``op_append`` for a caller that writes in one statement: an ``INSERT … RETURNING id`` that appends the op
    once for each row of the caller's CTE named ``source`` (none when it has none), with this gateway's identity
    key read in the same statement. The caller asks ``peers_active_sql()`` in it too, and hands both answers to
    ``op_appended``: neither costs a round trip of its own, and neither can be stale, unlike a cached copy.

    ``owned``: a ``jsonb`` object of the caller's statement merged into the payload, for fields that only the
    statement reads (``source`` then names every CTE it uses, joined: ``"stored, ok"``)."""
    now = timezone.now()
    merged = "%s::jsonb" if owned is None else f"(%s::jsonb || {owned})"
    sql = f"""INSERT INTO {Operation._meta.db_table} (origin, kind, payload, created_at, received_at, outcome)
        SELECT key.origin, %s, {merged}, %s, %s, 'own'
        FROM {source}, (SELECT {gateway_identity_key_sql()} AS origin) key WHERE key.origin IS NOT NULL
        RETURNING id"""  # noqa: S608 (table names from the models, the source from the caller; values are parameters)
    return OpInsert(sql=sql, params=[kind, json.dumps(payload), now, now])


def ops_append_sql(*, kind: str, payloads: Sequence[dict[str, Any]]) -> OpInsert:
    """``op_append_sql`` for a run written in one statement, every row of it written (no CTE to append on): one op
    for each of ``payloads``, appended in their order, with this gateway's identity key read in the same statement
    (none without one). ``op_appended`` once for the run, with whether they were logged."""
    now = timezone.now()
    rows = ", ".join(["(%s::jsonb, %s)"] * len(payloads))
    sql = f"""INSERT INTO {Operation._meta.db_table} (origin, kind, payload, created_at, received_at, outcome)
        SELECT key.origin, %s, p.payload, %s, %s, 'own'
        FROM (VALUES {rows}) AS p(payload, n), (SELECT {gateway_identity_key_sql()} AS origin) key
        WHERE key.origin IS NOT NULL ORDER BY p.n
        RETURNING id"""  # noqa: S608 (table names from the models; values are parameters)
    params: list[Any] = [kind, now, now]
    for n, payload in enumerate(payloads):
        params += [json.dumps(payload), n]
    return OpInsert(sql=sql, params=params)


def op_appended(*, kind: str, logged: bool, peers_active: bool) -> None:
    """After an append: say that an op could not be logged (no identity key yet), or push it once committed."""
    if not logged:
        logger.warning("a %s operation was not logged: this gateway does not know its identity key yet", kind)
    elif peers_active:
        from federation import tasks  # the app's own tasks, which call back into these services

        transaction.on_commit(lambda: enqueue_now(tasks.push))


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
            head, recovering = LogHead.objects.filter(origin=origin).values_list("seq", "recovering").get()
            if recovering:  # restored from a backup: no number is given until the peers' positions are known
                return numbered
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
    """An operation as it travels, completed by its kind's owner where the log keeps less (a ``message`` op takes
    its ciphertext from the stored message, or says ``gone`` when the message was deleted or expired since)."""
    payload = kinds.for_wire(op.kind, dict(op.payload))
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
    incarnation, recovering = _log_state(origin)
    head = selectors.log_head(origin=origin)
    if peer.pushed >= head or recovering:
        return 0
    if head - peer.pushed > settings.MNS_FEDERATION_SNAPSHOT_LAG or peer.pushed < selectors.log_floor(origin=origin):
        # Below the floor, what it lacks is no longer in the log: its pull is answered ``compacted``.
        return _push_head_only(peer, origin=origin, head=head)
    ops = [op_wire(op) for op in selectors.ops_since(origin=origin, since=peer.pushed, limit=limit)]
    sent = 0
    for batch in sync.batches(origin=origin, head=head, ops=ops, max_bytes=settings.MNS_FEDERATION_BATCH_BYTES):
        first, last = batch["ops"][0]["seq"], batch["ops"][-1]["seq"]
        with transaction.atomic():
            if not Peer.objects.filter(id=peer.id, pushed=first - 1).update(pushed=last):
                break  # another push took this range
            _send(peer, {**batch, "incarnation": incarnation}, f"fed-ops:{_short(peer.identity_key)}:{first}-{last}")
        sent += len(batch["ops"])
    return sent


def _log_state(origin: str) -> tuple[str, bool]:
    """The incarnation of this gateway's log, and whether it is recovering from a restored backup."""
    LogHead.objects.get_or_create(origin=origin)
    return LogHead.objects.filter(origin=origin).values_list("incarnation", "recovering").get()


def _push_head_only(peer: Peer, *, origin: str, head: int) -> int:
    """A peer that lags by more than ``MNS_FEDERATION_SNAPSHOT_LAG`` ops (a new peer, a long outage) is told the
    head, not pushed the backlog over Maxima: it reconciles with this gateway's API, or pulls (``pull_received``)
    where it cannot. Returns 0 (no op sent)."""
    with transaction.atomic():
        if Peer.objects.filter(id=peer.id, pushed=peer.pushed).update(pushed=head):
            body = sync.message("ops", origin=origin, head=head, ops=[])
            _send(peer, body, f"fed-ops:{_short(peer.identity_key)}:head-{head}")
    return 0


def _push_stalled(peer: Peer) -> bool:
    return OutboundMessage.objects.filter(
        idempotency_key__startswith=f"fed-ops:{_short(peer.identity_key)}:",
        status__in=[OutboundMessage.Status.QUEUED, OutboundMessage.Status.SENDING],
        attempts__gte=1,
    ).exists()


def ops_batch_sent(message: OutboundMessage) -> None:
    """The outbox sent a ``fed-ops`` batch: push what coalesced behind it to that peer, after the commit."""
    from federation import tasks  # the app's own tasks, which call back into these services

    for peer_id in selectors.peers_active().filter(address=message.destination).values_list("id", flat=True):
        enqueue_on_commit(tasks.push_peer, peer_id)


def pull_request(*, peer_id: int) -> bool:
    """Ask a peer for its operations after our cursor (at most once per peer and cursor per sync period).

    Below the floor of its compacted log (``compacted_received``), the pulls fetch the tombstones of the compacted
    range, each from after the last one fetched; once all are here, none is sent: a reconciliation round moves the
    cursor past the floor, and the pulls carry on from there."""
    peer = selectors.peers_active().filter(id=peer_id).first()
    since = _pull_since(peer) if peer is not None else None
    if peer is None or since is None or _pull_unanswered(peer, since):
        return False
    period = int(time.time() // settings.MNS_FEDERATION_SYNC_EVERY)
    body = sync.message("pull", origin=peer.identity_key, since=since, incarnation=peer.incarnation or None)
    _send(peer, body, f"fed-pull:{_short(peer.identity_key)}:{since}:{period}")
    Peer.objects.filter(id=peer.id).update(last_pull_at=timezone.now())
    return True


# How long a pull from one cursor is given for its answer before the same cursor is asked for again: above the
# time a full batch takes to send and apply on a loaded machine. (A sync round every second, as the bench runs it,
# otherwise asked again every second, and each pull was answered with the whole batch.)
PULL_ANSWER_SECONDS = 10


def _pull_since(peer: Peer) -> int | None:
    """Where a pull of the peer's log starts: our cursor; below the floor of its compacted log, after the last
    tombstone fetched (``None``: all are here, and a reconciliation round is what moves the cursor on)."""
    if peer.cursor >= peer.remote_floor:
        return peer.cursor
    since = max(peer.cursor, peer.tombstones_to)
    return since if since < peer.remote_floor else None


def _pull_unanswered(peer: Peer, since: int) -> bool:
    """Whether we asked the peer for the ops after ``since`` less than ``PULL_ANSWER_SECONDS`` ago: its answer
    may still be on its way (an answer that moves the cursor lets the next pull go at once)."""
    after = timezone.now() - timedelta(seconds=PULL_ANSWER_SECONDS)
    return OutboundMessage.objects.filter(
        idempotency_key__startswith=f"fed-pull:{_short(peer.identity_key)}:{since}:", created_at__gt=after
    ).exists()


def pull_received(*, peer: Peer, message: InboundMessage, body: dict[str, Any]) -> int:
    """Answer a peer's ``pull`` with one ``ops`` batch of our log after its cursor (it pulls again while behind).

    A peer restored from a backup pulls its own log back: answered from our copy of it. A pull after a position
    past our head says we were restored from a backup (``restore.position_seen``)."""
    from federation.services import restore  # restore relays, and the relay appends here

    origin, tag = self_key(), f"{_short(peer.identity_key)}:{body['since']}:{message.msgid[2:26]}"
    if origin is not None and body["origin"] == peer.identity_key != origin:
        batch = restore.own_log_served(peer=peer, since=body["since"])
        _send(peer, batch, f"fed-served:{tag}")
        return len(batch["ops"])
    if origin is None or body["origin"] != origin:
        raise Ignored("a pull for a log this gateway does not keep")
    incarnation, recovering = _log_state(origin)
    log = LogHead.objects.get(origin=origin)
    if recovering or body["since"] > log.seq:
        restore.position_seen(peer=peer, seq=body["since"], origin=origin)
    else:  # how far it holds our log: the floor of its compaction never passes it (``compaction.floor_wanted``)
        Peer.objects.filter(id=peer.id).update(log_position=body["since"], log_position_at=timezone.now())
    if _answer_waiting(f"fed-answer:{_short(peer.identity_key)}:{body['since']}:"):
        # A peer catching up pulls every sync round until the answer arrives; its answer to the same cursor is
        # still in the outbox (a batch takes the node seconds to send), and would carry the same ops: one is
        # enough. (Answering each pull queued a full batch per round behind the first, and the peer caught up at
        # the pace of the redundant sends.)
        return 0
    # Not numbered here: this runs in the inbound task's transaction, which would hold the head row while the
    # answer is built. Pushes (after every commit that logs, when there are peers) and each sync round number it.
    head = selectors.log_head(origin=origin)
    if body["since"] < log.floor:
        batch = compacted_answer(origin=origin, since=body["since"], floor=log.floor, head=head)
    else:
        ops = [op_wire(op) for op in selectors.ops_since(origin=origin, since=body["since"], limit=sync.MAX_BATCH_OPS)]
        batch = _first_batch(origin=origin, head=head, ops=ops)
    _send(peer, {**batch, "incarnation": incarnation}, f"fed-answer:{tag}")
    return len(batch["ops"])


def _first_batch(*, origin: str, head: int, ops: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        sync.batches(origin=origin, head=head, ops=ops, max_bytes=settings.MNS_FEDERATION_BATCH_BYTES),
        sync.message("ops", origin=origin, head=head, ops=[]),
    )


def compacted_answer(*, origin: str, since: int, floor: int, head: int) -> dict[str, Any]:
    """The answer to a pull of ``origin``'s log from below its compaction ``floor``: ``compacted`` says the gap is
    meant, and the ops are the tombstones the compacted range kept after ``since`` (the first batch of them; the
    puller asks again from after the last, and an answer without any says it has them all). The rest of the range
    comes by reconciliation. (Used for our own log and for the copies of peers' logs a restored peer asks back.)"""
    kept = selectors.tombstones_between(origin=origin, after=since, upto=floor, limit=sync.MAX_BATCH_OPS)
    return {**_first_batch(origin=origin, head=head, ops=[op_wire(op) for op in kept]), "compacted": floor}


def _answer_waiting(key_prefix: str) -> bool:
    """Whether an answer to a peer's pull for one cursor waits in the outbox, not sent yet."""
    return OutboundMessage.objects.filter(
        idempotency_key__startswith=key_prefix,
        status__in=[OutboundMessage.Status.QUEUED, OutboundMessage.Status.SENDING],
    ).exists()


def replicas_for_new_mailbox() -> list[str]:
    """The gateways to keep a new mailbox: this one (home) first, then every active peer, or the first
    ``MNS_FEDERATION_REPLICATION_FACTOR`` of them by name."""
    keys = list(selectors.peers_active().order_by("name").values_list("identity_key", flat=True))
    factor = settings.MNS_FEDERATION_REPLICATION_FACTOR
    return [self_key(), *(keys[:factor] if factor else keys)]
