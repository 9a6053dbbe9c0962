"""Deliveries: checked, stored once, counted against the quota, logged for the peers, and answered with a receipt.

Every refusal raises before anything is written (a ``DomainError`` with its own code), and the writes that must
hold together share one transaction. The quota is kept by the database: a delivery reserves its space with one
conditional UPDATE of one of the mailbox's counter shards (``count + 1 <= max AND bytes + n <= max``, within the
shard's allowance, see ``counters``), so concurrent deliveries can never overfill a mailbox, and every delete gives
back exactly what it deleted, to the shard that counted it."""

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone

from core import ratelimit
from core.errors import DomainError
from core.rows import insert_fields, insert_params
from federation import selectors as federation_selectors
from federation import services as federation
from mailboxes import selectors
from mailboxes.models import Mailbox, MailboxCounter, Message
from mailboxes.services import counters
from mailboxes.services.common import NameStatus, _detail, _ms
from mailboxes.services.forwarding import _forward_queue
from mailboxes.services.reading import retention_days
from maxima.routing import Ignored, InboundMessage
from maxima.services import Outgoing, outbound_enqueue_many
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.mailbox import (
    APPLICATION,
    SCHEMES,
    Deliver,
    MailboxMessageInvalid,
    Receipt,
    delivery_id_of,
    reply_to_of,
)
from mns_client.protocol.names import NameRefused, normalise
from registry.models import NameRecord

logger = logging.getLogger(__name__)


REFUSAL_STATUS = {
    "malformed": 400,
    "unknown_name": 404,
    "suspended": 403,
    "bad_scheme": 400,
    "too_large": 413,
    "blocked": 403,
    "rate_limited": 429,
    "over_quota": 507,
    "owner_changed": 409,
}


