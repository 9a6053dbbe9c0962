"""Reads of the mailboxes. Listings never load a ciphertext: only ``message_of`` does, for the one message asked."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from core.errors import DomainError
from core.pagination import CursorPagination
from core.rows import columns, loader
from federation.models import Peer
from handshake.models import Challenge, Session
from mailboxes.models import AccessToken, BlockedSender, Mailbox, MailboxCounter, Message, Registration, SenderRule
from maxima.models import OutboundMessage
from mns_client.protocol.mailbox import MailboxMessageInvalid, Receipt
from registry.models import NameRecord
from registry.selectors import HOLDER_COLUMNS


def mailbox_find(*, name: str) -> Mailbox | None:
    """The mailbox of a normalised name, with its record, whatever the name's status."""
    return Mailbox.objects.select_related("record").filter(record__name=name).first()


def mailbox_of(*, name: str) -> Mailbox:
    """The mailbox of a normalised name; 404 ``mailbox_not_found`` when this gateway keeps none for it."""
    mailbox = mailbox_find(name=name)
    if mailbox is None:
        elsewhere = _gateways_keeping(name)
        if elsewhere:
            raise DomainError(
                "mailbox_elsewhere",
                f"This gateway keeps no copy of {name!r}'s mailbox; these gateways do: {', '.join(elsewhere)}",
                status=404,
                fields={"gateways": elsewhere},
            )
        raise DomainError("mailbox_not_found", f"This gateway keeps no mailbox for {name!r}.", status=404)
    return mailbox


@dataclass(frozen=True)
class Usage:
    """A mailbox's quota and what it holds (``QuotaSerializer``)."""

    max_messages: int
    max_bytes: int
    messages: int
    bytes: int


def mailboxes_with_usage(mailboxes: QuerySet[Mailbox] | None = None) -> QuerySet[Mailbox]:
    """The mailboxes (all of them by default) with what each holds, ``message_count`` and ``byte_count``: the sums
    over its counter shards, the one way to read a mailbox's use (no row keeps the total: it would be the one row
    every delivery to the mailbox waits on)."""

    def total(field: str) -> Coalesce:
        shards = MailboxCounter.objects.filter(mailbox=OuterRef("pk")).order_by().values("mailbox")
        return Coalesce(Subquery(shards.annotate(total=Sum(field)).values("total")), 0)

    mailboxes = Mailbox.objects.all() if mailboxes is None else mailboxes
    return mailboxes.annotate(message_count=total("message_count"), byte_count=total("byte_count"))


def mailbox_usage(*, mailbox_id: int) -> Usage:
    """One mailbox's quota and use (``mailboxes_with_usage``)."""
    row = mailboxes_with_usage(Mailbox.objects.filter(id=mailbox_id))
    max_messages, max_bytes, messages, used = row.values_list(
        "max_messages", "max_bytes", "message_count", "byte_count"
    ).get()
    return Usage(max_messages=max_messages, max_bytes=max_bytes, messages=messages, bytes=used)


def _gateways_keeping(name: str) -> list[str]:
    """The API URLs of the known peers that keep the mailbox of an active name (the federation's replicas)."""
    record = NameRecord.objects.filter(name=name, status=NameRecord.Status.ACTIVE).first()
    if record is None or not record.gateways:
        return []
    urls = dict(
        Peer.objects.filter(identity_key__in=record.gateways, enabled=True).values_list("identity_key", "api_url")
    )
    return [urls[key] for key in record.gateways if urls.get(key)]


def messages_of(*, mailbox: Mailbox) -> QuerySet[Message]:
    """The mailbox's messages, newest first, without their ciphertexts."""
    return Message.objects.filter(mailbox=mailbox).defer("ciphertext").order_by("-id")


def message_of(*, mailbox: Mailbox, uid: str) -> Message:
    """One message of the mailbox, ciphertext included; 404 ``message_not_found`` otherwise."""
    message = Message.objects.filter(mailbox=mailbox, uid=uid).first() if message_uid_usable(uid) else None
    if message is None:
        raise DomainError("message_not_found", "No such message in this mailbox.", status=404)
    return message


