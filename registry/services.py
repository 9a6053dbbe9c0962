"""Changes to the registry: holds and activations, owner-signed statements, and the staff's moderation.

Every change to a name is an owner-signed statement that is verified before anything is written, and every
refusal raises before writing (an ``MNSError`` with its own code). Uniqueness is the database's job in the end:
the checks here give the precise refusal, and when a concurrent write slips between a check and our write, the
constraint's ``IntegrityError`` is turned into the same refusal (see ``name_hold``).
"""

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import DomainError
from core.staff import required_reason
from federation.services import op_append
from maxima.selectors import gateway_identity_key as node_identity_key
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.names import NameRefused, normalise, skeleton
from mns_client.protocol.statements import (
    NameStatement,
    SignedStatement,
    StatementInvalid,
    check_successor,
    offer_open,
)
from mns_client.protocol.transparency import bucket_of
from registry import published, selectors
from registry.models import AuditEntry, NameRecord, StatementRecord

logger = logging.getLogger(__name__)

Status = NameRecord.Status

# Called in the transaction that gave a name to a new owner (an accepted transfer), with the record as it is now
# and the key that held it: the mailboxes app registers the hand-over of the mailbox (``register_owner_change``).
OwnerChange = Callable[[NameRecord, str], None]
_owner_changes: list[OwnerChange] = []


def register_owner_change(callback: OwnerChange) -> None:
    """Registered by the app above that keeps what belongs to a name's owner (the mailbox); called once per
    accepted transfer, locally or replicated, inside the transaction that applied it."""
    if callback not in _owner_changes:
        _owner_changes.append(callback)


def gateway_identity_key() -> str | None:
    """This gateway's own Maxima identity key (``0x…``) as its node last reported it; ``None`` until known."""
    return node_identity_key()


# ------------------------------------------------------------------------------------------------------ holds


def name_hold(*, signed: SignedStatement, gateway_key: str | None, source: str) -> NameRecord:
    """Hold a name as ``pending`` for the owner of a verified ``register`` statement, and store the statement.

    The first step of a registration (the Mailboxes flow confirms it with ``name_activate`` once the owner's node
    answered a handshake, or ``name_holds_expire`` frees it). Refuses, writing nothing: another op
    (``statement_not_register``), another gateway (``statement_wrong_gateway``; ``gateway_not_ready`` while this
    gateway does not know its key), a bad signature, a reserved, taken or confusable name, the per-owner limit,
    and every succession rule (``check_successor``). The same statement again while its hold stands returns the
    held record, so a retried request or a redelivered message is harmless.

    Two concurrent holds of one name, or of two look-alikes, both pass the checks; the database's unique
    constraints let exactly one commit, and the other is retried once, when the checks see the winner and refuse.
    """
    statement = signed.statement
    _check_source(source)
    if statement.op != "register":
        raise DomainError("statement_not_register", f"A registration takes a register statement, not {statement.op}.")
    if gateway_key is None:
        raise DomainError(
            "gateway_not_ready",
            "This gateway does not know its own Maxima identity yet; try again shortly.",
            status=503,
        )
    if statement.gateway != gateway_key:
        raise DomainError(
            "statement_wrong_gateway", "The statement names another gateway: use this gateway's Maxima identity key."
        )
    signed.verify()
    try:
        with transaction.atomic():
            return _hold(signed, source)
    except IntegrityError:
        logger.info("a concurrent registration won %s or a look-alike; checking again", statement.name)
    try:
        with transaction.atomic():
            return _hold(signed, source)
    except IntegrityError:
        raise NameRefused.taken(statement.name) from None


def _hold(signed: SignedStatement, source: str) -> NameRecord:
    statement = signed.statement
    record = NameRecord.objects.select_for_update().filter(name=statement.name).first()
    if record is not None and record.status == Status.PENDING and _is_current(record, signed):
        return record
    refusal = selectors.registration_refusal(name=statement.name, owner_key=statement.owner)
    if refusal is not None:
        raise refusal
    check_successor(_current(record), statement)
    if record is None:
        record = _new_record(statement.name)
    _set_holder(record, signed)
    _set_status(record, Status.PENDING)
    record.save()
    _append(record, signed, source)
    logger.info("held %s (seq %s) pending its owner's handshake", record.name, record.seq)
    return record