class DeliveryRefused(DomainError):
    """A delivery the gateway will not store; ``code`` is the receipt's ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail, status=REFUSAL_STATUS[reason])


@dataclass(frozen=True)
class Stored:
    message: Message
    created: bool  # False: this sender's delivery id was stored before


@dataclass(frozen=True)
class Delivery:
    """One delivery as ``delivery_store`` takes it (for ``deliveries_store``)."""

    to: str
    delivery_id: str
    scheme: str
    ciphertext: bytes
    sender_key: str
    sender_verified: bool
    owner: str | None = None  # the owner the letter was sealed for, if the sender named it


@dataclass(frozen=True)
class _Checked:
    """A delivery that passed every check but the quota: what its write needs."""

    delivery: Delivery
    mailbox: Mailbox


def delivery_store(
    *,
    to: str,
    delivery_id: str,
    scheme: str,
    ciphertext: bytes,
    sender_key: str,
    sender_verified: bool,
    owner: str | None = None,
) -> Stored:
    """Store one delivery, or refuse it (``DeliveryRefused``, nothing written) with the receipt's reason.

    Checks, in order: the name has a mailbox here (``unknown_name``) that is not suspended (``suspended``); the
    same sender's ``delivery_id`` stored before is answered as stored again, before any other check; then the
    scheme (``bad_scheme``), the size (``too_large``), the sender (``blocked``: staff's gateway-wide list, the
    mailbox's block list, or not on its non-empty allow list), the per-sender rate (``rate_limited``) and the
    quota (``over_quota``). A REST submission (``sender_verified=False``) never matches a Maxima delivery. A
    sender that names the ``owner`` it encrypted for is refused (``owner_changed``) when the name changed hands
    since its lookup: a letter sealed for the old owner never lands in the new owner's mailbox.

    Two statements on PostgreSQL: one read (``selectors.delivery_targets``) and one write (``_write_at_once``);
    outside a transaction the write is its own, so it costs no ``BEGIN`` or ``COMMIT`` round trip either.
    """
    delivery = Delivery(to, delivery_id, scheme, ciphertext, sender_key, sender_verified, owner)
    [target] = _targets([delivery])
    return _stored(delivery, target)


def _stored(
    delivery: Delivery, target: selectors.DeliveryTarget | DeliveryRefused, *, over_rate: bool | None = None
) -> Stored:
    """``delivery_store`` once its target is read: every check, then the write. ``over_rate``: the delivery was
    counted against its rate already, and whether that count was over the limit (None: count it here)."""
    if isinstance(target, DeliveryRefused):
        raise target
    checked = _checked(delivery, target)
    if isinstance(checked, Stored):
        return checked
    if over_rate is None:
        [refused] = _rate_refusals([checked])
    else:
        refused = _rate_refused() if over_rate else None
    if refused is not None:
        raise refused
    return _written(checked)


def deliveries_store(deliveries: Sequence[Delivery]) -> list[Stored | DeliveryRefused]:
    """Store many deliveries in one transaction (the caller's, else one of their own), each checked and stored as
    ``delivery_store`` does; returns, in the given order, each one's ``Stored`` or its refusal (which wrote nothing).

    The writes go in the order of their mailboxes' ids (in the given order within one mailbox). Batches that share
    mailboxes take the mailboxes' rows and then their counter shards in the same order (``counters.counters_lock``),
    and take them before they write a message into any of them, so they cannot deadlock on one another nor with
    single deliveries, nor with a peer's replicated batch (it takes the same rows of the mailboxes its ops name, in
    the same order, before it applies any: ``mailboxes.replication.counters_lock``).

    On PostgreSQL (``_run_written``) the rows of all the run's mailboxes are taken once, up front, and the run's
    messages are written together in one statement, without a savepoint (``_run_write``). With those rows held
    nobody else can store a message in these mailboxes, so a write cannot meet a duplicate: those of its own run are
    given the first one's outcome before the writes (``_writes``), and those another transaction stored before the
    locks were granted are read right after them. A refusal (``over_quota``) is decided before anything is written.
    Anything else fails the caller's transaction, as it would have failed the write's savepoint and then the caller.
    """
    outcomes: list[Stored | DeliveryRefused | None] = [None] * len(deliveries)
    passed: list[tuple[int, _Checked]] = []
    with transaction.atomic():
        for index, (delivery, target) in enumerate(zip(deliveries, _targets(deliveries), strict=True)):
            if isinstance(target, DeliveryRefused):
                outcomes[index] = target
                continue
            try:
                checked = _checked(delivery, target)
            except DeliveryRefused as refused:
                outcomes[index] = refused
                continue
            if isinstance(checked, Stored):
                outcomes[index] = checked
            else:
                passed.append((index, checked))
        ready: list[tuple[int, _Checked]] = []
        for (index, checked), refused in zip(passed, _rate_refusals([c for _, c in passed]), strict=True):
            if refused is None:
                ready.append((index, checked))
            else:
                outcomes[index] = refused
        ready.sort(key=lambda item: (item[1].mailbox.id, item[0]))
        _writes(ready, outcomes)
    return [outcome for outcome in outcomes if outcome is not None]


def _writes(ready: list[tuple[int, _Checked]], outcomes: list[Stored | DeliveryRefused | None]) -> None:
    """``deliveries_store``'s writes, every check passed, in mailbox order: on PostgreSQL ``_run_written``, and
    ``_written`` for each it left (every one, elsewhere). A delivery given twice gets the first one's outcome
    (stored: stored before), as a delivery stored before is answered before any other check."""
    first: dict[tuple[int, str, bool, str], int] = {}
    again: list[tuple[int, int]] = []
    unique = []
    for index, checked in ready:
        key = _delivery_key(checked)
        if key in first:
            again.append((index, first[key]))
        else:
            first[key] = index
            unique.append((index, checked))
    if connection.vendor == "postgresql" and unique:
        _run_written(unique, outcomes)
    for index, checked in unique:
        if outcomes[index] is None:
            try:
                outcomes[index] = _written(checked)
            except DeliveryRefused as refused:
                outcomes[index] = refused
    for index, earlier_index in again:
        earlier = outcomes[earlier_index]
        outcomes[index] = Stored(message=earlier.message, created=False) if isinstance(earlier, Stored) else earlier


def _delivery_key(checked: _Checked) -> tuple[int, str, bool, str]:
    """What makes a delivery one (the unique ``message_delivery_once``): mailbox, sender, verified, delivery id."""
    delivery = checked.delivery
    return (checked.mailbox.id, delivery.sender_key, delivery.sender_verified, delivery.delivery_id)


def _run_written(ready: list[tuple[int, _Checked]], outcomes: list[Stored | DeliveryRefused | None]) -> None:
    """``deliveries_store``'s writes on PostgreSQL, in its transaction: the counters of every mailbox of the run
    locked at once (two statements), a shard with room picked for each delivery on the locked rows
    (``counters.room_find``, kept up to date here) or ``over_quota``, then every message of the run written in one
    statement (``_run_write``). ``ready`` holds no delivery twice (``_writes``). A mailbox that forwards each
    message is left to ``_written`` (its write also queues the forward)."""
    locked = counters.counters_lock({checked.mailbox.id for _, checked in ready})
    # Stored by another transaction between the targets' read and these locks (a resend in another worker's batch,
    # a peer's replicated copy): found now, since nobody else can store in these mailboxes any more.
    meanwhile = selectors.deliveries_found([_delivery_key(checked) for _, checked in ready])
    run: list[tuple[int, Message, Mailbox]] = []
    for index, checked in ready:
        delivery, mailbox = checked.delivery, checked.mailbox
        if mailbox.auto_forward and mailbox.address:
            continue
        if (before := meanwhile.get(_delivery_key(checked))) is not None:
            outcomes[index] = Stored(message=before, created=False)
            continue
        message = _delivery_message(delivery, mailbox)
        shard = counters.room_find(locked[mailbox.id], size=message.size, wanted=counters.shard_pick())
        if shard is None:
            outcomes[index] = _over_quota()
            continue
        message.shard = shard
        counters.counted(locked[mailbox.id], shard=shard, size=message.size)
        run.append((index, message, mailbox))
    if not run:
        return
    _run_write([(message, mailbox) for _, message, mailbox in run])
    for index, message, mailbox in run:
        logger.info("stored message %s (%s bytes) in %s", message.uid, message.size, mailbox.record.name)
        outcomes[index] = Stored(message=message, created=True)


def _run_write(run: Sequence[tuple[Message, Mailbox]]) -> None:
    """Write a run's messages in one statement, in the caller's transaction, which holds their counters
    (``counters_lock``) and picked each one's shard: every shard's count (one UPDATE of all, each shard checked to
    still have the room), every message (one INSERT) and every message's op (one INSERT, with the gateway's identity
    key and "is any peer active?" read in the same statement). Where ``_write_at_once`` costs a statement a
    delivery, a run (up to 25 consecutive deliveries of a batch) costs one. A shard that refused what it had room
    for fails the caller's transaction (it cannot happen: its row is locked)."""
    db = connections[DEFAULT_DB_ALIAS]
    took: dict[tuple[int, int], list[int]] = {}
    for message, mailbox in run:
        shard = took.setdefault((mailbox.id, message.shard), [0, 0])
        shard[0] += 1
        shard[1] += message.size
    columns = insert_fields(Message)
    values = insert_params([message for message, _ in run], db)
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    op = federation.ops_append_sql(kind="message", payloads=[message_op(message, mailbox) for message, mailbox in run])
    query = f"""
        WITH counted AS (
          UPDATE {MailboxCounter._meta.db_table} c
             SET message_count = c.message_count + v.n, byte_count = c.byte_count + v.b
            FROM (VALUES {", ".join(["(%s, %s, %s, %s)"] * len(took))}) AS v(mailbox_id, shard, n, b)
           WHERE c.mailbox_id = v.mailbox_id AND c.shard = v.shard
             AND c.message_count + v.n <= c.max_messages AND c.byte_count + v.b <= c.max_bytes
          RETURNING c.id
        ), stored AS (
          INSERT INTO {Message._meta.db_table} ({", ".join(field.column for field in columns)})
          VALUES {", ".join([row] * len(run))}
          RETURNING id, uid
        ), logged AS ({op.sql})
        SELECT s.id, s.uid, (SELECT count(*) FROM counted), (SELECT count(*) FROM logged),
               {federation_selectors.peers_active_sql()}
          FROM stored s
    """  # noqa: S608 (table and column names from the models; every value is a parameter)
    shards = [value for (mailbox_id, shard), (n, size) in took.items() for value in (mailbox_id, shard, n, size)]
    with db.cursor() as cursor:
        cursor.execute(query, [*shards, *values, *op.params])
        rows = cursor.fetchall()
    ids = {uid: stored_id for stored_id, uid, _, _, _ in rows}
    _, _, counted, logged, peers_active = rows[0]
    if counted != len(took) or len(ids) != len(run):
        raise RuntimeError(
            f"a run's locked counter shards took {counted} of {len(took)}, {len(ids)} of {len(run)} stored"
        )
    for message, _ in run:
        message.id = message.pk = ids[message.uid]
        message._state.adding, message._state.db = False, db.alias
    federation.op_appended(kind="message", logged=logged == len(run), peers_active=peers_active)