def message_uid_usable(uid: str) -> bool:
    """Whether a uid from a URL can be one: anything but text of a uid's length and alphabet (a NUL byte, which
    PostgreSQL refuses outright) finds nothing, and is not asked for."""
    return 0 < len(uid) <= 32 and uid.isascii() and uid.replace("-", "").replace("_", "").isalnum()


@dataclass(frozen=True)
class DeliveryTarget:
    """The mailbox a delivery goes to (with its record), whether this sender's delivery id was stored in it before,
    and where the sender stands on the gateway's and the mailbox's lists."""

    mailbox: Mailbox
    stored_before: int | None  # the id of this sender's message with this delivery id
    blocked_by_staff: bool
    blocked_by_owner: bool
    allowed_by_owner: bool
    has_allow_list: bool


# The columns a delivery reads of the mailbox and its record; the others stay deferred (loaded if ever touched).
_TARGET_MAILBOX = columns(
    Mailbox, {"id", "record_id", "owner_key", "address", "auto_forward", "delete_forwarded", "retention_days"}
)
_TARGET_RECORD = HOLDER_COLUMNS
# After them, DeliveryTarget's other fields (stored_before, then its flags), in its order: delivery_targets_sql
# names each.
_TARGET_AFTER = len(fields(DeliveryTarget)) - 1


def delivery_targets(wanted: Sequence[tuple[str, str, bool, str]]) -> list[DeliveryTarget | None]:
    """Everything a delivery to a normalised name needs to read, for each ``(name, sender_key, sender_verified,
    delivery_id)``, in order, all in one round trip: the hot path of every delivery (a run of Maxima deliveries
    reads its targets together). ``None`` for a name with no mailbox kept here (whatever the name's status)."""
    if not wanted:
        return []
    query, params = delivery_targets_sql(wanted)
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    found: list[DeliveryTarget | None] = [None] * len(wanted)
    for index, *row in rows:
        found[index] = delivery_target_of(row)
    return found


def delivery_targets_sql(wanted: Sequence[tuple[str, str, bool, str]]) -> tuple[str, list[Any]]:
    """``delivery_targets``' query and its parameters, for a caller that reads a target in a statement of its own
    (``mailboxes.services.delivery``: a REST delivery read and written in one). Its columns: ``i`` (the index in
    ``wanted``), then what ``delivery_target_of`` takes, each named: ``m_<column>`` of the mailbox, ``r_<column>``
    of its record, ``stored_before``, ``blocked_by_staff``, ``blocked_by_owner``, ``allowed_by_owner``,
    ``has_allow_list``.

    Plain SQL over the unique indexes, because the ORM spends longer building these subqueries than the database
    takes to answer them. The deliveries are a derived table of constants (``SELECT … UNION ALL SELECT …``, which
    PostgreSQL and SQLite both take, and which PostgreSQL flattens for one delivery).
    """
    mailbox, record = Mailbox._meta.db_table, NameRecord._meta.db_table
    message, blocked, rule = Message._meta.db_table, BlockedSender._meta.db_table, SenderRule._meta.db_table
    columns = ", ".join(
        [
            *(f"m.{column} AS m_{column}" for column in _TARGET_MAILBOX),
            *(f"r.{column} AS r_{column}" for column in _TARGET_RECORD),
        ]
    )
    first, more = "SELECT %s AS i, %s AS name, %s AS sender, %s AS verified, %s AS did", "SELECT %s, %s, %s, %s, %s"
    given = " UNION ALL ".join([first] + [more] * (len(wanted) - 1))
    query = f"""
        SELECT v.i, {columns},
          (SELECT id FROM {message}
            WHERE mailbox_id = m.id AND sender_verified = v.verified AND sender_key = v.sender AND delivery_id = v.did)
            AS stored_before,
          EXISTS (SELECT 1 FROM {blocked} WHERE sender_key = v.sender) AS blocked_by_staff,
          EXISTS (SELECT 1 FROM {rule} WHERE mailbox_id = m.id AND sender_key = v.sender AND list = 'block')
            AS blocked_by_owner,
          EXISTS (SELECT 1 FROM {rule} WHERE mailbox_id = m.id AND sender_key = v.sender AND list = 'allow')
            AS allowed_by_owner,
          EXISTS (SELECT 1 FROM {rule} WHERE mailbox_id = m.id AND list = 'allow') AS has_allow_list
        FROM ({given}) v JOIN {record} r ON r.name = v.name JOIN {mailbox} m ON m.record_id = r.id
    """  # noqa: S608 (table and column names from the models; every value is a parameter)
    return query, [value for i, row in enumerate(wanted) for value in (i, *row)]