def name_activate(*, name: str) -> NameRecord:
    """Confirm a pending hold (the owner answered the handshake). Activating an active name changes nothing."""
    now = timezone.now()
    NameRecord.objects.filter(name=name, status=Status.PENDING).update(
        status=Status.ACTIVE, status_changed_at=now, updated_at=now
    )
    record = selectors.record_known(name=name)
    if record.status != Status.ACTIVE:
        raise DomainError("name_not_pending", f"The name {name!r} is {record.status}, not pending.", status=409)
    return record


def name_holds_expire(*, older_than: timedelta) -> int:
    """Free every hold left pending for longer than ``older_than``; returns how many were freed.

    Freeing undoes the hold: its unconfirmed register statement is deleted, and the record goes back to what it
    was (released, with the release statement current) or, for a name never registered before, disappears. Each
    record is re-checked under its row lock, so a hold confirmed meanwhile is kept and two sweeps can run at once.
    """
    cutoff = timezone.now() - older_than
    due = NameRecord.objects.filter(status=Status.PENDING, status_changed_at__lt=cutoff)
    return sum(_hold_free(record_id, cutoff) for record_id in due.values_list("id", flat=True))


def name_hold_refuse(*, name: str, owner_key: str) -> bool:
    """Give up a pending hold at once: the network refused its claim (another owner has the name).

    Like an expired hold, the unconfirmed register statement is deleted and the record goes back to what it was;
    a name never registered before stays as a ``released`` record without a statement (rather than disappearing),
    so its register challenge survives to tell the client why (``name_taken``). A hold confirmed meanwhile, or
    another owner's, is left alone.
    """
    with transaction.atomic():
        record = NameRecord.objects.select_for_update().filter(name=name, status=Status.PENDING).first()
        if record is None or record.owner_key != owner_key:
            return False
        record.statements.filter(seq=record.seq).delete()
        previous = record.statements.order_by("-seq").first()
        _clear_holder(record)
        if previous is None:
            record.seq, record.statement, record.signature = None, None, ""
        else:
            record.seq, record.statement, record.signature = previous.seq, previous.statement, previous.signature
        _set_status(record, Status.RELEASED)
        record.save()
    logger.info("gave up the hold on %s: the network refused its claim", name)
    return True


def _hold_free(record_id: int, cutoff: object) -> int:
    with transaction.atomic():
        record = (
            NameRecord.objects.select_for_update()
            .filter(id=record_id, status=Status.PENDING, status_changed_at__lt=cutoff)
            .first()
        )
        if record is None:
            return 0
        record.statements.filter(seq=record.seq).delete()
        previous = record.statements.order_by("-seq").first()
        if previous is None:
            record.delete()
        else:
            _clear_holder(record)
            record.seq, record.statement, record.signature = previous.seq, previous.statement, previous.signature
            _set_status(record, Status.RELEASED)
            record.save()
    logger.info("freed an unconfirmed hold on %s", record.name)
    return 1


# ----------------------------------------------------------------------------------------- owners' statements


def statement_apply(*, signed: SignedStatement, source: str) -> NameRecord:
    """Apply an owner's ``update`` (rotate the box key, change the payment address, the data record or the
    gateway), ``release`` or ``transfer`` (an offer of the name to another key), or the new key's ``accept``.

    Verified before anything is written: the signature, then, under the record's row lock, the name's state
    (``name_not_found``, ``name_pending``, ``name_suspended``) and the succession rules against the current
    statement (stale ``seq``, another owner, after a release, a duplicate, an accept without its pending offer),
    and for an ``accept`` the offer's deadline by this gateway's clock (``transfer_expired``). The statement joins
    the history; an accept hands the name over (``_owner_changed``).
    """
    statement = signed.statement
    _check_source(source)
    if statement.op == "register":
        raise DomainError(
            "statement_not_change", "A register statement starts a registration; send update or release here."
        )
    signed.verify()
    with transaction.atomic():
        record = NameRecord.objects.select_for_update().filter(name=statement.name).first()
        _check_changeable(record, statement.name)
        current = _current(record)
        check_successor(current, statement)
        if statement.op == "accept":
            offer_open(current, int(time.time() * 1000))
            _check_owner_limit(statement)
        previous_owner = record.owner_key
        if statement.op == "release":
            _clear_holder(record)
            record.seq, record.statement, record.signature = (
                statement.seq,
                statement.to_dict(),
                to_hex(signed.signature),
            )
            _set_status(record, Status.RELEASED)
        else:
            _set_holder(record, signed)
        record.save()
        _append(record, signed, source)
        _replicate("statement", signed.to_dict())
        if statement.op == "accept":
            _owner_changed(record, previous_owner)
    logger.info("applied %s of %s (seq %s)", statement.op, record.name, statement.seq)
    return record