def _checked(delivery: Delivery, target: selectors.DeliveryTarget) -> Stored | _Checked:
    """Every check after the target's (``_targets``) but the rate (``_rate_refusals``) and the quota
    (``DeliveryRefused`` otherwise): ``Stored`` when this delivery was stored before."""
    sender_key, sender_verified = delivery.sender_key, delivery.sender_verified
    if target.stored_before is not None:
        return Stored(message=Message.objects.defer("ciphertext").get(id=target.stored_before), created=False)
    if delivery.owner is not None and delivery.owner != target.mailbox.owner_key:
        raise DeliveryRefused(
            "owner_changed", f"{delivery.to!r} has another owner than the one this letter was sealed for."
        )
    if (refused := _content_refusal(delivery.scheme, delivery.ciphertext)) is not None:
        raise refused
    _check_sender(target, sender_key, sender_verified)
    return _Checked(delivery, target.mailbox)


def _written(checked: _Checked) -> Stored:
    """Store a checked delivery, or refuse it ``over_quota``; the same one stored meanwhile is ``Stored`` again."""
    delivery, mailbox = checked.delivery, checked.mailbox
    try:
        message = _store_new(_delivery_message(delivery, mailbox), mailbox)
    except IntegrityError:  # the same delivery, stored by a concurrent worker since we looked
        before = selectors.delivery_find(
            mailbox=mailbox,
            sender_key=delivery.sender_key,
            sender_verified=delivery.sender_verified,
            delivery_id=delivery.delivery_id,
        )
        if before is None:
            raise
        return Stored(message=before, created=False)
    logger.info("stored message %s (%s bytes) in %s", message.uid, message.size, mailbox.record.name)
    return Stored(message=message, created=True)


