"""The gateway's side of the Maxima link: the webhook inbox, the retried outbox, and node supervision.

Inbound: the hook stores each MAXIMA event (unique on ``msgid``) and answers at once; a task claims many pending
events with one conditional UPDATE (their rows locked with SKIP LOCKED on PostgreSQL) and dispatches each to the
handler of its application, all in one transaction with a savepoint per event, so a handler's writes and its
event's mark commit together (``inbound_process_batch``). Outbound: a row per message, sent by a task, counted sent
only on ``delivered:true``, retried with exponential backoff and jitter; replies due to one destination travel in
one ``batch`` message (``outbound_send_batch``). Beat sweeps find whatever a lost task left.
"""

import functools
import json
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, Model, Q, QuerySet
from django.db.models.functions import Greatest
from django.db.models.sql import InsertQuery
from django.utils import timezone

from core.errors import DomainError
from core.queue import enqueue_coalesced, enqueue_on_commit
from core.rows import ExpressionValue, columns, insert_fields, insert_params, loader
from maxima import selectors
from maxima.models import InboundEvent, NodeState, OutboundMessage, QueueSample
from maxima.node import hook_url, node_client, send_node
from maxima.routing import BatchHandler, Ignored, InboundMessage, batch_handler_of, dispatch, dispatch_batch
from maxima.selectors import inbound_lease, queue_figures, stale_sending
from maxima.timing import BATCH_BYTES, MAXIMA_MAX_DATA_BYTES
from mns_client.protocol import batch
from mns_client.protocol.codecs import from_hex, parse_address, parse_public_key, public_key_hex
from mns_client.protocol.errors import (
    AddressUnresolved,
    CodecError,
    DeliveryFailed,
    MNSError,
    NodeAuthError,
    NodeStartingUp,
    NodeUnreachable,
    RPCError,
)
from mns_client.protocol.rpc import MinimaRPC

logger = logging.getLogger(__name__)

# A transient failure (database restart, lock timeout) leaves an event pending for the sweep this many times.
INBOUND_MAX_ATTEMPTS = 10
_MSGID = re.compile(r"^0x[0-9A-Fa-f]{64}$")
_HEX = re.compile(r"^0x(?:[0-9A-Fa-f]{2})*$")
_APPLICATION = re.compile(r"^[A-Za-z0-9._:@/+-]{1,255}$")


# --- Inbound ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaximaEvent:
    """The fields of a MAXIMA webhook event, checked and in canonical form."""

    msgid: str
    sender: str
    recipient_key: str
    application: str
    data: bytes
    timemilli: int
    random: str


def _malformed(detail: str) -> DomainError:
    return DomainError("hook_malformed", detail, status=400)


def hook_parse(body: bytes) -> MaximaEvent | None:
    """Read a webhook body as the node sends it (JSON, whatever the Content-Type says).

    Returns None for events that are not Maxima messages (MAXIMAHOSTS, MAXIMACONTACTS also match the
    ``MAXIMA`` filter); raises ``DomainError`` for anything malformed, before anything is stored.
    """
    try:
        envelope = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("The body is not UTF-8 JSON.") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("event"), str):
        raise _malformed('The body is not an object with an "event".')
    if envelope["event"] != "MAXIMA":
        return None
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise _malformed('A MAXIMA event needs a "data" object.')
    return MaximaEvent(
        msgid=_text(data, "msgid", _MSGID).upper().replace("0X", "0x"),
        sender=_sender(data),
        recipient_key=_text(data, "to", _HEX),
        application=_text(data, "application", _APPLICATION),
        data=_hex_bytes(data, "data"),
        timemilli=_timemilli(data),
        random=_text(data, "random", _HEX)[:66],
    )


def _text(data: dict, key: str, pattern: re.Pattern) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _malformed(f'"{key}" is missing or malformed.')
    return value


def _hex_bytes(data: dict, key: str) -> bytes:
    """``_text(data, key, _HEX)`` decoded, with the one pass over the digits that ``from_hex`` makes: a full-size
    message's 128 K digits through ``_HEX`` as well cost more than the rest of the parse."""
    value = data.get(key)
    if isinstance(value, str) and value.startswith("0x"):
        with suppress(CodecError):
            return from_hex(value)
    raise _malformed(f'"{key}" is missing or malformed.')


def _sender(data: dict) -> str:
    try:
        return public_key_hex(parse_public_key(_text(data, "from", _HEX)))
    except CodecError:
        raise _malformed('"from" is not a Maxima public key.') from None


def _timemilli(data: dict) -> int:
    value = data.get("timemilli")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _malformed('"timemilli" must be a number of milliseconds.')
    return value


