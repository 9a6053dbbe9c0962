"""Reads of the registry. Exact matches only: nothing here lists or enumerates names."""

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Count, Max, QuerySet, Sum
from django.db.models.expressions import RawSQL

from core.errors import DomainError
from core.rows import columns, loader, no_key_lock
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.errors import MNSError
from mns_client.protocol.names import NameRefused, check_reserved, normalise, skeleton
from mns_client.protocol.statements import SignedStatement
from registry.models import NameRecord, StatementRecord

# The columns of a name's record that say who holds it: a read that checks a credential or a delivery against the
# record in a statement of its own loads these (``core.rows``) and leaves the rest deferred.
HOLDER_COLUMNS = columns(NameRecord, {"id", "name", "status", "owner_key"})

Status = NameRecord.Status


def record_find(*, name: str) -> NameRecord | None:
    """The record of a normalised name, whatever its status."""
    return NameRecord.objects.filter(name=name).first()


def record_known(*, name: str) -> NameRecord:
    """The record of a normalised name; ``name_not_found`` (404) when the gateway has never seen it."""
    record = record_find(name=name)
    if record is None:
        raise DomainError("name_not_found", f"No name {name!r} is registered here.", status=404)
    return record


def record_published(*, name: str) -> NameRecord:
    """The record a lookup answers with: only an active name; every other case is its own refusal.

    unknown: 404 ``name_not_found``; pending: 404 ``name_pending``; reserved (by staff, built in, a look-alike of a
    reserved name, or 1-2 characters): 404 ``name_reserved``; suspended: 403 ``name_suspended``; released: 410
    ``name_released`` (its signed release statement is in the history).
    """
    record = record_find(name=name)
    if record is None:
        try:
            check_reserved(name)
        except NameRefused as refused:
            raise DomainError("name_reserved", _sentence(refused.message), status=404) from None
        raise DomainError("name_not_found", f"No name {name!r} is registered here.", status=404)
    refusals = {
        Status.PENDING: ("name_pending", f"The name {name!r} is being registered and is not confirmed yet.", 404),
        Status.RESERVED: ("name_reserved", f"The name {name!r} is reserved.", 404),
        Status.SUSPENDED: ("name_suspended", f"The name {name!r} is suspended by this gateway's staff.", 403),
        Status.RELEASED: ("name_released", f"The name {name!r} was released by its owner (seq {record.seq}).", 410),
    }
    if record.status in refusals:
        code, detail, status = refusals[record.status]
        raise DomainError(code, detail, status=status)
    return record


def records_of_owner(*, owner_key: str) -> QuerySet[NameRecord]:
    """The names one key holds (pending, active or suspended): the reverse lookup, exact key only."""
    return NameRecord.objects.filter(owner_key=owner_key, status__in=NameRecord.HELD).order_by("name")


def statements_of(*, record: NameRecord) -> QuerySet[StatementRecord]:
    """A name's stored statements, oldest first."""
    return record.statements.order_by("seq")


def statement_is_recorded(*, signed: SignedStatement) -> bool:
    """Whether exactly this statement (fields and signature) is already in its name's history."""
    statement = signed.statement
    stored = StatementRecord.objects.filter(record__name=statement.name, seq=statement.seq).first()
    return (
        stored is not None and stored.statement == statement.to_dict() and stored.signature == to_hex(signed.signature)
    )


def registration_refusal(*, name: str, owner_key: str | None) -> MNSError | None:
    """Why ``owner_key`` may not register the normalised ``name`` now (``None``: why nobody may), or ``None``.

    The name-space rules only; a hold also checks the statement (signature, gateway, succession). Checks, in order:
    reserved (built in, 1-2 characters, or by staff), held by another key, looks like a live name (reserved, another
    key's or the same key's own: no two live records ever share a skeleton), and the per-owner limit.

    Names and skeletons are also unique constraints, so a race lost after these checks still fails at the write;
    the per-owner limit is only checked, so two holds by one key at the same instant may pass it by one.
    """
    try:
        reserved_check(name=name)
    except NameRefused as refused:
        return refused
    record = record_find(name=name)
    if record is not None and record.status == Status.RESERVED:
        return NameRefused("name_reserved", f"the name {name!r} is reserved")
    if record is not None and record.status in NameRecord.HELD and record.owner_key != owner_key:
        if record.status == Status.PENDING:
            return NameRefused("name_taken", f"the name {name!r} is being registered by another key")
        return NameRefused.taken(name)
    lookalike = (
        NameRecord.objects.filter(skeleton=skeleton(name), status__in=NameRecord.LIVE).exclude(name=name).first()
    )
    if lookalike is not None:
        return lookalike_refusal(name, lookalike, owner_key)
    if owner_key is not None and _held_count(owner_key, name) >= settings.MNS_NAMES_PER_OWNER:
        return DomainError(
            "owner_limit_reached",
            f"This key already holds {settings.MNS_NAMES_PER_OWNER} names, the most this gateway allows.",
            status=403,
        )
    return None


def reserved_check(*, name: str) -> None:
    """``NameRefused`` (``name_reserved``) for a name nobody may register: built in, or 1-2 characters."""
    check_reserved(name)


def held_counts(*, owner_keys: set[str]) -> dict[str, int]:
    """How many names each of these keys holds (pending, active or suspended): ``_held_count`` for many."""
    rows = NameRecord.objects.filter(owner_key__in=owner_keys, status__in=NameRecord.HELD)
    return dict(rows.values("owner_key").annotate(held=Count("id")).values_list("owner_key", "held"))