def deliver_received(*, message: InboundMessage, body: dict[str, Any]) -> str:
    """A Maxima ``deliver``: store it (or refuse it) and queue the receipt; returns ``stored`` or the reason.

    Runs in the inbound task's transaction, so the message, its counters and its receipt commit together with
    the event's ``done``, or not at all (a worker killed half-way leaves nothing and the event is run again).
    The receipt goes to ``reply_to``, else to the sender's key; its idempotency key is the delivery's, so a
    resent delivery re-uses the first receipt. A delivery without a usable ``id`` cannot be receipted: ignored.
    """
    delivery_id = delivery_id_of(body)
    if delivery_id is None:
        raise Ignored("a delivery without a well-formed id")
    destination = reply_to_of(body) or message.sender
    try:
        deliver = Deliver.from_dict(body)
        stored = delivery_store(  # writes nothing unless it stores (its own savepoint)
            to=deliver.to,
            delivery_id=deliver.id,
            scheme=deliver.scheme,
            ciphertext=deliver.ciphertext,
            sender_key=message.sender,  # the transport's canonical form of the key Maxima verified
            sender_verified=True,
            owner=deliver.owner,
        )
    except (DeliveryRefused, MailboxMessageInvalid) as refused:
        receipt = _refusal_receipt(delivery_id, refused)
    else:
        receipt = Receipt(id=delivery_id, status="stored", message_id=stored.message.uid)
    _receipts_send([(receipt, destination, message.sender)])
    return receipt.status if receipt.status == "stored" else str(receipt.reason)


def deliveries_received(items: Sequence[tuple[InboundMessage, dict[str, Any]]]) -> list[Exception | None]:
    """``deliver_received`` for a run of Maxima deliveries of one inbound batch (``maxima.routing.register_batch``):
    stored with ``deliveries_store``, in the batch's transaction, and each receipted as ``deliver_received`` does.
    Returns, per message, None, or ``Ignored`` for a delivery without a usable ``id`` (nothing written for it).

    The same checks, stores and receipts as one by one; what differs is the order of the writes within the run
    (by mailbox, as ``deliveries_store`` orders them, so two runs cannot deadlock; two batches of several runs each
    still can, as one by one they could, and PostgreSQL then fails one of them, whose runs are redone event by
    event), and that a delivery sent twice within one run counts twice against its sender's rate (alone, the
    second is answered as stored before it is counted)."""
    outcomes: list[Exception | None] = [None] * len(items)
    receipts: list[Receipt | None] = [None] * len(items)
    deliveries, indexes = [], []
    ids = [delivery_id_of(body) for _, body in items]
    for index, ((message, body), delivery_id) in enumerate(zip(items, ids, strict=True)):
        if delivery_id is None:
            outcomes[index] = Ignored("a delivery without a well-formed id")
            continue
        try:
            deliver = Deliver.from_dict(body)
        except MailboxMessageInvalid as refused:
            receipts[index] = _refusal_receipt(delivery_id, refused)
            continue
        deliveries.append(
            Delivery(deliver.to, deliver.id, deliver.scheme, deliver.ciphertext, message.sender, True, deliver.owner)
        )
        indexes.append(index)
    for index, stored in zip(indexes, deliveries_store(deliveries), strict=True):
        if isinstance(stored, Stored):
            receipts[index] = Receipt(id=ids[index], status="stored", message_id=stored.message.uid)
        else:
            receipts[index] = _refusal_receipt(ids[index], stored)
    _receipts_send(
        [
            (receipt, reply_to_of(body) or message.sender, message.sender)
            for (message, body), receipt in zip(items, receipts, strict=True)
            if receipt is not None
        ]
    )
    return outcomes


def _refusal_receipt(delivery_id: str, refused: DomainError | MailboxMessageInvalid) -> Receipt:
    logger.info("refused a delivery over Maxima: %s", refused.code)
    return Receipt(id=delivery_id, status="refused", reason=refused.code, detail=_detail(refused))


def delivery_submit(
    *,
    name: str,
    delivery_id: str,
    scheme: str,
    ciphertext: bytes,
    sender_key: str,
    counted: ratelimit.Counted | None = None,
) -> Stored:
    """A delivery over REST (``MNS_REST_SUBMISSION``): the same checks, stored with an unverified sender.

    ``counted``: the delivery counted against its rate already, under ``submission_rate_key(name)``, by the
    caller's round trip to the cache (the view's, with its rate limits); otherwise it is counted here. Either way
    this call owns that count: it keeps it, or gives it back."""
    key = submission_rate_key(name) if settings.MNS_REST_SUBMISSION else None
    if counted is not None and (key is None or counted.key != key[0]):  # not the count this delivery takes
        counted.give_back()
        counted = None
    if not settings.MNS_REST_SUBMISSION:
        raise DomainError("submission_disabled", "This gateway takes deliveries over Maxima only.", status=403)
    delivery = Delivery(name, delivery_id, scheme, ciphertext, sender_key, False)
    if key is None:
        return delivery_store(**delivery.__dict__)
    if counted is None:
        now = time.time()
        hit = ratelimit.hit_many([key], now=now)
        counted = ratelimit.Counted(*key, now, None if hit is None else hit[0][0])
    return _submitted(delivery, normalise(name), counted)