def inbound_store(
    *, event: MaximaEvent, now_ms: int | None = None, timeout_ms: int | None = None
) -> tuple[InboundEvent, bool]:
    """Store a Maxima message once; a repeat of the same ``msgid`` returns the stored row and ``False``.

    A message whose ``timemilli`` is outside the allowed window is stored as ``rejected`` (visible to staff,
    never processed): Maxima itself has no replay protection. ``timeout_ms``: on PostgreSQL, give up (an
    ``OperationalError``) rather than wait longer for the database (a lock on the table, an overloaded server).
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    stale = abs(now_ms - event.timemilli) > settings.MAXIMA_MAX_AGE_SECONDS * 1000
    row = InboundEvent(
        msgid=event.msgid,
        sender=event.sender,
        recipient_key=event.recipient_key,
        application=event.application,
        data=event.data,
        size=len(event.data),
        timemilli=event.timemilli,
        random=event.random,
        status=InboundEvent.Status.REJECTED if stale else InboundEvent.Status.PENDING,
        last_error=f"stale: sent {(now_ms - event.timemilli) / 1000:.0f} s from now" if stale else "",
    )
    if not _insert_once(row, unique="msgid", timeout_ms=timeout_ms):
        return InboundEvent.objects.get(msgid=event.msgid), False
    if not stale:
        transaction.on_commit(_inbound_drain_soon)
    return row, True


def _insert_once(row: Model, *, unique: str, timeout_ms: int | None = None) -> bool:
    """``_insert_new`` of one row: whether it was inserted (``row.pk`` is set then)."""
    return _insert_new([row], unique=unique, timeout_ms=timeout_ms)[0]


def _insert_new(rows: Sequence[Model], *, unique: str, timeout_ms: int | None = None) -> list[bool]:
    """INSERT each of ``rows`` (of one model) unless a row with the same value of its ``unique`` field is stored
    already, or comes earlier in ``rows``; whether each was inserted (its ``pk`` is set then).

    One statement for all, ``INSERT … VALUES (…), (…) ON CONFLICT (unique) DO NOTHING RETURNING id, unique``: a row
    already there raises nothing, so no savepoint and no read before are needed, in a transaction or not
    (PostgreSQL, and SQLite since 3.35; an older SQLite takes Django's ``save`` of each in a savepoint, catching the
    duplicate). Outside a transaction, on PostgreSQL the bound on waiting (``SET LOCAL``) goes in the same simple
    query, which PostgreSQL runs as one implicit transaction, committed (durably) before it answers; on SQLite it
    runs in a transaction of its own, so it takes the writers' lock (``core/sqlite``) instead of SQLite's busy
    handler. In a transaction, on PostgreSQL, the bound holds for the rest of that transaction."""
    if not rows:
        return []
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: each use of the proxy is a look-up of its own
    field = type(rows[0])._meta.get_field(unique)
    if not db.features.can_return_columns_from_insert:  # SQLite before 3.35: no RETURNING
        inserted = []
        for row in rows:
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                inserted.append(False)
            else:
                inserted.append(True)
        return inserted
    sql, params = _insert_statement(db, rows, field)
    postgresql, outside = db.vendor == "postgresql", not db.in_atomic_block
    bound = f"SET LOCAL statement_timeout = {int(timeout_ms)}; " if timeout_ms and postgresql and outside else ""
    with transaction.atomic() if outside and not postgresql else nullcontext(), db.cursor() as cursor:
        if timeout_ms and postgresql and not outside:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout_ms)])
        # Django's psycopg cursor binds parameters on the client, so the two statements go as one query. The
        # webhook's bounded INSERT of one row is kept prepared (its text is the same every time; in autocommit a
        # statement the session lost is prepared again at once). A run of n rows would be one more statement kept
        # for each n; inside a transaction nothing is prepared here.
        if len(rows) == 1 and bound:
            db.execute_prepared(cursor, sql, params, before=bound)
        else:
            cursor.execute(f"{bound}{sql}", params)
        if bound:
            cursor.nextset()
        returned = dict((value, row_pk) for row_pk, value in cursor.fetchall())
    inserted = []
    for row in rows:  # a value given twice was inserted once: for the first of them
        row_pk = returned.pop(getattr(row, field.attname), None)
        if row_pk is not None:
            row.pk = row_pk
            row._state.adding, row._state.db = False, db.alias
        inserted.append(row_pk is not None)
    return inserted


# The INSERT … ON CONFLICT of ``_insert_new`` for (database, model, unique field, number of rows): its text depends on
# nothing else, and compiling it through the ORM cost more than the rest of a webhook's insert (issue #18).
_INSERTS: dict[tuple[str, type[Model], str, int], str] = {}
_INSERTS_KEPT = 512


def _insert_statement(db: BaseDatabaseWrapper, rows: Sequence[Model], unique: Field) -> tuple[str, list[Any]]:
    """The statement and parameters of ``_insert_new``: the ORM's own ``INSERT`` of ``insert_fields`` (all but the
    auto-made primary key), ``ON CONFLICT (unique) DO NOTHING RETURNING pk, unique``. The text is the compiler's,
    kept per shape when it is a ``VALUES`` list; after that the values are bound as the compiler binds them
    (``insert_params``). A value that is an expression (none of our rows has one) is left to the compiler, every
    time."""
    model = type(rows[0])
    fields = list(insert_fields(model))
    key = (db.alias, model, unique.name, len(rows))
    sql = _INSERTS.get(key)
    if sql is not None:
        try:
            return sql, insert_params(rows, db)
        except ExpressionValue:
            pass
    query = InsertQuery(model)
    query.insert_values(fields, rows)
    [(insert, compiled)] = query.get_compiler(connection=db).as_sql()  # one statement, VALUES for each row
    quoted, pk = (db.ops.quote_name(c) for c in (unique.column, model._meta.pk.column))
    sql = f"{insert} ON CONFLICT ({quoted}) DO NOTHING RETURNING {pk}, {quoted}"
    # Kept only for a VALUES list of plain values, the shape ``insert_params`` binds (PostgreSQL's compiler binds a
    # column's values as one array for UNNEST when no field has a placeholder of its own; a BinaryField has).
    values_list = len(compiled) == len(fields) * len(rows)
    if values_list and not any(hasattr(getattr(row, f.attname), "resolve_expression") for row in rows for f in fields):
        if len(_INSERTS) >= _INSERTS_KEPT:
            _INSERTS.clear()
        _INSERTS[key] = sql
    return sql, list(compiled)


def _inbound_drain_soon() -> None:
    from maxima.tasks import process_inbound_batch

    enqueue_coalesced(process_inbound_batch, window=settings.MNS_MAXIMA_BATCH_WINDOW_MS / 1000)


def _claimable(claim: str, now: datetime) -> Q:
    """A pending event, a claim of our own (the same task redelivered after its worker died) or a claim older than
    the lease (its worker died and the broker lost the task)."""
    return (
        Q(status=InboundEvent.Status.PENDING)
        | Q(status=InboundEvent.Status.PROCESSING, claimed_by=claim)
        | Q(status=InboundEvent.Status.PROCESSING, claimed_at__lt=now - inbound_lease())
    )


def inbound_process(*, event_id: int, claim: str) -> str:
    """Claim one event and run its handler; returns the event's new status, or ``skipped`` if not ours to run.

    The claim is a conditional UPDATE (``_claimable``). Handler and status mark share one transaction.
    """
    now = timezone.now()
    claimed = InboundEvent.objects.filter(_claimable(claim, now), id=event_id).update(
        status=InboundEvent.Status.PROCESSING, claimed_at=now, claimed_by=claim, attempts=F("attempts") + 1
    )
    if not claimed:
        return "skipped"
    return _process_claimed([InboundEvent.objects.get(id=event_id)], claim)[event_id]


def inbound_process_batch(*, claim: str, limit: int, budget: float = 5.0) -> Counter:
    """Claim up to ``limit`` events at a time and process each claimed batch in one transaction, until none is
    left, a batch is not full, one hit a transient error, or ``budget`` seconds are spent; returns how many ended
    in each status (and ``UNFINISHED`` 1 when the time was up with more due).

    A batch is one claim (one UPDATE), one transaction with a savepoint per event (a handler that fails undoes its
    own writes only) and one UPDATE marking the done ones. A worker killed half-way commits nothing of its batch:
    the events stay claimed and are taken again by the same task redelivered, or by any once the lease is over.
    """
    outcomes: Counter = Counter()
    started = time.monotonic()
    # Past half the task's soft limit the rest of a batch goes back to pending, before the limit interrupts a handler.
    stop_at = started + max(budget, settings.CELERY_TASK_SOFT_TIME_LIMIT / 2)
    while True:
        events = _claim_batch(claim, limit)
        # A batch holds its rows' locks (a mailbox's counters) until it commits: on a slow machine it commits after
        # BATCH_SECONDS with what it did, and hands the rest back (RELEASED), to be claimed again at once.
        batch_stop = min(time.monotonic() + BATCH_SECONDS, stop_at)
        ran = Counter(_process_claimed(events, claim, stop_at=batch_stop).values())
        outcomes.update(ran)
        more = len(events) == limit or ran[RELEASED]
        # A transient error (the database blinking) ends the run: the task tries what it left pending again soon.
        if not more or ran[InboundEvent.Status.PENDING]:
            return outcomes
        if time.monotonic() > min(started + budget, stop_at):
            outcomes[UNFINISHED] = 1  # out of time with more due: the caller hands on to a new task at once
            return outcomes


BATCH_SECONDS = 1.0
RELEASED = "released"  # not reached in its batch's time: pending again, unhandled
UNFINISHED = "unfinished"  # the run's time was up with more due (a full batch, or events handed back)


def _claim_batch(claim: str, limit: int) -> list[InboundEvent]:
    """Claim up to ``limit`` events, oldest first: claims to take over first, then pending ones. On PostgreSQL the
    candidates are locked with SKIP LOCKED, so concurrent tasks claim different events without waiting, all in one
    statement (``_CLAIM``); elsewhere (SQLite: one writer at a time) the conditional UPDATE alone decides."""
    now = timezone.now()
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        return _claim_batch_at_once(db, claim, limit, now)
    claimable = _claimable(claim, now)
    with transaction.atomic():
        taken_over = InboundEvent.objects.filter(claimable, status=InboundEvent.Status.PROCESSING)
        pending = InboundEvent.objects.filter(status=InboundEvent.Status.PENDING)
        ids: list[int] = []
        for candidates in (taken_over, pending):  # each an index range of (status, id)
            if len(ids) < limit:
                ids += list(candidates.order_by("id").values_list("id", flat=True)[: limit - len(ids)])
        if not ids:
            return []
        InboundEvent.objects.filter(claimable, id__in=ids).update(
            status=InboundEvent.Status.PROCESSING, claimed_at=now, claimed_by=claim, attempts=F("attempts") + 1
        )
    mine = InboundEvent.objects.filter(id__in=ids, status=InboundEvent.Status.PROCESSING, claimed_by=claim)
    return list(mine.order_by("id"))


_INBOUND_COLUMNS = columns(InboundEvent)
# The claim on PostgreSQL, as one statement (kept prepared): the claims to take over (``_claimable``: this task's
# own, or older than the lease), then the pending events, each an index range of (status, id) locked with SKIP
# LOCKED, the first ``limit`` of them claimed and returned. It was five statements and a commit, each compiled by
# the ORM: a third of a worker's time under the handshake's load (issue #18), where most tasks find one event or
# none. When claims were taken over, pending events past the ``limit`` may have been locked too, and are free again
# as the statement ends: the batch is full then, and its task claims again at once (``inbound_process_batch``).
_CLAIM = """
    WITH taken AS (
        SELECT id FROM {table} WHERE status = '{processing}' AND (claimed_by = %s OR claimed_at < %s)
        ORDER BY id LIMIT {limit} FOR UPDATE SKIP LOCKED
    ), fresh AS (
        SELECT id FROM {table} WHERE status = '{pending}' ORDER BY id LIMIT {limit} FOR UPDATE SKIP LOCKED
    ), chosen AS (
        SELECT id FROM (SELECT id, 0 AS late FROM taken UNION ALL SELECT id, 1 FROM fresh) candidates
        ORDER BY late, id LIMIT {limit}
    )
    UPDATE {table} SET status = '{processing}', claimed_at = %s, claimed_by = %s, attempts = attempts + 1
    WHERE id = ANY(ARRAY(SELECT id FROM chosen))
    RETURNING {columns}