def delivery_target_of(row: Sequence[Any]) -> DeliveryTarget:
    """A ``DeliveryTarget`` from a row of ``delivery_targets_sql``, without its ``i``."""
    split = len(_TARGET_MAILBOX)
    target = Mailbox.from_db(connection.alias, _TARGET_MAILBOX, row[:split])
    target.record = NameRecord.from_db(connection.alias, _TARGET_RECORD, row[split : split + len(_TARGET_RECORD)])
    stored, *flags = row[split + len(_TARGET_RECORD) : split + len(_TARGET_RECORD) + _TARGET_AFTER]
    return DeliveryTarget(target, stored, *(bool(flag) for flag in flags))


@dataclass(frozen=True)
class CredentialRead:
    """A credential (a ``Session`` with its record, or an ``AccessToken`` with its mailbox and record), the mailbox
    it reads (None: none kept here for the session's name) and the messages asked for."""

    credential: Session | AccessToken
    mailbox: Mailbox | None
    messages: list[Message]


_READ_SESSION = columns(Session, {"id", "token_hash", "record_id", "owner_key", "purpose", "expires_at", "revoked_at"})
_READ_TOKEN = columns(AccessToken, {"id", "token_id", "secret_hash", "mailbox_id", "owner_key", "revoked_at"})
_READ_RECORD = HOLDER_COLUMNS
_READ_MAILBOX = columns(Mailbox, {"id", "record_id", "owner_key"})
_READ_MESSAGE = columns(
    Message,
    {"id", "uid", "mailbox_id", "sender_key", "sender_verified", "scheme", "size", "received_at", "expires_at", "state"}
    | {"forwarded_at"},
)
_READ_CIPHERTEXT = columns(Message, {*_READ_MESSAGE, "ciphertext"})


# The sizes a read of the newest messages asks PostgreSQL for (``credential_read``): up to a page of the largest
# size and one more.
_NEWEST_LIMITS = (11, 21, 51, 101, CursorPagination.max_page_size + 1)