def submission_rate_key(name: str) -> tuple[str, int] | None:
    """The ``(key, window)`` a REST delivery to ``name`` counts under before it is read and written
    (``_submitted``), or None when it will be counted after its checks, as ``delivery_store`` counts (not
    PostgreSQL, in a transaction, or not a name)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    try:
        return _rate_key(normalise(name), "", sender_verified=False), RATE_WINDOW
    except NameRefused:
        return None


def _submitted(delivery: Delivery, name: str, counted: ratelimit.Counted) -> Stored:
    """``delivery_submit`` on PostgreSQL, outside a transaction, in one round trip to the cache (``counted``,
    the view's, with its rate limits) and one statement (``_submit_at_once``: the target read and the message
    written), where ``delivery_store`` takes two of each. What it answers and writes is ``delivery_store``'s,
    check for check.

    Counting first is the one difference: ``delivery_store`` counts a delivery against its rate only once every
    check before the rate passed. Here a delivery that is then refused for one of those checks, or answered as
    stored before, or that fails before its message is committed, has its count given back (``Counted.give_back``):
    the count a window keeps is the same. (On the one-statement path the count is kept the moment the statement
    returns a stored id; on the others, once ``_stored`` returns.) While it holds that count (one statement's
    time), a delivery of the same mailbox and sender at the very edge of the limit can be refused ``rate_limited``
    where it would have passed; its client retries after ``Retry-After``.

    Whatever is not the plain case goes the way ``delivery_store`` goes, with the target this statement read, or a
    new read: over the rate, a scheme or size refused, a name that is not active, a sender on a list or an allow
    list, a duplicate, a mailbox that forwards, a counter shard without room, or a duplicate stored meanwhile.
    """
    over_rate = counted.over(settings.MNS_DELIVERY_RATE_PER_MINUTE)
    try:
        target: selectors.DeliveryTarget | DeliveryRefused | None = None
        if not over_rate and _content_refusal(delivery.scheme, delivery.ciphertext) is None:
            written = _submit_at_once(delivery, name, counted)
            if isinstance(written, Stored):
                return written
            if written is not None:
                target = _target_judged(name, None if written is _NO_MAILBOX else written)
        if target is None:
            [target] = _targets([delivery])
        stored = _stored(delivery, target, over_rate=over_rate)
        if stored.created:  # not when stored before: answered before the rate, not counted
            counted.keep()
        return stored
    except DeliveryRefused as refused:
        if refused.code in ("rate_limited", "over_quota"):  # refused for the rate or after it: counted
            counted.keep()
        raise
    finally:
        counted.give_back()  # every other way out; nothing once kept


_NO_MAILBOX = object()  # _submit_at_once: no mailbox of that name is kept here


def _submit_at_once(
    delivery: Delivery, name: str, counted: ratelimit.Counted
) -> Stored | selectors.DeliveryTarget | object | None:
    """Read a REST delivery's target (``selectors.delivery_targets_sql``) and, in the plain case, write it, in one
    statement that commits on its own: ``_write_at_once`` with the mailbox read in the same statement. The plain
    case: an active name whose mailbox has the record's owner, no message of this delivery id stored, the sender
    on no list of the gateway or the mailbox, no allow list, no forwarding, and room in the counter shard picked.
    Returns the ``Stored`` message; or the target read with nothing written (judged as ``delivery_store`` judges
    it); ``_NO_MAILBOX``; or None when the same delivery was stored since the statement began (read it again).
    ``counted`` is kept as soon as the message is committed, whatever happens after."""
    # The mailbox and the expiry its retention gives are the statement's own (_write_ctes).
    message = _delivery_message(delivery, Mailbox())
    message.shard = counters.shard_pick()
    target_sql, target_params = selectors.delivery_targets_sql(
        [(name, delivery.sender_key, delivery.sender_verified, delivery.delivery_id)]
    )
    writes, params = _write_ctes(message, Mailbox(owner_key="", record=NameRecord(name=name)), read=True)
    query = f"""
        WITH target AS ({target_sql}),
        ok AS (
          SELECT * FROM target
           WHERE r_status = %s AND r_owner_key = m_owner_key AND stored_before IS NULL
             AND NOT blocked_by_staff AND NOT blocked_by_owner AND NOT has_allow_list AND NOT m_auto_forward
        ), {writes}
        SELECT target.*, (SELECT id FROM stored), EXISTS (SELECT 1 FROM logged),
               {federation_selectors.peers_active_sql()}
          FROM target
    """  # noqa: S608 (table and column names from the models; every value is a parameter)
    try:  # the same text for every such delivery: kept prepared, PostgreSQL plans it once a connection
        with connection.cursor() as cursor:
            connection.execute_prepared(cursor, query, [*target_params, NameStatus.ACTIVE, *params])
            row = cursor.fetchone()
    except IntegrityError:  # the same delivery, stored by a concurrent worker since the statement began
        return None
    if row is None:
        return _NO_MAILBOX
    *read, stored_id, logged, peers_active = row[1:]
    if stored_id is None:
        return selectors.delivery_target_of(read)
    counted.keep()  # committed: whatever happens next, the count is this message's
    target = selectors.delivery_target_of(read)
    message.mailbox = target.mailbox
    message.expires_at = message.received_at + timedelta(days=retention_days(target.mailbox))
    _saved(message, stored_id, logged=logged, peers_active=peers_active)
    logger.info("stored message %s (%s bytes) in %s", message.uid, message.size, name)
    return Stored(message=message, created=True)


def _targets(deliveries: Sequence[Delivery]) -> list[selectors.DeliveryTarget | DeliveryRefused]:
    """Each delivery's mailbox, all read in one round trip (``selectors.delivery_targets``), or its refusal: not a
    name, or no active name with a mailbox here (``unknown_name``), or suspended by staff (``suspended``)."""
    names: list[str | DeliveryRefused] = []
    for delivery in deliveries:
        try:
            names.append(normalise(delivery.to))
        except NameRefused:
            names.append(DeliveryRefused("unknown_name", "The recipient is not a name."))
    wanted = [
        (name, delivery.sender_key, delivery.sender_verified, delivery.delivery_id)
        for name, delivery in zip(names, deliveries, strict=True)
        if isinstance(name, str)
    ]
    found = iter(selectors.delivery_targets(wanted))
    return [name if isinstance(name, DeliveryRefused) else _target_judged(name, next(found)) for name in names]


def _target_judged(name: str, target: selectors.DeliveryTarget | None) -> selectors.DeliveryTarget | DeliveryRefused:
    record = target.mailbox.record if target is not None else None
    if record is not None and record.status == NameStatus.SUSPENDED:
        return DeliveryRefused("suspended", f"The mailbox of {name!r} is suspended by this gateway's staff.")
    if record is None or record.status != NameStatus.ACTIVE or record.owner_key != target.mailbox.owner_key:
        return DeliveryRefused("unknown_name", f"No mailbox of {name!r} is kept by this gateway.")
    return target


def message_op(message: Message, mailbox: Mailbox, *, ciphertext: bool = False) -> dict[str, Any]:
    """A stored message as the peers learn of it (its ciphertext joins it on the wire, from the message row, or
    here with ``ciphertext``), with the owner it was stored for: a peer whose mailbox of that name changed hands
    since keeps it out of the new one."""
    op = {
        "name": mailbox.record.name,
        "owner": mailbox.owner_key,
        "uid": message.uid,
        "delivery_id": message.delivery_id,
        "sender": message.sender_key,
        "sender_verified": message.sender_verified,
        "scheme": message.scheme,
        "received_at": _ms(message.received_at),
    }
    if ciphertext:
        op["ciphertext"] = to_hex(bytes(message.ciphertext))
    return op


def _content_refusal(scheme: str, ciphertext: bytes) -> DeliveryRefused | None:
    if scheme not in SCHEMES:
        return DeliveryRefused("bad_scheme", f"The scheme must be one of {', '.join(SCHEMES)}.")
    if len(ciphertext) > settings.MNS_MAX_MESSAGE_BYTES:
        return DeliveryRefused(
            "too_large", f"The ciphertext may be at most {settings.MNS_MAX_MESSAGE_BYTES} bytes here."
        )
    return None


def _check_sender(context: selectors.DeliveryTarget, sender_key: str, sender_verified: bool) -> None:
    if sender_key and context.blocked_by_staff:
        raise DeliveryRefused("blocked", "This gateway does not accept messages from this sender.")
    if sender_key and context.blocked_by_owner:
        raise DeliveryRefused("blocked", "The owner of this mailbox blocked this sender.")
    if context.has_allow_list and not (sender_verified and context.allowed_by_owner):
        raise DeliveryRefused("blocked", "This mailbox accepts messages from the senders it lists only.")


def _rate_refusals(checked: Sequence[_Checked]) -> list[DeliveryRefused | None]:
    """Count each delivery in the one-minute window of its (mailbox, sender), shared by every worker through the
    cache, in order and in one round trip for all: each one's ``rate_limited`` refusal, or None. Nothing is refused
    when the cache failed."""
    keys = [
        (_rate_key(item.mailbox.record.name, item.delivery.sender_key, item.delivery.sender_verified), RATE_WINDOW)
        for item in checked
    ]
    counted = ratelimit.hit_many(keys) if keys else []
    if counted is None:
        return [None] * len(checked)
    return [_rate_refused() if count > settings.MNS_DELIVERY_RATE_PER_MINUTE else None for count, _ in counted]


RATE_WINDOW = 60  # seconds: MNS_DELIVERY_RATE_PER_MINUTE


def _rate_key(name: str, sender_key: str, sender_verified: bool) -> str:
    """The window a delivery counts in: its mailbox's name and its sender (all REST senders share one, unverified).
    By name, not the mailbox's id, so that a REST delivery can count before it reads its mailbox (``_submitted``)."""
    sender_key = sender_key if sender_verified else ""
    sender = hashlib.sha256(sender_key.encode()).hexdigest()[:32] if sender_key else "unverified"
    return f"mailbox:{name}:{sender}"