def statement_replicate(*, signed: SignedStatement) -> tuple[NameRecord | None, str]:
    """Apply an owner-signed statement a peer replicated; returns the record and ``applied`` or ``duplicate``.

    The caller checked where it came from (its ``gateway`` is a known gateway); here the signature and the
    succession rules are checked, before anything is written, as for the owner's own statements. A ``register``
    makes the name active at once: a peer replicates a name only once its claim was confirmed across the
    membership and its owner answered the handshake there. Replaying a statement already applied changes nothing.
    Refusals raise: ``StatementInvalid`` (forged or out of order), or the name-space rules (``name_taken``, the
    per-owner limit) for a register this gateway cannot take.
    """
    statement = signed.statement
    signed.verify()
    with transaction.atomic():
        record = NameRecord.objects.select_for_update().filter(name=statement.name).first()
        if record is not None and _is_current(record, signed):
            return record, "duplicate"
        if record is not None and statement.op == "accept":
            _withdrawal_undone(record, statement)
        if record is not None and record.statements.filter(seq=statement.seq).exists():
            return record, "duplicate"
        check_successor(_current(record), statement)
        previous_owner = record.owner_key if record is not None else ""
        if statement.op == "accept":
            _check_owner_limit(statement)
        if statement.op == "register":
            refusal = selectors.registration_refusal(name=statement.name, owner_key=statement.owner)
            if refusal is not None:
                raise refusal
            record = record or _new_record(statement.name)
            _set_holder(record, signed)
            _set_status(record, Status.ACTIVE)
        elif statement.op == "release":
            _clear_holder(record)
            record.seq, record.statement = statement.seq, statement.to_dict()
            record.signature = to_hex(signed.signature)
            _set_status(record, Status.RELEASED)
        else:
            _set_holder(record, signed)
        record.save()
        _append(record, signed, StatementRecord.Source.REPLICATION)
        if statement.op == "accept":
            _owner_changed(record, previous_owner)
    logger.info("applied a replicated %s of %s (seq %s)", statement.op, record.name, statement.seq)
    return record, "applied"


