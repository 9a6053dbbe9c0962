"""Reads of the mailboxes. Listings never load a ciphertext: only ``message_of`` does, for the one message asked."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Model, Q, QuerySet

from core.errors import DomainError
from federation.models import Peer
from handshake.models import Challenge
from mailboxes.models import AccessToken, BlockedSender, Mailbox, Message, Registration, SenderRule
from maxima.models import OutboundMessage
from mns_client.protocol.mailbox import MailboxMessageInvalid, Receipt
from registry.models import NameRecord


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
    # The uid comes from the URL: anything but text of a uid's length and alphabet (a NUL byte, which PostgreSQL
    # refuses outright) finds nothing.
    usable = 0 < len(uid) <= 32 and uid.isascii() and uid.replace("-", "").replace("_", "").isalnum()
    message = Message.objects.filter(mailbox=mailbox, uid=uid).first() if usable else None
    if message is None:
        raise DomainError("message_not_found", "No such message in this mailbox.", status=404)
    return message


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


def _columns(model: type[Model], wanted: set[str]) -> tuple[str, ...]:
    """``wanted`` in the model's field order, as ``Model.from_db`` takes them."""
    return tuple(field.attname for field in model._meta.concrete_fields if field.attname in wanted)


# The columns a delivery reads of the mailbox and its record; the others stay deferred (loaded if ever touched).
_TARGET_MAILBOX = _columns(
    Mailbox, {"id", "record_id", "owner_key", "address", "auto_forward", "delete_forwarded", "retention_days"}
)
_TARGET_RECORD = _columns(NameRecord, {"id", "name", "status", "owner_key"})


def delivery_target(*, name: str, sender_key: str, sender_verified: bool, delivery_id: str) -> DeliveryTarget | None:
    """Everything a delivery to a normalised name needs to read, in one round trip: the hot path of every delivery.
    ``None`` when no mailbox is kept here for the name (whatever the name's status).

    Plain SQL over the unique indexes, because the ORM spends longer building these subqueries than the database
    takes to answer them.
    """
    mailbox, record = Mailbox._meta.db_table, NameRecord._meta.db_table
    message, blocked, rule = Message._meta.db_table, BlockedSender._meta.db_table, SenderRule._meta.db_table
    columns = ", ".join([*(f"m.{column}" for column in _TARGET_MAILBOX), *(f"r.{column}" for column in _TARGET_RECORD)])
    query = f"""
        SELECT {columns},
          (SELECT id FROM {message}
            WHERE mailbox_id = m.id AND sender_verified = %s AND sender_key = %s AND delivery_id = %s),
          EXISTS (SELECT 1 FROM {blocked} WHERE sender_key = %s),
          EXISTS (SELECT 1 FROM {rule} WHERE mailbox_id = m.id AND sender_key = %s AND list = 'block'),
          EXISTS (SELECT 1 FROM {rule} WHERE mailbox_id = m.id AND sender_key = %s AND list = 'allow'),
          EXISTS (SELECT 1 FROM {rule} WHERE mailbox_id = m.id AND list = 'allow')
        FROM {record} r JOIN {mailbox} m ON m.record_id = r.id
        WHERE r.name = %s
    """  # noqa: S608 (table and column names from the models; every value is a parameter)
    params = [sender_verified, sender_key, delivery_id, sender_key, sender_key, sender_key, name]
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(_TARGET_MAILBOX)
    found = Mailbox.from_db(connection.alias, _TARGET_MAILBOX, row[:split])
    found.record = NameRecord.from_db(connection.alias, _TARGET_RECORD, row[split : split + len(_TARGET_RECORD)])
    stored, *flags = row[split + len(_TARGET_RECORD) :]
    return DeliveryTarget(found, stored, *(bool(flag) for flag in flags))


def delivery_find(*, mailbox: Mailbox, sender_key: str, sender_verified: bool, delivery_id: str) -> Message | None:
    """The message stored for this sender's delivery id, if it was stored before (without its ciphertext)."""
    return (
        Message.objects.filter(
            mailbox=mailbox, sender_key=sender_key, sender_verified=sender_verified, delivery_id=delivery_id
        )
        .defer("ciphertext")
        .first()
    )


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
    ``:refused:{reason}`` (``services.delivery._receipt_send`` writes them, ``receipt_of`` reads them)."""
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