def _rate_refused() -> DeliveryRefused:
    return DeliveryRefused(
        "rate_limited", f"At most {settings.MNS_DELIVERY_RATE_PER_MINUTE} deliveries a minute to this mailbox."
    )


def _room_taken(mailbox: Mailbox, size: int) -> int:
    """In a transaction: count one message of ``size`` bytes on one of the mailbox's shards (its row and shards
    locked first, ``counters.room_take``) and return that shard, or refuse ``over_quota`` (nothing counted)."""
    shard = counters.room_take(mailbox_id=mailbox.id, size=size)
    if shard is None:
        raise _over_quota()
    return shard


def _over_quota() -> DeliveryRefused:
    return DeliveryRefused("over_quota", "The mailbox is full; its owner has to read and delete messages first.")


def _store_new(message: Message, mailbox: Mailbox) -> Message:
    """Reserve the room, store the message (``_delivery_message``) and log it for the peers, all or nothing;
    ``over_quota`` (nothing written) when it does not fit, ``IntegrityError`` when the same delivery was stored
    since it was looked up.

    The quota is taken first, as everywhere: a delivery takes its counter shard before it writes anything. Outside
    a transaction on PostgreSQL that is one statement on one shard (``_write_at_once``), and only when that shard's
    allowance is used up does it lock the mailbox's counters in a transaction of its own and move unused allowance
    over (``_write_locked``). In a transaction (the caller's, or for forwarding, or on SQLite) it follows the lock
    order of ``counters``: the mailbox's row, then all its shards, before the message is written, so it never
    holds a message's unique index entry while waiting for a counters row (a peer's batch holds the rows of one op
    while it inserts another op's message: the other order deadlocks)."""
    if connection.vendor != "postgresql" or (mailbox.auto_forward and mailbox.address):
        with transaction.atomic():
            message.shard = _room_taken(mailbox, message.size)
            message.save(force_insert=True)
            if mailbox.auto_forward and mailbox.address:
                _forward_queue(message, mailbox, delete=mailbox.delete_forwarded)
            federation.op_append(kind="message", payload=message_op(message, mailbox))
        return message
    if connection.in_atomic_block:  # in the caller's transaction: a savepoint, so a refusal rolls back nothing else
        with transaction.atomic():
            return _write_locked(message, mailbox)
    message.shard = counters.shard_pick()
    if _write_at_once(message, mailbox):
        return message
    with transaction.atomic():  # the shard is full: move unused allowance to it, if the mailbox has any
        return _write_locked(message, mailbox)