def statements_replicate_new(*, signed: list[SignedStatement]) -> dict[str, str]:
    """``statement_replicate`` for many ``register`` statements of names this gateway holds no record of (a peer's
    snapshot), in a handful of SQL statements rather than a dozen each: the same checks (the owner's signature, a
    first statement is a ``register``, and ``selectors.registration_refusal``'s name-space rules: reserved, a
    look-alike of a live name, names per owner, each also against the batch's earlier names) and the same rows.

    Returns each name's outcome: ``applied``, the code of its refusal, or ``exists`` for a name that has a record
    here (the caller applies those one by one, through ``statement_replicate``). All or nothing: a unique
    constraint lost to a concurrent writer rolls the batch back and raises ``IntegrityError``, for the caller to
    take the one-by-one path."""
    outcomes: dict[str, str] = {}
    candidates: list[SignedStatement] = []
    for item in signed:
        statement = item.statement
        try:
            item.verify()
            check_successor(None, statement)
            selectors.reserved_check(name=statement.name)
        except (StatementInvalid, NameRefused) as refused:
            outcomes[statement.name] = refused.code
            continue
        candidates.append(item)
    names = [item.statement.name for item in candidates]
    existing = set(NameRecord.objects.filter(name__in=names).values_list("name", flat=True))
    candidates = [item for item in candidates if item.statement.name not in existing]
    outcomes.update(dict.fromkeys(existing, "exists"))
    skeletons = {item.statement.name: skeleton(item.statement.name) for item in candidates}
    live = {
        record.skeleton: record
        for record in NameRecord.objects.filter(skeleton__in=set(skeletons.values()), status__in=NameRecord.LIVE)
    }
    held = selectors.held_counts(owner_keys={item.statement.owner for item in candidates})
    now, records, accepted = timezone.now(), [], []
    for item in candidates:
        statement = item.statement
        lookalike = live.get(skeletons[statement.name])
        if lookalike is not None:
            outcomes[statement.name] = selectors.lookalike_refusal(statement.name, lookalike, statement.owner).code
            continue
        if held.get(statement.owner, 0) >= settings.MNS_NAMES_PER_OWNER:
            outcomes[statement.name] = "owner_limit_reached"
            continue
        record = NameRecord(name=statement.name, skeleton=skeletons[statement.name], status=Status.ACTIVE)
        _set_holder(record, item)
        record.status_changed_at = now
        records.append(record)
        accepted.append(item)
        live[record.skeleton] = record
        held[statement.owner] = held.get(statement.owner, 0) + 1
    with transaction.atomic(), published.changing([record.name for record in records]):
        NameRecord.objects.bulk_create(records)
        StatementRecord.objects.bulk_create(
            StatementRecord(
                record=record,
                seq=item.statement.seq,
                op=item.statement.op,
                owner_key=item.statement.owner,
                statement=item.statement.to_dict(),
                signature=to_hex(item.signature),
                source=StatementRecord.Source.REPLICATION,
            )
            for record, item in zip(records, accepted, strict=True)
        )
    outcomes.update(dict.fromkeys((record.name for record in records), "applied"))
    if records:
        logger.info("applied %s replicated registers of names new here, at once", len(records))
    return outcomes


def _withdrawal_undone(record: NameRecord, accept: NameStatement) -> bool:
    """An offer's accept, taken at one gateway while the old owner withdrew the offer (any later statement of theirs:
    an update, another offer, a release) at another: the accept wins on every gateway, so the two converge. A
    gateway that took the withdrawal undoes the old owner's statements after the accepted offer, and the accept
    then follows its offer (checked by ``check_successor`` as always). Where the accept came first, the old owner's
    statement of the same ``seq`` is a duplicate and later ones are refused: the same outcome. Returns whether
    anything was undone."""
    if record.seq < accept.seq or accept.accepts is None:
        return False  # nothing of the old owner's stands where the accept goes
    offer_row = record.statements.filter(seq=accept.accepts, op=StatementRecord.Op.TRANSFER).first()
    if offer_row is None:
        return False
    offer = NameStatement.from_dict(offer_row.statement)
    later = record.statements.filter(seq__gt=offer.seq)
    if offer.to != accept.owner or later.exclude(owner_key=offer.owner).exists():
        return False  # not this offer's accept, or the name changed hands already
    undone = list(later.values_list("seq", "op"))
    later.delete()
    _set_holder(record, SignedStatement(offer, from_hex(offer_row.signature)))
    _set_status(record, Status.ACTIVE)
    record.save()
    logger.warning("an accept of %s won over the old owner's statements taken meanwhile: undone %s", offer.name, undone)
    return True


def name_status_replicate(*, name: str, suspended: bool) -> bool:
    """The name's home gateway suspended (or restored) it: do the same here; returns whether anything changed."""
    before, after = (Status.ACTIVE, Status.SUSPENDED) if suspended else (Status.SUSPENDED, Status.ACTIVE)
    now = timezone.now()
    changed = NameRecord.objects.filter(name=name, status=before).update(
        status=after, status_changed_at=now, updated_at=now
    )
    return bool(changed)


def name_replicas_set(*, name: str, gateways: list[str]) -> None:
    """The gateways that keep the name's mailbox, home first (as the home gateway announced them)."""
    NameRecord.objects.filter(name=name).update(gateways=gateways, updated_at=timezone.now())