"""


@functools.cache
def _claim_sql(limit: int) -> str:
    """``_CLAIM`` for batches of ``limit``: the limit and the statuses in the text (one text per batch size), so
    that the plan kept is the one for them."""
    return _CLAIM.format(
        table=InboundEvent._meta.db_table,
        limit=int(limit),
        columns=", ".join(_INBOUND_COLUMNS),
        processing=InboundEvent.Status.PROCESSING.value,
        pending=InboundEvent.Status.PENDING.value,
    )


def _claim_batch_at_once(db: BaseDatabaseWrapper, claim: str, limit: int, now: datetime) -> list[InboundEvent]:
    with db.cursor() as cursor:
        db.execute_prepared(cursor, _claim_sql(limit), [claim, now - inbound_lease(), now, claim])
        rows = cursor.fetchall()
    load = loader(db, InboundEvent, _INBOUND_COLUMNS)
    return sorted((load(db, row) for row in rows), key=lambda event: event.id)


OUT_OF_TIME = "will retry: its batch ran out of time"


@dataclass(frozen=True)
class _Outcome:
    status: str
    error: str = ""


def _process_claimed(events: list[InboundEvent], claim: str, *, stop_at: float | None = None) -> dict[int, str]:
    """Run the handlers of claimed events in one transaction and mark each; returns each event's new status. Those
    not reached by ``stop_at`` (``time.monotonic``) go back to pending (``RELEASED``); the first is always run, so
    every batch moves on."""
    if not events:
        return {}
    try:
        with transaction.atomic():
            outcomes: dict[int, _Outcome] = {}
            ordered = sorted(events, key=lambda e: e.id)
            while len(outcomes) < len(ordered):
                event = ordered[len(outcomes)]
                late = bool(outcomes) and stop_at is not None and time.monotonic() > stop_at  # the first is always run
                if late:
                    outcomes[event.id] = _Outcome(InboundEvent.Status.PENDING, OUT_OF_TIME)
                else:
                    outcomes.update(_handle_run(_run_from(ordered[len(outcomes) :])))
            _mark(outcomes, claim)
    except (OperationalError, InterfaceError) as exc:  # the batch's transaction failed as a whole: nothing of it
        _release(events, claim, exc)
        return {event.id: InboundEvent.Status.PENDING for event in events}
    return {event_id: RELEASED if o.error == OUT_OF_TIME else o.status for event_id, o in outcomes.items()}


# The most events one batch handler takes at once: the batch's time bound (BATCH_SECONDS) is checked between runs.
RUN_EVENTS = 25


@dataclass(frozen=True)
class _Run:
    """Consecutive events handled together: one, or several of a type with a batch handler (``register_batch``)."""

    events: list[InboundEvent]
    handler: BatchHandler | None = None
    items: list[tuple[InboundMessage, dict[str, Any]]] | None = None


def _run_from(events: list[InboundEvent]) -> _Run:
    """The run at the head of ``events``: the first event, with those after it that share its batch handler (up to
    ``RUN_EVENTS``). Runs keep the events' order, so a message that changes a mailbox (a block, a delete)
    still comes between the deliveries before and after it."""
    first = _message(events[0])
    found = batch_handler_of(first)
    if found is None:
        return _Run([events[0]])
    handler, body = found
    run, items = [events[0]], [(first, body)]
    for event in events[1:RUN_EVENTS]:
        message = _message(event)
        following = batch_handler_of(message)
        if following is None or following[0] is not handler:
            break
        run.append(event)
        items.append((message, following[1]))
    return _Run(run, handler, items)


def _handle_run(run: _Run) -> dict[int, _Outcome]:
    """The outcome of each event of ``run``: one handled alone, several by their batch handler in one savepoint.
    A run that fails as a whole (the database blinked, a bug in the batch handler) is rolled back and each of its
    events handled alone, as before batches, so one bad event costs no other its delivery."""
    if run.handler is None or len(run.events) == 1:
        return {event.id: _handle(event) for event in run.events}
    try:
        with transaction.atomic():
            results = dispatch_batch(run.handler, run.items or [])
    except Exception:
        logger.warning("a run of %s inbound events failed together; each is handled alone", len(run.events))
        return {event.id: _handle(event) for event in run.events}
    return {
        event.id: _Outcome(InboundEvent.Status.DONE) if result is None else _refused(event, result)
        for event, result in zip(run.events, results, strict=True)
    }


def _refused(event: InboundEvent, exc: Exception) -> _Outcome:
    """The outcome of a message its handler did not take: ignored (not for us) or refused on purpose."""
    if isinstance(exc, Ignored):
        # %r: the reason may quote what the sender wrote, newlines included; one event, one log line.
        logger.info("inbound event %s from %s ignored: %r", event.id, event.application, str(exc)[:300])
        return _Outcome(InboundEvent.Status.IGNORED, str(exc))
    if isinstance(exc, MNSError):  # the handler refused the message on purpose (bad signature, wrong sender, …)
        logger.info("inbound event %s refused by its handler: %s", event.id, exc.code)
        return _Outcome(InboundEvent.Status.IGNORED, f"refused: {exc.code}: {exc}")
    raise TypeError(f"a batch handler answered {type(exc).__name__} for inbound event {event.id}")


def _handle(event: InboundEvent) -> _Outcome:
    """Dispatch one event in a savepoint of the batch's transaction; its outcome, never an exception."""
    try:
        with transaction.atomic():
            dispatch(_message(event))
        return _Outcome(InboundEvent.Status.DONE)
    except MNSError as exc:  # Ignored, or refused on purpose
        return _refused(event, exc)
    except (OperationalError, InterfaceError) as exc:  # the database blinked: the sweep runs it again
        if event.attempts < INBOUND_MAX_ATTEMPTS:
            logger.warning("inbound event %s hit a transient error, left for the sweep: %s", event.id, exc)
            return _Outcome(InboundEvent.Status.PENDING, f"will retry: {type(exc).__name__}: {exc}")
        logger.exception("inbound event %s failed %s times", event.id, event.attempts)
        return _Outcome(InboundEvent.Status.FAILED, str(exc))
    except Exception as exc:  # a bug in a handler: recorded on the event (retry from the admin), never blocks others
        logger.exception("handler for %s failed on inbound event %s", event.application, event.id)
        return _Outcome(InboundEvent.Status.FAILED, f"{type(exc).__name__}: {exc}")