def _write_locked(message: Message, mailbox: Mailbox) -> Message:
    """``_write_at_once`` in a transaction, after locking the mailbox's row and shards (``counters.counters_lock``)
    and finding a shard with room (``counters.room_find``, which moves unused allowance to it when none has), or
    refuse ``over_quota``."""
    locked = counters.counters_lock([mailbox.id])[mailbox.id]
    shard = counters.room_find(locked, size=message.size, wanted=counters.shard_pick())
    if shard is None:
        raise _over_quota()
    message.shard = shard
    if not _write_at_once(message, mailbox):  # cannot happen: the shard has room, and its row is ours
        raise _over_quota()
    return message


def _write_at_once(message: Message, mailbox: Mailbox) -> bool:
    """``_store_new`` on PostgreSQL in one statement (``_write_ctes``), with the gateway's identity key and "is any
    peer active?" read in the same statement. Outside a transaction it commits on its own. False, nothing written,
    when the shard has no room for it."""
    writes, params = _write_ctes(message, mailbox)
    query = f"""
        WITH {writes}
        SELECT (SELECT id FROM stored), EXISTS (SELECT 1 FROM logged), {federation_selectors.peers_active_sql()}
    """  # noqa: S608 (the CTEs' own)
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        stored_id, logged, peers_active = cursor.fetchone()
    if stored_id is None:
        return False
    _saved(message, stored_id, logged=logged, peers_active=peers_active)
    return True