def credential_read(
    *, session_digest: str | None = None, token_id: str | None = None, uid: str | None = None, newest: int = 0
) -> CredentialRead | None:
    """A credential's read of its mailbox in one round trip (more the first time on a connection, which prepares
    the statement: ``execute_prepared``): the session of a token's digest with its record and
    that record's mailbox (or the access token ``token_id`` with its mailbox and record), and either the message
    ``uid`` of that mailbox (ciphertext included) or its ``newest`` messages, newest first (no ciphertexts).
    ``None``: no such session or token.

    Nothing here decides whether the credential may read: the caller checks it as for any request
    (``handshake.services.session_live`` or ``services.access_token_live``, and the scope) before using what was
    read. Only the credential's own mailbox's messages are returned: the newest are found through the same
    credential, and a message by its uid is kept only if it is in that mailbox.
    """
    session, token, record = Session._meta.db_table, AccessToken._meta.db_table, NameRecord._meta.db_table
    mailbox, message = Mailbox._meta.db_table, Message._meta.db_table
    kept = _READ_CIPHERTEXT if uid is not None else _READ_MESSAGE
    if session_digest is not None:
        picked = [("c", Session, _READ_SESSION), ("r", NameRecord, _READ_RECORD), ("m", Mailbox, _READ_MAILBOX)]
        found = f"{session} c JOIN {record} r ON r.id = c.record_id LEFT JOIN {mailbox} m ON m.record_id = r.id"
        owned = f"SELECT m2.id FROM {session} c2 JOIN {mailbox} m2 ON m2.record_id = c2.record_id"  # noqa: S608
        where, key = "token_hash", session_digest
    else:
        picked = [("c", AccessToken, _READ_TOKEN), ("r", NameRecord, _READ_RECORD), ("m", Mailbox, _READ_MAILBOX)]
        found = f"{token} c JOIN {mailbox} m ON m.id = c.mailbox_id JOIN {record} r ON r.id = m.record_id"
        owned = f"SELECT c2.mailbox_id FROM {token} c2"  # noqa: S608
        where, key = "token_id", token_id
    picked.append(("g", Message, kept))
    columns = ", ".join(f"{alias}.{column}" for alias, _, names in picked for column in names)
    if uid is not None:
        # By its uid alone (the unique index), then kept only if it is the credential's mailbox's (the join). The
        # LIMIT keeps PostgreSQL from pushing the mailbox into the subquery: with it, a big mailbox among a million
        # messages was walked row by row through a (mailbox, …) index, its size unknown to the planner.
        params = [uid]
        messages = f"SELECT {', '.join(kept)} FROM {message} WHERE uid = %s LIMIT 1"  # noqa: S608
    else:
        # The LIMIT is in the text, so that PostgreSQL keeps one plan for it (``execute_prepared``: as a
        # parameter, every read was planned again for its value), and it is one of a few sizes, so that the
        # statements kept on a connection are few: the smallest that holds ``newest``, the extra rows sent but not
        # converted (``fetchmany``).
        params = [key]
        limit = next((size for size in _NEWEST_LIMITS if size >= newest), None)
        if limit is None:
            raise ValueError(f"at most {_NEWEST_LIMITS[-1]} of the newest messages are read at once, not {newest}")
        messages = (
            f"SELECT {', '.join(kept)} FROM {message} "  # noqa: S608
            f"WHERE mailbox_id = ({owned} WHERE c2.{where} = %s) ORDER BY id DESC LIMIT {limit}"
        )
    query = f"""
        SELECT {columns}
        FROM {found}
          LEFT JOIN ({messages}) g ON g.mailbox_id = m.id
        WHERE c.{where} = %s
        ORDER BY g.id DESC
    """  # noqa: S608 (table and column names from the models; every value is a parameter)
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: each use of the proxy is a look-up of its own
    with db.cursor() as cursor:
        db.execute_prepared(cursor, query, [*params, key])
        rows = cursor.fetchall() if uid is not None else cursor.fetchmany(max(newest, 1))
    if not rows:
        return None
    loaders = [loader(db, model, names) for _, model, names in picked]
    loaded, at = [], 0
    for load in loaders[:3]:
        loaded.append(load(db, rows[0][at : at + load.width]))
        at += load.width
    credential, found_record, found_mailbox = loaded
    if found_mailbox.id is None:
        found_mailbox = None
    else:
        found_mailbox.record = found_record
    if isinstance(credential, Session):
        credential.record = found_record
    else:
        credential.mailbox = found_mailbox
    messages = [loaders[3](db, row[at:]) for row in (rows if uid is not None else rows[:newest]) if row[at] is not None]
    return CredentialRead(credential, found_mailbox, messages)


def delivery_find(*, mailbox: Mailbox, sender_key: str, sender_verified: bool, delivery_id: str) -> Message | None:
    """The message stored for this sender's delivery id, if it was stored before (without its ciphertext)."""
    key = (mailbox.id, sender_key, sender_verified, delivery_id)
    return deliveries_found([key]).get(key)


def deliveries_found(keys: Sequence[tuple[int, str, bool, str]]) -> dict[tuple[int, str, bool, str], Message]:
    """The messages stored for these deliveries, each ``(mailbox_id, sender_key, sender_verified, delivery_id)``,
    by key (without their ciphertexts); one statement. Each key is the whole of ``message_delivery_once``, so each
    is one probe of that index, whatever the mailbox holds: the keys are a ``VALUES`` list joined on all four
    columns. (Given as an OR of whole keys, or an ``IN`` of the ids, a run's keys that share their mailbox and
    sender were folded by PostgreSQL's planner into those three columns whenever its statistics expected few
    messages of that sender there, and every one of them was read to filter the ids: 19 ms and 19 000 pages for a
    run to a mailbox of 18 000 messages.)"""
    unique = list(dict.fromkeys(keys))
    if not unique:
        return {}
    table = Message._meta.db_table
    columns = ", ".join(f"m.{field.column}" for field in Message._meta.concrete_fields if field.name != "ciphertext")
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(unique))
    query = (
        f"SELECT {columns} FROM (VALUES {rows}) AS k JOIN {table} m ON m.mailbox_id = k.column1"  # noqa: S608
        " AND m.sender_verified = k.column3 AND m.sender_key = k.column2 AND m.delivery_id = k.column4"
    )
    found = Message.objects.raw(query, [value for key in unique for value in key])
    return {(m.mailbox_id, m.sender_key, m.sender_verified, m.delivery_id): m for m in found}