def _check_owner_limit(statement: NameStatement) -> None:
    """A transfer must not take a key past the names-per-owner cap that a registration could not pass."""
    if selectors.owner_full(statement.owner, statement.name):
        raise DomainError(
            "owner_limit_reached",
            f"This key already holds {settings.MNS_NAMES_PER_OWNER} names, the most this gateway allows.",
            status=403,
        )


def _owner_changed(record: NameRecord, previous_owner: str) -> None:
    """After an accepted transfer: what belonged to the old owner (its mailbox and messages) goes, at once."""
    logger.info("%s changed owner by an accepted transfer", record.name)
    for callback in _owner_changes:
        callback(record, previous_owner)


def _replicate(kind: str, payload: dict) -> None:
    op_append(kind=kind, payload=payload)


def _check_changeable(record: NameRecord | None, name: str) -> None:
    if record is None:
        raise DomainError("name_not_found", f"No name {name!r} is registered here.", status=404)
    if record.status == Status.PENDING:
        raise DomainError("name_pending", f"The name {name!r} is not confirmed yet.", status=409)
    if record.status == Status.SUSPENDED:
        raise DomainError("name_suspended", f"The name {name!r} is suspended by this gateway's staff.", status=403)


# ------------------------------------------------------------------------------------------- staff moderation


def name_reserve(*, name: str, actor: AbstractBaseUser, reason: str) -> NameRecord:
    """Reserve a name nobody holds (unknown or released), so that nobody can register it or a look-alike."""
    name, reason = normalise(name), _required_reason(reason)
    try:
        with transaction.atomic():
            record = NameRecord.objects.select_for_update().filter(name=name).first()
            before = record.status if record is not None else ""
            if record is not None and record.status != Status.RELEASED:
                raise DomainError("name_not_reservable", f"The name {name!r} is {record.status}.", status=409)
            _check_no_lookalike(name)
            record = record or _new_record(name)
            _set_status(record, Status.RESERVED)
            record.save()
            _audit(record, AuditEntry.Action.RESERVE, actor, reason, before)
            return record
    except IntegrityError:
        raise NameRefused("name_taken", f"the name {name!r} or a look-alike was just registered") from None


def name_unreserve(*, name: str, actor: AbstractBaseUser, reason: str) -> NameRecord | None:
    """Free a reserved name: released again if it had owners before, else forgotten (``None``)."""
    name, reason = normalise(name), _required_reason(reason)
    with transaction.atomic():
        record = _locked(name, Status.RESERVED, "name_not_reserved")
        if record.statements.exists():
            _set_status(record, Status.RELEASED)
            record.save()
            _audit(record, AuditEntry.Action.UNRESERVE, actor, reason, Status.RESERVED)
            return record
        _audit(record, AuditEntry.Action.UNRESERVE, actor, reason, Status.RESERVED, after="")
        record.delete()
        return None


def name_suspend(*, name: str, actor: AbstractBaseUser, reason: str) -> NameRecord:
    """Stop serving an active name (lookups refuse it, its owner's statements are refused) until restored."""
    return _moderate(name, actor, reason, Status.ACTIVE, Status.SUSPENDED, AuditEntry.Action.SUSPEND)


def name_restore(*, name: str, actor: AbstractBaseUser, reason: str) -> NameRecord:
    """Serve a suspended name again, exactly as its owner last signed it."""
    return _moderate(name, actor, reason, Status.SUSPENDED, Status.ACTIVE, AuditEntry.Action.RESTORE)


def _moderate(
    name: str, actor: AbstractBaseUser, reason: str, before: str, after: str, action: AuditEntry.Action
) -> NameRecord:
    name, reason = normalise(name), _required_reason(reason)
    with transaction.atomic():
        record = _locked(name, before, f"name_not_{before}")
        _set_status(record, after)
        record.save()
        _audit(record, action, actor, reason, before)
        _replicate(str(action), {"name": name})
    logger.info("%s %s by %s", action, name, actor.get_username())
    return record