def _mark(outcomes: dict[int, _Outcome], claim: str) -> None:
    """One UPDATE for the events done (the usual case), one per event otherwise (its own error)."""
    now = timezone.now()
    mine = InboundEvent.objects.filter(claimed_by=claim, status=InboundEvent.Status.PROCESSING)
    done = [event_id for event_id, outcome in outcomes.items() if outcome.status == InboundEvent.Status.DONE]
    if done:
        mine.filter(id__in=done).update(status=InboundEvent.Status.DONE, processed_at=now, last_error="")
    for event_id, outcome in outcomes.items():
        if outcome.status == InboundEvent.Status.PENDING:
            # handed back unhandled (its batch ran out of time): that claim was no attempt, so it does not count
            # towards INBOUND_MAX_ATTEMPTS
            untried = {"attempts": F("attempts") - 1} if outcome.error == OUT_OF_TIME else {}
            mine.filter(id=event_id).update(
                status=outcome.status, claimed_by="", claimed_at=None, last_error=outcome.error[:2000], **untried
            )
        elif outcome.status != InboundEvent.Status.DONE:
            mine.filter(id=event_id).update(status=outcome.status, processed_at=now, last_error=outcome.error[:2000])


def _release(events: list[InboundEvent], claim: str, exc: Exception) -> None:
    """The batch's transaction failed (the connection went, the commit failed): its events go back to pending for
    the sweep; if even that cannot be written, the lease gives them to the next task."""
    logger.warning("a batch of %s inbound events rolled back, left for the sweep: %s", len(events), exc)
    try:
        InboundEvent.objects.filter(
            id__in=[event.id for event in events], claimed_by=claim, status=InboundEvent.Status.PROCESSING
        ).update(
            status=InboundEvent.Status.PENDING,
            claimed_by="",
            claimed_at=None,
            last_error=f"will retry: {type(exc).__name__}: {exc}"[:2000],
        )
    except (OperationalError, InterfaceError):
        logger.warning("could not release the batch's claims; they are taken again after the lease")


def _message(event: InboundEvent) -> InboundMessage:
    return InboundMessage(
        event_id=event.id,
        msgid=event.msgid,
        sender=event.sender,
        application=event.application,
        data=bytes(event.data),
        timemilli=event.timemilli,
        received_at=event.received_at,
    )


def sweep_mark_enqueued(*, inbound: Sequence[int] = (), outbound: Sequence[int] = ()) -> None:
    """The sweep is about to enqueue these rows again: it leaves them alone for a while (``selectors._sweep_wait``)."""
    now = timezone.now()
    if inbound:
        InboundEvent.objects.filter(id__in=inbound).update(enqueued_at=now)
    if outbound:
        OutboundMessage.objects.filter(id__in=outbound).update(enqueued_at=now)


def inbound_retry(*, event_id: int) -> bool:
    """Staff asked to run a failed (or ignored) event again."""
    done = InboundEvent.objects.filter(
        id=event_id, status__in=[InboundEvent.Status.FAILED, InboundEvent.Status.IGNORED]
    ).update(status=InboundEvent.Status.PENDING, claimed_by="", claimed_at=None, enqueued_at=timezone.now())
    if done:
        from maxima.tasks import process_inbound

        enqueue_on_commit(process_inbound, event_id)
    return bool(done)


# --- Outbound --------------------------------------------------------------------------------------------------
def _check_destination(destination: str) -> str:
    try:
        if destination.startswith("0x"):
            return public_key_hex(parse_public_key(destination))
        return str(parse_address(destination))
    except CodecError as exc:
        raise DomainError("destination_invalid", f"Not a Maxima address or key: {exc}") from None


@dataclass(frozen=True)
class Outgoing:
    """A Maxima message to queue (``outbound_enqueue_many``)."""

    destination: str
    application: str
    payload: bytes
    idempotency_key: str
    max_attempts: int | None = None
    batchable: bool = False


def outbound_enqueue(
    *,
    destination: str,
    application: str,
    payload: bytes,
    idempotency_key: str,
    max_attempts: int | None = None,
    batchable: bool = False,
) -> OutboundMessage:
    """Queue a Maxima message; the same ``idempotency_key`` queues it only once. Sent after the commit.

    ``batchable``: an ``mns`` message object (a receipt, a verdict, a forward) that may travel in one ``batch``
    message with the others due to the same destination, up to ``BATCH_BYTES`` (a bigger one goes alone); its
    task is then one per destination and window (``enqueue_coalesced``), which sends what is due."""
    outgoing = Outgoing(destination, application, payload, idempotency_key, max_attempts, batchable)
    return outbound_enqueue_many([outgoing])[0]


def outbound_enqueue_many(outgoing: Sequence[Outgoing]) -> list[OutboundMessage]:
    """``outbound_enqueue`` of many messages (the receipts of a run of deliveries) in one statement, ``INSERT …
    ON CONFLICT (idempotency_key) DO NOTHING`` (``_insert_new``), where ``get_or_create`` took four round trips
    for each: the queued rows, in order; a key queued before, or earlier in ``outgoing``, gives the row queued
    first (read in one more statement). Each is checked before any is written: a bad one queues none."""
    now = timezone.now()
    rows = [_outbound_row(item, now) for item in outgoing]
    created = _insert_new(rows, unique="idempotency_key")
    repeats = [row.idempotency_key for row, new in zip(rows, created, strict=True) if not new]
    if repeats:
        queued = OutboundMessage.objects.in_bulk(repeats, field_name="idempotency_key")
        rows = [row if new else queued[row.idempotency_key] for row, new in zip(rows, created, strict=True)]
    fresh = [row for row, new in zip(rows, created, strict=True) if new]
    for destination, application in dict.fromkeys((row.destination, row.application) for row in fresh if row.batchable):
        transaction.on_commit(functools.partial(_batch_send_soon, destination, application))
    for row in fresh:
        if not row.batchable:
            from maxima.tasks import enqueue_send

            enqueue_send(row.id, row.size)
    return rows