def lookalike_refusal(name: str, lookalike: NameRecord, owner_key: str | None) -> NameRefused:
    if lookalike.status == Status.RESERVED:
        return NameRefused("name_reserved", f"the name {name!r} looks like the reserved name {lookalike.name!r}")
    if owner_key is not None and lookalike.owner_key == owner_key:
        return NameRefused(
            "name_confusable", f"the name {name!r} looks too much like {lookalike.name!r}, which is already yours"
        )
    return NameRefused.confusable(name, lookalike.name)


def _held_count(owner_key: str, other_than: str) -> int:
    return records_of_owner(owner_key=owner_key).exclude(name=other_than).count()


@dataclass(frozen=True)
class Availability:
    name: str | None
    available: bool
    reason: str | None = None
    detail: str | None = None


def name_availability(*, raw: str) -> Availability:
    """Whether anyone could register ``raw`` now: its normal form, and the refusal's code and message if not."""
    try:
        name = normalise(raw)
    except NameRefused as refused:
        return Availability(name=None, available=False, reason=refused.code, detail=refused.message)
    refusal = registration_refusal(name=name, owner_key=None)
    if refusal is None:
        return Availability(name=name, available=True)
    return Availability(name=name, available=False, reason=refusal.code, detail=_message(refusal))


def _message(error: MNSError) -> str:
    return error.detail if isinstance(error, DomainError) else str(error)


def _sentence(message: str) -> str:
    """A core refusal message ("the name 'x' is reserved") as an API detail ("The name 'x' is reserved.")."""
    return message[:1].upper() + message[1:] + "."


def name_lock(name: str) -> NameRecord | None:
    """Lock the name's row FOR NO KEY UPDATE and return it: the first lock of every change to a name (the answer to
    a handshake, a claim decided, a registration refused), so that they all take their locks in one order. It
    waits for a statement being applied to the name, but not for a session pickup's key-share lock on the row
    (its foreign key check; FOR UPDATE would deadlock with it)."""
    return NameRecord.objects.select_for_update(no_key=True).filter(name=name).first()


def name_lock_by_id(record_id: int) -> NameRecord | None:
    """``name_lock`` for a row known by its id, loading its ``HOLDER_COLUMNS`` (the others deferred): the check of
    every handshake's answer, so one statement kept prepared rather than compiled by the ORM (issue #18)."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        db.execute_prepared(cursor, f"{_HOLDER_BY_ID}{no_key_lock(db)}", [record_id])
        row = cursor.fetchone()
    return loader(db, NameRecord, HOLDER_COLUMNS)(db, row) if row is not None else None


_HOLDER_BY_ID = f"SELECT {', '.join(HOLDER_COLUMNS)} FROM {NameRecord._meta.db_table} WHERE id = %s"  # noqa: S608


def skeleton_taken(skeleton: str, owner_key: str) -> bool:
    """Whether a name with this skeleton is live here for another owner, or reserved (a claim is refused)."""
    live = NameRecord.objects.filter(skeleton=skeleton, status__in=NameRecord.LIVE)
    return any(record.status == NameRecord.Status.RESERVED or record.owner_key != owner_key for record in live)


def owner_full(owner_key: str, name: str) -> bool:
    """Whether the owner already holds its limit of names other than ``name`` (a claim of one more is refused)."""
    held = NameRecord.objects.filter(owner_key=owner_key, status__in=NameRecord.HELD).exclude(name=name)
    return held.count() >= settings.MNS_NAMES_PER_OWNER


def name_pending_of_other(*, name: str, owner_key: str) -> NameRecord | None:
    """The local hold of ``name`` by another owner than ``owner_key``, while it waits for its claim."""
    return NameRecord.objects.filter(name=name, status=NameRecord.Status.PENDING).exclude(owner_key=owner_key).first()


def statements_at(
    *, cutoff: int, bucket: int | None = None, buckets: Collection[int] | None = None
) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(name, seq, statement) of each name's latest statement (by ``seq``) issued at or before ``cutoff`` (ms), a
    release included: the directory of docs/protocol.md "Transparency"; only the names of one ``bucket`` (or of
    ``buckets``) when given. One pass over the statements, in record order."""
    rows = StatementRecord.objects.filter(statement__issued_at__lte=cutoff)
    if bucket is not None:
        rows = rows.filter(record__bucket=bucket)
    if buckets is not None:
        rows = rows.filter(record__bucket__in=list(buckets))
    rows = rows.order_by("record_id", "-seq").values_list("record_id", "record__name", "seq", "statement")
    last = None
    for record_id, name, seq, statement in rows.iterator(chunk_size=5000):
        if record_id != last:
            last = record_id
            yield name, seq, statement


def statements_at_by_bucket(*, cutoff: int) -> dict[int | None, tuple[int, ...]]:
    """Per directory bucket (``None``: records without one yet), (count, sum of ids, highest id) of the statements
    issued at or before ``cutoff``: what changes when a bucket gains a statement (a new one, or one that arrived
    late) or loses one (a freed hold, an undone statement). On PostgreSQL also the sum of the rows' versions
    (``xmin``), so that a statement changed in place (a database edited by hand) changes it too. Counted in the
    database: no statement is read."""
    counts: dict[str, Any] = {"count": Count("id"), "total": Sum("id"), "last": Max("id")}
    if connection.vendor == "postgresql":
        table = StatementRecord._meta.db_table
        counts["versions"] = Sum(RawSQL(f'"{table}".xmin::text::bigint', ()))  # noqa: S611 (no input in it)
    rows = (
        StatementRecord.objects.filter(statement__issued_at__lte=cutoff)
        .order_by()
        .values("record__bucket")
        .annotate(**counts)
        .values_list("record__bucket", *counts)
    )
    return {bucket: tuple(int(value) for value in counted) for bucket, *counted in rows}


def statement_of(*, record: NameRecord, seq: int) -> StatementRecord | None:
    return StatementRecord.objects.filter(record=record, seq=seq).first()