def _locked(name: str, status: str, code: str) -> NameRecord:
    record = NameRecord.objects.select_for_update().filter(name=name).first()
    if record is None:
        raise DomainError("name_not_found", f"No name {name!r} is registered here.", status=404)
    if record.status != status:
        raise DomainError(code, f"The name {name!r} is {record.status}, not {status}.", status=409)
    return record


def _check_no_lookalike(name: str) -> None:
    lookalike = (
        NameRecord.objects.filter(skeleton=skeleton(name), status__in=NameRecord.LIVE).exclude(name=name).first()
    )
    if lookalike is not None:
        raise NameRefused(
            "name_confusable", f"the name {name!r} looks like {lookalike.name!r} ({lookalike.status}): it is blocked"
        )


def _required_reason(reason: str) -> str:
    return required_reason(reason, acting_on="names")


def _audit(
    record: NameRecord,
    action: AuditEntry.Action,
    actor: AbstractBaseUser,
    reason: str,
    before: str,
    *,
    after: str | None = None,
) -> None:
    AuditEntry.objects.create(
        record=record,
        name=record.name,
        action=action,
        actor=actor,
        actor_username=actor.get_username(),
        reason=reason,
        status_before=before,
        status_after=record.status if after is None else after,
    )


# ---------------------------------------------------------------------------------------------------- helpers


def _check_source(source: str) -> None:
    if source not in StatementRecord.Source.values:
        raise ValueError(f"unknown statement source {source!r}")


def _current(record: NameRecord | None) -> NameStatement | None:
    if record is None or record.statement is None:
        return None
    return NameStatement.from_dict(record.statement)


def _is_current(record: NameRecord, signed: SignedStatement) -> bool:
    return record.statement == signed.statement.to_dict() and record.signature == to_hex(signed.signature)


def _new_record(name: str) -> NameRecord:
    return NameRecord(name=name, skeleton=skeleton(name), bucket=bucket_of(name))


def buckets_fill(*, batch: int = 2000) -> int:
    """Set the directory bucket of records written without one (bulk-loaded rows, or rows older than the
    column); returns how many. Safe to run twice, and at once with writers (each row is set to its one value).
    The bucket is not part of a lookup's answer, so no published entry changes (PostgreSQL: one statement)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(BUCKETS_FILL_SQL)
            return cursor.rowcount
    filled = 0
    while rows := list(NameRecord.objects.filter(bucket__isnull=True).values_list("id", "name")[:batch]):
        records = [NameRecord(id=record_id, name=name, bucket=bucket_of(name)) for record_id, name in rows]
        NameRecord.objects.bulk_update(records, ["bucket"])
        filled += len(rows)
    return filled


# ``bucket_of`` in SQL: the first 12 bits of SHA-256 of the name's UTF-8 bytes.
BUCKETS_FILL_SQL = f"""
UPDATE {NameRecord._meta.db_table}
SET bucket = (get_byte(sha256(convert_to(name, 'UTF8')), 0) << 4) | (get_byte(sha256(convert_to(name, 'UTF8')), 1) >> 4)
WHERE bucket IS NULL
"""  # noqa: S608


def _set_holder(record: NameRecord, signed: SignedStatement) -> None:
    """The keys a register or update binds to the name; its gateway becomes the first (home) gateway."""
    statement = signed.statement
    record.owner_key = statement.owner
    record.box_key = statement.box_key or ""
    record.payment_address = statement.payment_address or ""
    record.gateways = [statement.gateway, *(key for key in record.gateways if key != statement.gateway)]
    record.seq, record.statement, record.signature = statement.seq, statement.to_dict(), to_hex(signed.signature)


def _clear_holder(record: NameRecord) -> None:
    record.owner_key = record.box_key = record.payment_address = ""
    record.gateways = []


def _set_status(record: NameRecord, status: str) -> None:
    record.status = status
    record.status_changed_at = timezone.now()


def _append(record: NameRecord, signed: SignedStatement, source: str) -> None:
    statement = signed.statement
    StatementRecord.objects.create(
        record=record,
        seq=statement.seq,
        op=statement.op,
        owner_key=statement.owner,
        statement=statement.to_dict(),
        signature=to_hex(signed.signature),
        source=source,
    )