def _outbound_row(item: Outgoing, now: datetime) -> OutboundMessage:
    if not _APPLICATION.fullmatch(item.application):
        raise DomainError("application_invalid", "The application name has characters Maxima cannot carry.")
    if len(item.payload) > MAXIMA_MAX_DATA_BYTES:
        raise DomainError(
            "payload_too_large", f"A Maxima message carries at most {MAXIMA_MAX_DATA_BYTES} bytes.", status=413
        )
    return OutboundMessage(
        idempotency_key=item.idempotency_key,
        destination=_check_destination(item.destination),
        application=item.application,
        payload=item.payload,
        size=len(item.payload),
        max_attempts=item.max_attempts or settings.MNS_OUTBOX_MAX_ATTEMPTS,
        next_attempt_at=now,
        enqueued_at=now,  # its task is enqueued after the commit: the sweep leaves it alone for a while
        batchable=item.batchable and batch.packed_size([len(item.payload)]) <= BATCH_BYTES,
    )


def _hand_on(message: OutboundMessage) -> None:
    """After a send of ``message`` (a batchable one) is over, however it ended: send what its claim held back meanwhile
    (one batch to a destination at a time), if anything is due."""
    if message.batchable and _batch_due(message.destination, message.application, timezone.now()).exists():
        _batch_send_soon(message.destination, message.application)


def _batch_send_soon(destination: str, application: str) -> None:
    from maxima.tasks import send_outbound_batch

    enqueue_coalesced(send_outbound_batch, destination, application, window=settings.MNS_MAXIMA_BATCH_WINDOW_MS / 1000)


def backoff(attempts: int) -> timedelta:
    """Exponential, capped, with ±25 % jitter so that many failed sends do not all come back at once."""
    base = min(settings.MNS_OUTBOX_BACKOFF_MAX_SECONDS, settings.MNS_OUTBOX_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=base * random.uniform(0.75, 1.25))