def sender_lists(*, mailbox: Mailbox) -> dict[str, list[str]]:
    """The mailbox's block and allow lists, oldest entry first."""
    lists: dict[str, list[str]] = {"blocked": [], "allowed": []}
    for kind, key in SenderRule.objects.filter(mailbox=mailbox).order_by("id").values_list("list", "sender_key"):
        lists["blocked" if kind == SenderRule.List.BLOCK else "allowed"].append(key)
    return lists


def access_token_live(*, mailbox: Mailbox) -> AccessToken:
    """The mailbox's live access token; 404 ``token_not_found`` once it was revoked."""
    token = AccessToken.objects.filter(mailbox=mailbox, revoked_at=None).first()
    if token is None:
        raise DomainError("token_not_found", "This mailbox has no live access token; rotate to make one.", status=404)
    return token


def registration_of(*, challenge: Challenge) -> Registration | None:
    """What the registration behind a ``register`` challenge asked for.

    A challenge issued with ``POST /handshakes`` (a retry after the first one expired) has no registration of its
    own: the name's latest one for the same owner stands in.
    """
    own = Registration.objects.filter(challenge=challenge).first()
    if own is not None:
        return own
    return (
        Registration.objects.filter(record_id=challenge.record_id, challenge__owner_key=challenge.owner_key)
        .order_by("-created_at", "-id")
        .first()
    )


def registrations_over_maxima(*, challenge_ids: list[str]) -> QuerySet[Registration]:
    """The registrations of these challenges that arrived over Maxima (their refusal goes back the same way)."""
    return Registration.objects.filter(challenge_id__in=challenge_ids, source="maxima")


def mailboxes_with_expired(*, now: datetime, limit: int) -> list[int]:
    """Mailboxes holding messages past their expiry."""
    due = Message.objects.filter(expires_at__lte=now).order_by("mailbox_id").values_list("mailbox_id", flat=True)
    return list(due.distinct()[:limit])


def forwards_unmarked(*, limit: int) -> list[int]:
    """Outbound ids of forwards that were sent but whose message is still ``forwarding`` (a missed mark)."""
    return list(
        Message.objects.filter(state=Message.State.FORWARDING, outbound__status=OutboundMessage.Status.SENT)
        .order_by("id")
        .values_list("outbound_id", flat=True)[:limit]
    )


@dataclass(frozen=True)
class QueuedReceipt:
    """A receipt the gateway queued for a sender's node, as ``GET /receipts/{id}`` answers it."""

    receipt: Receipt
    sent: bool


def receipt_key(*, delivery_id: str, sender_key: str) -> str:
    """The outbox idempotency key of the ``stored`` receipt for this sender's delivery id; a refusal's key adds
    ``:refused:{reason}`` (``services.delivery._receipts_send`` writes them, ``receipt_of`` reads them)."""
    return f"receipt:{delivery_id}:{hashlib.sha256(sender_key.encode()).hexdigest()[:32]}"


def receipt_of(*, delivery_id: str, sender_key: str) -> QueuedReceipt:
    """The receipt queued for this sender (canonical ``0x…`` key) and delivery id: the ``stored`` one if there is
    one, else the latest refusal; 404 ``receipt_not_found`` when none is in the outbox (not yet, or purged)."""
    key = receipt_key(delivery_id=delivery_id, sender_key=sender_key)
    rows = OutboundMessage.objects.filter(Q(idempotency_key=key) | Q(idempotency_key__startswith=key + ":refused:"))
    found = sorted(
        rows.only("idempotency_key", "payload", "status"), key=lambda row: (row.idempotency_key != key, -row.id)
    )
    for row in found:
        try:
            return QueuedReceipt(Receipt.from_bytes(bytes(row.payload)), row.status == OutboundMessage.Status.SENT)
        except MailboxMessageInvalid:  # never written by this gateway; skip rather than answer 500
            continue
    raise DomainError("receipt_not_found", "No receipt for this delivery id and sender (yet, or any more).", status=404)