def _write_ctes(message: Message, mailbox: Mailbox, *, read: bool = False) -> tuple[str, list[Any]]:
    """The CTEs of a one-statement delivery (``reserved``, ``stored``, ``logged``) and their parameters: the
    conditional UPDATE of the message's counter shard (``message.shard``), the message's INSERT (only if the
    UPDATE took the room) and the op's INSERT (only if the message was stored). ``read``: the mailbox is the one
    the statement read before them, its CTE ``ok`` (``_submit_at_once``), which gives its id, its owner and the
    retention the message expires by; ``mailbox`` then only names its record."""
    columns = insert_fields(Message)
    values = dict(zip((field.attname for field in columns), insert_params([message], connection), strict=True))
    selected, params = [], []
    for field in columns:
        if read and field.attname == "mailbox_id":
            selected.append("ok.m_id")
        elif read and field.attname == "expires_at":  # reading.retention_days: the owner's, at most the gateway's
            selected.append("%s + make_interval(days => LEAST(COALESCE(NULLIF(ok.m_retention_days, 0), %s), %s))")
            params += [values["received_at"], settings.MNS_RETENTION_DAYS, settings.MNS_RETENTION_DAYS]
        else:
            selected.append("%s")
            params.append(values[field.attname])
    payload = message_op(message, mailbox)
    if read:
        del payload["owner"]  # the mailbox's, as the statement read it
        owned = "jsonb_build_object('owner', ok.m_owner_key)"
        op = federation.op_append_sql(kind="message", payload=payload, source="stored, ok", owned=owned)
    else:
        op = federation.op_append_sql(kind="message", payload=payload, source="stored")
    size = message.size
    ctes = f"""reserved AS (
          UPDATE {MailboxCounter._meta.db_table}
             SET message_count = message_count + 1, byte_count = byte_count + %s
           WHERE mailbox_id = {"(SELECT m_id FROM ok)" if read else "%s"} AND shard = %s
             AND message_count < max_messages AND byte_count <= max_bytes - %s
          RETURNING id
        ), stored AS (
          INSERT INTO {Message._meta.db_table} ({", ".join(field.column for field in columns)})
          SELECT {", ".join(selected)} FROM reserved{", ok" if read else ""}
          RETURNING id
        ), logged AS ({op.sql})"""  # noqa: S608 (table and column names from the models; every value a parameter)
    shard = [size, message.shard, size] if read else [size, mailbox.id, message.shard, size]
    return ctes, [*shard, *params, *op.params]


def _saved(message: Message, stored_id: int, *, logged: bool, peers_active: bool) -> None:
    """A message a one-statement write stored: its id, as saved, and its op said (``op_appended``)."""
    message.id = message.pk = stored_id
    message._state.adding, message._state.db = False, connection.alias
    federation.op_appended(kind="message", logged=logged, peers_active=peers_active)


def _message_row(
    mailbox: Mailbox,
    delivery_id: str,
    scheme: str,
    ciphertext: bytes,
    sender_key: str,
    sender_verified: bool,
    *,
    received_at: datetime,
    **fields: Any,
) -> Message:
    """The message row of a replica's copy (``fields``: its ``uid``), stored."""
    message = _message_unsaved(
        mailbox, delivery_id, scheme, ciphertext, sender_key, sender_verified, received_at=received_at, **fields
    )
    message.save(force_insert=True)
    return message


def _delivery_message(delivery: Delivery, mailbox: Mailbox) -> Message:
    """The message of a delivery arriving now, not saved yet (``_message_unsaved``)."""
    return _message_unsaved(
        mailbox,
        delivery.delivery_id,
        delivery.scheme,
        delivery.ciphertext,
        delivery.sender_key,
        delivery.sender_verified,
        received_at=timezone.now(),
    )


def _message_unsaved(
    mailbox: Mailbox,
    delivery_id: str,
    scheme: str,
    ciphertext: bytes,
    sender_key: str,
    sender_verified: bool,
    *,
    received_at: datetime,
    **fields: Any,
) -> Message:
    """The message of a delivery or a replica's copy, not saved yet; it expires after the mailbox's retention,
    counted from its arrival."""
    return Message(
        mailbox=mailbox,
        delivery_id=delivery_id,
        sender_key=sender_key,
        sender_verified=sender_verified,
        scheme=scheme,
        ciphertext=ciphertext,
        size=len(ciphertext),
        received_at=received_at,
        expires_at=received_at + timedelta(days=retention_days(mailbox)),
        **fields,
    )


def _receipts_send(receipts: Sequence[tuple[Receipt, str, str]]) -> None:
    """Queue each ``(receipt, destination, sender_key)``, all in one statement (``outbound_enqueue_many``). Its
    idempotency key is the delivery's (by its sender), so a resent delivery re-uses the first receipt; a refusal's
    key names its reason, so it never stands in for a later "stored" of the same id. Receipts due to one node
    travel together in one batch message when several are due (the protocol's "batch")."""
    outgoing = []
    for receipt, destination, sender_key in receipts:
        key = selectors.receipt_key(delivery_id=receipt.id, sender_key=sender_key)
        if receipt.status == "refused":
            key += f":refused:{receipt.reason}"
        outgoing.append(Outgoing(destination, APPLICATION, receipt.to_bytes(), key, batchable=True))
    outbound_enqueue_many(outgoing)