def outbound_send(*, message_id: int, client: MinimaRPC | None = None, timeout: float | None = None) -> str:
    """Send one due message through ``client``, else through the node of the pool this attempt falls to
    (``node.send_node``, its RPC waiting ``timeout``); returns the message's new status, or ``skipped``."""
    now = timezone.now()
    claimable = Q(status=OutboundMessage.Status.QUEUED, next_attempt_at__lte=now) | stale_sending(now)
    claimed = OutboundMessage.objects.filter(claimable, id=message_id).update(
        status=OutboundMessage.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return "skipped"
    message = OutboundMessage.objects.get(id=message_id)
    try:
        if client is None:
            node = send_node(message_id=message.id, attempt=message.attempts, application=message.application)
            client = node_client(timeout=timeout, node=node)
        joined = _batch_claim(message.destination, message.application, now, lead=message) if message.batchable else []
    except Exception as exc:  # nothing was sent; what the batch's claim took rolled back with it
        _released([message], exc, tried=False)
        raise
    status = _send(client, sorted([message, *joined], key=lambda m: m.id))[0]  # one outcome for all of them
    _hand_on(message)
    return status


def outbound_send_batch(
    *, destination: str, application: str, client: MinimaRPC | None = None, timeout: float | None = None
) -> tuple[int, bool]:
    """Send the batchable messages due to ``destination`` in one Maxima message (alone: in its own form), through
    ``client``, else through the node of the pool its first message falls to; returns how many were sent, and
    whether more are due once it was sent (the batch was full, or more came meanwhile).

    One batch to a destination at a time: while one is in flight (a batch task's, or a retry's in ``outbound_send``)
    this sends nothing, and that one, once sent, hands on to what is due. A sender of many threads would otherwise
    send what comes in a few at a time, in as many concurrent Maxima messages to the same node, where one after the
    other carries them in a few. A send that raised (a fault of the gateway's own, not the node's answer) puts what
    it carried back in the queue and hands on (``_released``), so the next batch is not held for the claim's
    lease."""
    now = timezone.now()
    if _sending_here(destination, application, now) or selectors.batch_in_flight(destination, application, now):
        return 0, False
    batch = _batch_claim(destination, application, now)
    if not batch:
        return 0, False
    if client is None:
        lead = batch[0]
        try:
            client = node_client(
                timeout=timeout, node=send_node(message_id=lead.id, attempt=lead.attempts, application=application)
            )
        except Exception as exc:  # nothing was sent
            _released(batch, exc, tried=False)
            raise
    statuses = _send(client, batch)
    sent = statuses.count(OutboundMessage.Status.SENT)
    return sent, _batch_due(destination, application, timezone.now()).exists()


BATCH_MAX_MESSAGES = 500


# The batchable sends this process has at its node right now: (destination, application) → the sending thread and
# the claim's time. A fast "yes" for ``selectors.batch_in_flight`` (a batch task that finds its destination's batch
# in flight is a good part of a busy sender's tasks); "no" still asks the database, which knows the other processes'
# sends.
_sending: dict[tuple[str, str], tuple[int, datetime]] = {}
# Two threads may be at the node for one destination (a retry, a stale claim taken again). Reentrant: an exception
# raised into the thread between taking it and entering the block (a soft time limit) cannot leave it held.
_sending_lock = threading.RLock()


def _sending_here(destination: str, application: str, now: datetime) -> bool:
    """Whether a thread of this process is sending a batchable message to ``destination`` whose claim is younger
    than the shortest lease: its rows are claimed and not stale, so ``selectors.batch_in_flight`` would say yes."""
    held = _sending.get((destination, application))
    return held is not None and now - held[1] < selectors.outbound_lease()  # the shortest lease of any size


@contextmanager
def _at_the_node(lead: OutboundMessage) -> Iterator[None]:
    """Around the node's send of ``lead`` (and what travels with it), claimed and not yet marked: this process's
    ``_sending`` entry for its destination while the node has it, when it is batchable. Only while the node has it:
    before the claim and from the mark on (a hand-on, a callback's enqueue), the database alone answers."""
    if not lead.batchable:
        yield
        return
    key, mine = (lead.destination, lead.application), (threading.get_ident(), lead.claimed_at)
    try:
        with _sending_lock:
            _sending[key] = mine
        yield
    finally:
        with _sending_lock:
            if _sending.get(key) == mine:  # another thread's send to it, begun meanwhile, keeps its own entry
                del _sending[key]


def _batch_due(destination: str, application: str, now: datetime) -> QuerySet:
    return OutboundMessage.objects.filter(
        status=OutboundMessage.Status.QUEUED,
        next_attempt_at__lte=now,
        batchable=True,
        destination=destination,
        application=application,
    )


def _batch_claim(
    destination: str, application: str, now: datetime, *, lead: OutboundMessage | None = None
) -> list[OutboundMessage]:
    """Claim the batchable messages due to ``destination``, oldest first, as many as fit in ``BATCH_BYTES`` with
    ``lead`` (already claimed) in front. Locked with SKIP LOCKED on PostgreSQL, so two senders never take the same
    one; the conditional UPDATE decides elsewhere, and the claim's time tells ours."""
    sizes = [lead.size] if lead is not None else []
    db = connections[DEFAULT_DB_ALIAS]
    postgresql = db.vendor == "postgresql"
    with transaction.atomic():
        if postgresql:  # the statements kept prepared (_BATCH_DUE, _BATCH_CLAIM): compiled by the ORM, a fourth of
            # a busy sender's CPU (issue #18)
            with db.cursor() as cursor:
                db.execute_prepared(cursor, _BATCH_DUE, [now, destination, application])
                due = cursor.fetchall()
        else:
            due = _batch_due(destination, application, now).order_by("id").values_list("id", "size")
            due = due[:BATCH_MAX_MESSAGES]
        chosen = []
        for ident, size in due:
            if batch.packed_size([*sizes, size]) > BATCH_BYTES:
                break
            sizes.append(size)
            chosen.append(ident)
        if not chosen:
            return []
        if postgresql:
            with db.cursor() as cursor:
                claim_params = [OutboundMessage.Status.SENDING, now, chosen, OutboundMessage.Status.QUEUED]
                cursor.execute(_BATCH_CLAIM, claim_params)
                load = loader(db, OutboundMessage, _OUTBOUND_COLUMNS)
                return sorted((load(db, row) for row in cursor.fetchall()), key=lambda message: message.id)
        OutboundMessage.objects.filter(id__in=chosen, status=OutboundMessage.Status.QUEUED).update(
            status=OutboundMessage.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
        )
    mine = OutboundMessage.objects.filter(id__in=chosen, status=OutboundMessage.Status.SENDING, claimed_at=now)
    return list(mine.order_by("id"))


_OUTBOUND_COLUMNS = columns(OutboundMessage)
_OUTBOUND = OutboundMessage._meta.db_table
# ``_batch_due``'s rows, oldest first, locked with SKIP LOCKED; then the claim of those chosen, returning them.
# The status is in the text, as the partial index on due batches (outbound_batch_due) names it: a generic plan, made
# without the parameters' values, could not use that index.
_BATCH_DUE = (
    f"SELECT id, size FROM {_OUTBOUND} WHERE status = '{OutboundMessage.Status.QUEUED.value}' AND batchable "  # noqa: S608
    f"AND next_attempt_at <= %s AND destination = %s AND application = %s "
    f"ORDER BY id LIMIT {BATCH_MAX_MESSAGES} FOR UPDATE SKIP LOCKED"
)
_BATCH_CLAIM = (
    f"UPDATE {_OUTBOUND} SET status = %s, claimed_at = %s, attempts = attempts + 1 "  # noqa: S608
    f"WHERE id = ANY(%s) AND status = %s RETURNING {', '.join(_OUTBOUND_COLUMNS)}"
)


def _send(client: MinimaRPC, messages: list[OutboundMessage]) -> list[str]:
    """Send claimed messages to one destination as one Maxima message (a batch when more than one); each gets the
    outcome, and each sent one its callbacks."""
    lead = messages[0]
    alone = len(messages) == 1
    payload = bytes(lead.payload) if alone else batch.pack([bytes(m.payload) for m in messages])
    try:
        with _at_the_node(lead):
            result = _deliver(client, lead, payload)
    except DeliveryFailed as exc:
        return _failed(messages, exc.error, permanent=exc.permanent)
    except AddressUnresolved as exc:
        return _unresolved(messages, str(exc))
    except (NodeUnreachable, NodeStartingUp, NodeAuthError) as exc:
        return _failed(messages, str(exc), permanent=False)
    except (RPCError, CodecError) as exc:  # the node refused the command itself: retrying cannot help
        return _failed(messages, str(exc), permanent=True)
    except Exception as exc:
        _released(messages, exc, tried=True)
        raise
    try:
        with transaction.atomic():
            marked = _still_ours(messages).update(
                status=OutboundMessage.Status.SENT,
                msgid=result.msgid,
                sent_at=timezone.now(),
                last_error="",
                unresolved_since=None,
            )
            mine = messages
            if marked < len(messages):  # some were claimed again meanwhile (``_still_ours``): the other send has them
                ours = OutboundMessage.objects.filter(id__in=[m.id for m in messages], msgid=result.msgid)
                kept = set(ours.values_list("id", flat=True))
                mine = [m for m in messages if m.id in kept]
            for message in mine:
                _notify_sent(message)
    except Exception as exc:  # the node sent it, but the mark did not commit: sent again later (the receiver drops it)
        _released(messages, exc, tried=False)
        raise
    if len(messages) > 1:
        logger.info("sent %s messages in one batch of %s bytes", len(messages), len(payload))
    sent = {m.id for m in mine}
    return [OutboundMessage.Status.SENT if m.id in sent else "skipped" for m in messages]


def _still_ours(messages: list[OutboundMessage]) -> QuerySet:
    """The rows of ``messages`` still held by the claims they were sent under. A send may outlive its claim's lease
    (the sender's thread pool kills no task at its time limit, and a statement may wait up to its timeout): the
    sweep then claims the rows again, and the outcome of whichever send finishes second must not overwrite the other's.
    Every outcome is written through this."""
    held = Q(pk__in=[])
    for claimed_at, group in _by(messages, lambda m: m.claimed_at).items():
        held |= Q(id__in=[m.id for m in group], claimed_at=claimed_at)
    return OutboundMessage.objects.filter(held, status=OutboundMessage.Status.SENDING)


# What other apps learn of the outbox: a callback per idempotency-key prefix, run once a message is sent.
SentCallback = Callable[[OutboundMessage], None]
_sent_callbacks: dict[str, SentCallback] = {}


def on_outbound_sent(prefix: str, callback: SentCallback) -> None:
    """Call ``callback(message)`` when an outbound message whose idempotency key starts with ``prefix`` is sent.

    Apps register in ``AppConfig.ready()``. The transport calls it once per message, in the transaction that marks
    the message sent (in a savepoint of its own), so its writes commit with the mark. If it raises, the error is
    logged, its writes are rolled back and the message stays sent (it is never sent twice for a callback's sake):
    an app that must not miss a mark also sweeps for sent messages it did not mark (``mailboxes`` does).
    """
    _sent_callbacks[prefix] = callback


def _notify_sent(message: OutboundMessage) -> None:
    for prefix, callback in _sent_callbacks.items():
        if not message.idempotency_key.startswith(prefix):
            continue
        try:
            with transaction.atomic():
                callback(message)
        except Exception:  # a callback's failure must not undo the send
            logger.exception("the sent callback for %r failed on outbound message %s", prefix, message.id)


def _deliver(client: MinimaRPC, message: OutboundMessage, payload: bytes):
    if message.destination.startswith("0x"):
        return client.maxima_send(
            application=message.application, data=payload, publickey=from_hex(message.destination)
        )
    return client.maxima_send(application=message.application, data=payload, to=message.destination)


def _failed(messages: list[OutboundMessage], error: str, *, permanent: bool) -> list[str]:
    """Mark the messages one send failed (one Maxima message: alone, or a batch) and return each one's status: failed
    for good when ``permanent`` or its attempts are used up, else queued again after its backoff. One statement for
    each outcome and attempt count: the messages that travelled together wait the same backoff (one draw of its
    jitter), so they travel together again."""
    error = error[:2000]
    now = timezone.now()
    outcomes = _by(messages, lambda m: (True, 0) if permanent or _used_up(m) else (False, m.attempts))
    for (given_up, attempts), group in outcomes.items():
        if given_up:
            _still_ours(group).update(status=OutboundMessage.Status.FAILED, last_error=error)
            for message in group:
                logger.warning(
                    "outbound message %s failed for good after %s attempts: %s", message.id, message.attempts, error
                )
        else:
            _still_ours(group).update(
                status=OutboundMessage.Status.QUEUED, last_error=error, next_attempt_at=now + backoff(attempts)
            )
    failed = {m.id for (given_up, _), group in outcomes.items() if given_up for m in group}
    return [OutboundMessage.Status.FAILED if m.id in failed else OutboundMessage.Status.QUEUED for m in messages]


def _used_up(message: OutboundMessage) -> bool:
    """Whether its budget of tries is spent: every try counts but those that did not (``uncounted``)."""
    return message.attempts - message.uncounted >= message.max_attempts


def _released(messages: list[OutboundMessage], exc: Exception, *, tried: bool) -> None:
    """A send raised: not the node's answer but a fault of the gateway's own. What it carried goes back to the queue
    after its backoff rather than staying claimed until the lease ends, where it would hold every batch to its
    destination (``selectors.batch_in_flight``), and what that held back is handed on.

    Raised while the node had it (``tried``: an error the client does not name, a task's soft time limit), the try
    counts, as a timeout's does: the node may or may not have sent it. Raised before the node had it (picking the
    node, claiming the batch) or after it answered that it sent it (the database failed under the mark), the try does
    not count (``uncounted``), and leaves at least one try (a row taken again after its lease has made one past its
    budget already): a message must not end as failed for good for the gateway's fault. A fault that repeats must
    still end, so only a message's first ``RELEASED_UNCOUNTED_MAX`` such tries go uncounted, whatever its budget.
    Only the exception's type is kept: a database error's text can quote a row. If even this cannot be written, the
    lease frees them."""
    error = f"the send raised {type(exc).__name__}"
    logger.warning("a send of %s outbound message(s) raised %s; queued again", len(messages), type(exc).__name__)
    try:
        if not tried:
            uncounted = [m for m in messages if m.released < RELEASED_UNCOUNTED_MAX]
            if uncounted:
                _still_ours(uncounted).update(
                    uncounted=Greatest(F("uncounted") + 1, F("attempts") - F("max_attempts") + 1),
                    released=F("released") + 1,
                )
                for message in uncounted:
                    message.uncounted = max(message.uncounted + 1, message.attempts - message.max_attempts + 1)
                    message.released += 1
        _failed(messages, error, permanent=False)
        _hand_on(messages[0])
    except (DatabaseError, InterfaceError) as failed:
        logger.warning("could not queue the send's messages again (%s); the lease frees them", type(failed).__name__)


# How many of a message's sends that raised outside the node's hands go uncounted (``_released``).
RELEASED_UNCOUNTED_MAX = 12


def _by(messages: list[OutboundMessage], key: Callable[[OutboundMessage], Any]) -> dict[Any, list[OutboundMessage]]:
    """``messages`` grouped by ``key``, in order."""
    groups: dict[Any, list[OutboundMessage]] = {}
    for message in messages:
        groups.setdefault(key(message), []).append(message)
    return groups


UNRESOLVED = "waiting for the MAX# address to resolve again: its MLS does not know it (the node says %r)"
UNRESOLVED_WAIT_MAX_SECONDS = 300


def _unresolved(messages: list[OutboundMessage], error: str) -> list[str]:
    """The destination's ``MAX#`` address does not resolve through its MLS: the MLS node restarted and the owner's
    node has not registered with it again yet (about 4.5 minutes on real nodes). Waiting it out is the only cure,
    so the try does not count against the attempt budget (which is for failures a retry might not cure: it is
    ``uncounted``, and ``attempts`` still counts every try), and the message is tried again after
    ``MNS_OUTBOX_UNRESOLVED_WAIT_SECONDS``, then after half as long as it has waited so far (at most 5 minutes),
    until it has not resolved for ``MNS_OUTBOX_UNRESOLVED_GIVE_UP_SECONDS``. One statement for the messages that
    have waited since the same moment (a batch, usually all of them)."""
    now = timezone.now()
    reason = UNRESOLVED % error
    statuses: dict[int, str] = {}
    for since, group in _by(messages, lambda m: m.unresolved_since or now).items():
        waited = (now - since).total_seconds()
        if waited > settings.MNS_OUTBOX_UNRESOLVED_GIVE_UP_SECONDS:
            gave_up = _failed(group, f"gave up after {waited:.0f} s {reason}", permanent=True)
            statuses |= dict(zip((m.id for m in group), gave_up, strict=True))
            continue
        wait = min(max(settings.MNS_OUTBOX_UNRESOLVED_WAIT_SECONDS, waited / 2), UNRESOLVED_WAIT_MAX_SECONDS)
        _still_ours(group).update(
            status=OutboundMessage.Status.QUEUED,
            uncounted=F("uncounted") + 1,
            last_error=reason,
            unresolved_since=since,
            next_attempt_at=now + timedelta(seconds=wait),
        )
        statuses |= dict.fromkeys((m.id for m in group), OutboundMessage.Status.QUEUED)
        logger.info("%s outbound message(s) from %s on wait for their MAX# address to resolve", len(group), group[0].id)
    return [statuses[m.id] for m in messages]


def outbound_retry(*, message_id: int, destination: str | None = None) -> bool:
    """Staff (or the owner, asking again) want a failed or cancelled message tried again, now, with a fresh attempt
    budget; to ``destination`` when given (its recipient is somewhere else now)."""
    changes: dict[str, Any] = {"destination": _check_destination(destination)} if destination else {}
    done = OutboundMessage.objects.filter(
        id=message_id, status__in=[OutboundMessage.Status.FAILED, OutboundMessage.Status.CANCELLED]
    ).update(**_afresh(), **changes)
    if done:
        from maxima.tasks import enqueue_send

        enqueue_send(message_id, selectors.outbound_sizes([message_id]).get(message_id, 0))
    return bool(done)


def _afresh() -> dict[str, Any]:
    """The columns of a message queued again now with a fresh attempt budget (a retry, a redirect): no tries made,
    none uncounted, the budget it was enqueued with."""
    now = timezone.now()
    return {
        "status": OutboundMessage.Status.QUEUED,
        "attempts": 0,
        "uncounted": 0,
        "released": 0,
        "next_attempt_at": now,
        "enqueued_at": now,
        "unresolved_since": None,
    }


def outbound_nudge(*, destination: str, limit: int = 100) -> int:
    """The destination answers again (a peer's message arrived): what waits for it in the outbox after failed tries
    (its node was away) goes now rather than at the end of its backoff; returns how many (usually none: one small
    query)."""
    now = timezone.now()
    waiting = list(
        OutboundMessage.objects.filter(
            destination=destination,
            status=OutboundMessage.Status.QUEUED,
            attempts__gte=1,
            next_attempt_at__gt=now,
        ).values_list("id", "size")[:limit]
    )
    if not waiting:
        return 0
    OutboundMessage.objects.filter(id__in=[ident for ident, _ in waiting], status=OutboundMessage.Status.QUEUED).update(
        next_attempt_at=now
    )
    from maxima.tasks import enqueue_send

    for message_id, size in waiting:
        enqueue_send(message_id, size)
    return len(waiting)


def outbound_redirect(*, old: str, new: str, limit: int = 500) -> int:
    """The recipient at ``old`` is at ``new`` now (a node that moved: its owner said so in a message Maxima
    authenticated, or set it): what waits for ``old`` in the outbox, and what failed for good there, goes to ``new``
    now with a fresh attempt budget; returns how many. A message being sent right now is left to finish."""
    new = _check_destination(new)
    if new == old:
        return 0
    movable = [OutboundMessage.Status.QUEUED, OutboundMessage.Status.FAILED]
    rows = list(OutboundMessage.objects.filter(destination=old, status__in=movable).values_list("id", "size")[:limit])
    if not rows:
        return 0
    OutboundMessage.objects.filter(id__in=[ident for ident, _ in rows], destination=old, status__in=movable).update(
        destination=new, **_afresh()
    )
    from maxima.tasks import enqueue_send

    for message_id, size in rows:
        enqueue_send(message_id, size)
    logger.info("redirected %s outbound message(s) to a moved recipient", len(rows))
    return len(rows)


def outbound_cancel(*, message_id: int) -> bool:
    return bool(
        OutboundMessage.objects.filter(id=message_id, status=OutboundMessage.Status.QUEUED).update(
            status=OutboundMessage.Status.CANCELLED
        )
    )


# --- Node supervision ------------------------------------------------------------------------------------------
def node_supervise(*, client: MinimaRPC, node: int = 1) -> NodeState:
    """Read node ``node``'s status and identity (row ``node``; 1, the identity node, unless said), and make sure
    it posts MAXIMA events to our hook: every node of a pool posts to the same one, feeding the same inbox.

    Hooks survive a node restart on real nodes, but not a new data folder or a node swapped underneath us; and an
    old hook of ours (a rotated secret) would make the node wait on a 404 before every event, so it is removed.
    """
    state, _ = NodeState.objects.get_or_create(pk=node)
    now = timezone.now()
    state.checked_at = now
    try:
        status = client.status()
        info = client.maxima_info()
        state.webhook = _ensure_hook(client, state, now)
    except MNSError as exc:
        state.reachable, state.error = False, str(exc)[:2000]
        state.save()
        logger.warning("the Minima node %s is not usable: %s", node, exc)
        return state
    state.reachable, state.error, state.last_ok_at = True, "", now
    state.version = str(status.get("version", ""))[:64]
    block = (status.get("chain") or {}).get("block")
    state.block = int(block) if str(block).isdigit() else None
    state.publickey = info.publickey_hex
    state.mls, state.localidentity, state.p2pidentity = info.mls, info.localidentity, info.p2pidentity
    if node == 1:  # the published address is the identity node's
        _check_address(client, state, now)
    state.save()
    return state


def _check_address(client: MinimaRPC, state: NodeState, now: datetime) -> None:
    """Whether the gateway's published ``MAX#`` address resolves through its MLS, as any sender's node would look
    it up (``maxextra action:getaddress``). It does not for minutes after the node restarts (fixture 178b): health
    says so, and the gateway hands out its direct address meanwhile (``selectors.gateway_address``)."""
    address = settings.MNS_MAXIMA_ADDRESS
    if not address.startswith("MAX#"):
        state.address_resolves = state.address_dark_since = None
        return
    try:
        resolves = client.maxextra_getaddress(address) is not None
    except MNSError as exc:  # the lookup itself failed (a timeout, a read-only RPC user): nothing learnt
        logger.info("the gateway's MAX# address could not be looked up: %s", exc)
        return
    if not resolves and state.address_dark_since is None:
        logger.warning("the gateway's MAX# address does not resolve through its MLS")
    state.address_resolves, state.address_checked_at = resolves, now
    state.address_dark_since = None if resolves else (state.address_dark_since or now)


def _ensure_hook(client: MinimaRPC, state: NodeState, now: object) -> str:
    url = hook_url()
    entry = f"MAXIMA#{url}"
    ours = f"MAXIMA#{settings.MNS_HOOK_BASE_URL.rstrip('/')}/maxima/hook/"
    hooks = client.webhooks_list()
    for old in hooks:
        if old.startswith(ours) and old != entry:
            client.webhooks_remove(old)
    if entry not in hooks:
        client.webhooks_add(hook=url, filter="MAXIMA")
        state.webhook_registered_at = now
        logger.info("registered the webhook with the node")
    return entry.replace(settings.MAXIMA_HOOK_SECRET, "<secret>")


# --- Retention -------------------------------------------------------------------------------------------------
def transport_purge(*, older_than: timedelta, budget: float = 6.0) -> tuple[int, int]:
    """Delete finished inbound events and outbound messages: they hold copies of ciphertexts (and handshake
    codes) that the mailbox's own retention and deletes must not leave behind. An inbound event is kept past
    the freshness window, so a replay of its msgid is still refused as stale after its row is gone."""
    cutoff = timezone.now() - max(older_than, timedelta(seconds=2 * settings.MAXIMA_MAX_AGE_SECONDS))
    finished_in = [InboundEvent.Status.DONE, InboundEvent.Status.IGNORED, InboundEvent.Status.REJECTED]
    finished_out = [OutboundMessage.Status.SENT, OutboundMessage.Status.FAILED, OutboundMessage.Status.CANCELLED]
    inbound = InboundEvent.objects.filter(status__in=finished_in, received_at__lt=cutoff)
    outbound = OutboundMessage.objects.filter(status__in=finished_out, created_at__lt=cutoff)
    return _delete_in_batches(inbound, budget=budget), _delete_in_batches(outbound, budget=budget)


def _delete_in_batches(rows: QuerySet, *, budget: float, size: int = 2000) -> int:
    """Delete ``rows`` a batch at a time for at most ``budget`` seconds (a task's run time is bounded); the beat
    run after deletes the rest. Returns how many were deleted."""
    deadline, deleted = time.monotonic() + budget, 0
    while time.monotonic() < deadline:
        batch = list(rows.order_by("id").values_list("id", flat=True)[:size])
        if not batch:
            break
        deleted += rows.model.objects.filter(id__in=batch).delete()[0]
    return deleted


SAMPLES_KEPT = timedelta(hours=48)


def queue_sample(*, every: int, now: datetime | None = None) -> QueueSample | None:
    """Record the queues' depth and oldest age, unless a sample was taken less than ``every`` seconds ago; drop
    samples older than 48 hours. Safe to run twice (at worst two samples close together)."""
    now = now or timezone.now()
    if QueueSample.objects.filter(at__gt=now - timedelta(seconds=every), at__lte=now).exists():
        return None
    sample = QueueSample.objects.create(at=now, **queue_figures(now=now))
    QueueSample.objects.filter(at__lt=now - SAMPLES_KEPT).delete()
    return sample
