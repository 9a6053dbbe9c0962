"""Mailboxes: registration, the access token, deliveries, reading and deleting, forwarding, expiry, moderation.

Every refusal raises before anything is written (a ``DomainError`` with its own code), and the writes that must
hold together share one transaction. The quota is kept by the database: a delivery reserves its space with one
conditional UPDATE of the mailbox's counters (``count + 1 <= max AND bytes + n <= max``), so concurrent
deliveries can never overfill a mailbox, and every delete gives back exactly what it deleted.
"""

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from core import ratelimit
from core.errors import DomainError
from core.staff import required_reason
from federation import services as federation
from mailboxes import selectors
from mailboxes.models import AccessToken, AuditEntry, BlockedSender, Mailbox, Message, Registration, SenderRule
from maxima.models import OutboundMessage
from maxima.routing import Ignored, InboundMessage
from maxima.services import outbound_enqueue, outbound_retry
from mns_client.protocol.codecs import from_hex, parse_public_key, public_key_hex
from mns_client.protocol.crypto import maxencrypt
from mns_client.protocol.errors import CodecError
from mns_client.protocol.handshake import secret_hash
from mns_client.protocol.mailbox import (
    APPLICATION,
    SCHEMES,
    TOKEN_ID_RE,
    AccessTokenMessage,
    Deliver,
    Forwarded,
    MailboxMessageInvalid,
    Receipt,
    access_token_plaintext,
    address_text,
    delivery_id_of,
    reply_to_of,
)
from mns_client.protocol.names import NameRefused, normalise
from registry.models import NameRecord

logger = logging.getLogger(__name__)

NameStatus = NameRecord.Status
State = Message.State
MAX_SECRET_CHARS = 128
# The HTTP status of each delivery refusal; the code is also the receipt's reason
# (mns_client.protocol.mailbox.REFUSALS).
REFUSAL_STATUS = {
    "malformed": 400,
    "unknown_name": 404,
    "suspended": 403,
    "bad_scheme": 400,
    "too_large": 413,
    "blocked": 403,
    "rate_limited": 429,
    "over_quota": 507,
}


class DeliveryRefused(DomainError):
    """A delivery the gateway will not store; ``code`` is the receipt's ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail, status=REFUSAL_STATUS[reason])


# ------------------------------------------------------------------------------------------------ registration
# The flow itself is ``registration.services``; these are the mailbox's rows it writes.


def registration_record(*, challenge_id: str, record: NameRecord, address: str, source: str) -> Registration:
    """Keep what a registration asked for (where the mailbox forwards to) with its ``register`` challenge."""
    return Registration.objects.create(
        challenge_id=challenge_id, record=record, address=address_check(address), source=source
    )


def mailbox_open(*, record: NameRecord, owner_key: str, address: str) -> Mailbox:
    """The mailbox of a name just confirmed for ``owner_key``, with a new access token queued to its address.

    A mailbox left from the name's previous owner is deleted with its messages; the owner's own one is kept (its
    address updated when one is given)."""
    mailbox = Mailbox.objects.select_for_update().filter(record=record).first()
    if mailbox is not None and mailbox.owner_key != owner_key:
        logger.info("deleting the mailbox of %s left by its previous owner", record.name)
        mailbox.delete()
        mailbox = None
    if mailbox is None:
        mailbox = Mailbox.objects.create(
            record=record,
            owner_key=owner_key,
            address=address,
            max_messages=settings.MNS_MAILBOX_MAX_MESSAGES,
            max_bytes=settings.MNS_MAILBOX_MAX_BYTES,
        )
    elif address:
        Mailbox.objects.filter(id=mailbox.id).update(address=address, updated_at=timezone.now())
        mailbox.address = address
    access_token_issue(mailbox=mailbox)
    return mailbox


def mailbox_replicate(*, record: NameRecord, owner_key: str, address: str) -> Mailbox:
    """A replica of a mailbox whose home gateway announced it (no access token here: the owner reads with a
    handshake session). A mailbox left by the name's previous owner is replaced; the same one again is kept."""
    mailbox = Mailbox.objects.select_for_update().filter(record=record).first()
    if mailbox is not None and mailbox.owner_key == owner_key:
        return mailbox
    if mailbox is not None:
        mailbox.delete()
    return Mailbox.objects.create(
        record=record,
        owner_key=owner_key,
        address=address if _address_or_empty(address) else "",
        max_messages=settings.MNS_MAILBOX_MAX_MESSAGES,
        max_bytes=settings.MNS_MAILBOX_MAX_BYTES,
    )


def message_replicate(
    *,
    mailbox: Mailbox,
    uid: str,
    delivery_id: str,
    sender_key: str,
    sender_verified: bool,
    scheme: str,
    ciphertext: bytes,
    received_at: datetime,
) -> str:
    """Store a message another replica stored, under the same public id; ``applied`` or ``duplicate``.

    Counted against the quota like a delivery (refused ``over_quota`` otherwise); a message already here (the
    same id, or the same sender's delivery id) is not stored or counted again.
    """
    if Message.objects.filter(uid=uid).exists():
        return "duplicate"
    _check_content(scheme, ciphertext)
    try:
        with transaction.atomic():
            _reserve(mailbox, len(ciphertext))
            _message_row(
                mailbox, delivery_id, scheme, ciphertext, sender_key, sender_verified, received_at=received_at, uid=uid
            )
    except IntegrityError:
        return "duplicate"
    return "applied"


def message_replicated_delete(*, name: str, uid: str) -> int:
    """A replica deleted a message: delete it here too (gone already changes nothing)."""
    mailbox = selectors.mailbox_find(name=name)
    if mailbox is None:
        return 0
    return _messages_delete(mailbox_id=mailbox.id, messages=Message.objects.filter(uid=uid))


def _address_or_empty(value: str) -> bool:
    try:
        address_text(value)
    except MailboxMessageInvalid:
        return False
    return True


# ------------------------------------------------------------------------------------------------ access token


def access_token_issue(*, mailbox: Mailbox, revoked_by: str = "rotation") -> AccessToken:
    """A new access token for the mailbox, replacing the live one; its blob is queued to the owner's address.

    The secret exists only inside the ``maxencrypt`` blob (to the owner's Maxima key) and as its SHA-256. The
    mailbox row is locked first, so two rotations at once make one token each, in turn (and the database allows
    one live token per mailbox whatever happens).
    """
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        mailbox = Mailbox.objects.select_for_update().select_related("record").get(id=mailbox.id)
        now = timezone.now()
        AccessToken.objects.filter(mailbox=mailbox, revoked_at=None).update(revoked_at=now, revoked_by=revoked_by)
        token = AccessToken(mailbox=mailbox, name=mailbox.record.name, owner_key=mailbox.owner_key)
        token.blob = maxencrypt(
            from_hex(mailbox.owner_key), access_token_plaintext(token_id=token.token_id, secret=secret)
        )
        token.secret_hash = secret_hash(secret)
        token.save()
        outbound_enqueue(
            destination=mailbox.address or mailbox.owner_key,
            application=APPLICATION,
            payload=AccessTokenMessage(name=token.name, token_id=token.token_id, blob=bytes(token.blob)).to_bytes(),
            idempotency_key=f"access-token:{token.token_id}",
        )
    return token


def access_token_revoke(*, mailbox: Mailbox, by: str) -> int:
    """Revoke the mailbox's live token (``by``: 'owner' or a staff username); revoking again changes nothing."""
    return AccessToken.objects.filter(mailbox=mailbox, revoked_at=None).update(revoked_at=timezone.now(), revoked_by=by)


def access_token_authenticate(*, credentials: str) -> AccessToken:
    """The live token of ``<token_id>:<secret>``, or a refusal: 401 ``token_invalid``/``token_revoked``, 403
    ``name_suspended``. A token dies with its name's ownership (released, or another owner since)."""
    token_id, _, secret = credentials.partition(":")
    if not TOKEN_ID_RE.fullmatch(token_id) or not secret.isascii() or not 0 < len(secret) <= MAX_SECRET_CHARS:
        raise _token_invalid()
    token = AccessToken.objects.select_related("mailbox__record").filter(token_id=token_id).first()
    if token is None or not hmac.compare_digest(token.secret_hash, secret_hash(secret)):
        raise _token_invalid()
    if token.revoked_at is not None:
        raise DomainError("token_revoked", "This access token was revoked or replaced.", status=401)
    record = token.mailbox.record
    if record.status == NameStatus.SUSPENDED:
        raise DomainError(
            "name_suspended", f"The name {record.name!r} is suspended by this gateway's staff.", status=403
        )
    if record.status != NameStatus.ACTIVE or _canonical_key(record.owner_key) != token.owner_key:
        raise DomainError("token_invalid", "The name of this token changed hands or was released.", status=401)
    return token


def access_token_check_scope(*, token: AccessToken, name: str) -> None:
    """An access token is good for everything on its own mailbox, and nothing on any other."""
    if token.mailbox.record.name != name:
        raise DomainError(
            "token_out_of_scope", f"This access token is for {token.mailbox.record.name!r}, not {name!r}.", status=403
        )


def _token_invalid() -> DomainError:
    return DomainError("token_invalid", "Unknown access token.", status=401)


# -------------------------------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class Stored:
    message: Message
    created: bool  # False: this sender's delivery id was stored before


def delivery_store(
    *, to: str, delivery_id: str, scheme: str, ciphertext: bytes, sender_key: str, sender_verified: bool
) -> Stored:
    """Store one delivery, or refuse it (``DeliveryRefused``, nothing written) with the receipt's reason.

    Checks, in order: the name has a mailbox here (``unknown_name``) that is not suspended (``suspended``); the
    same sender's ``delivery_id`` stored before is answered as stored again, before any other check; then the
    scheme (``bad_scheme``), the size (``too_large``), the sender (``blocked``: staff's gateway-wide list, the
    mailbox's block list, or not on its non-empty allow list), the per-sender rate (``rate_limited``) and the
    quota (``over_quota``). A REST submission (``sender_verified=False``) never matches a Maxima delivery.
    """
    mailbox = _mailbox_for_delivery(to)
    context = selectors.delivery_context(
        mailbox=mailbox, sender_key=sender_key, sender_verified=sender_verified, delivery_id=delivery_id
    )
    if context.stored_before is not None:
        return Stored(message=Message.objects.defer("ciphertext").get(id=context.stored_before), created=False)
    _check_content(scheme, ciphertext)
    _check_sender(context, sender_key, sender_verified)
    _check_rate(mailbox, sender_key if sender_verified else "")
    try:
        with transaction.atomic():
            _reserve(mailbox, len(ciphertext))
            message = _message_create(mailbox, delivery_id, scheme, ciphertext, sender_key, sender_verified)
            federation.op_append(kind="message", payload=_message_op(message, mailbox))
    except IntegrityError:  # the same delivery, stored by a concurrent worker since we looked
        before = selectors.delivery_find(
            mailbox=mailbox, sender_key=sender_key, sender_verified=sender_verified, delivery_id=delivery_id
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
        )
    except (DeliveryRefused, MailboxMessageInvalid) as refused:
        receipt = Receipt(id=delivery_id, status="refused", reason=refused.code, detail=_detail(refused))
        logger.info("refused a delivery over Maxima: %s", refused.code)
    else:
        receipt = Receipt(id=delivery_id, status="stored", message_id=stored.message.uid)
    _receipt_send(receipt, destination=destination, sender_key=message.sender)
    return receipt.status if receipt.status == "stored" else str(receipt.reason)


def delivery_submit(*, name: str, delivery_id: str, scheme: str, ciphertext: bytes, sender_key: str) -> Stored:
    """A delivery over REST (``MNS_REST_SUBMISSION``): the same checks, stored with an unverified sender."""
    if not settings.MNS_REST_SUBMISSION:
        raise DomainError("submission_disabled", "This gateway takes deliveries over Maxima only.", status=403)
    return delivery_store(
        to=name,
        delivery_id=delivery_id,
        scheme=scheme,
        ciphertext=ciphertext,
        sender_key=sender_key,
        sender_verified=False,
    )


def _mailbox_for_delivery(to: str) -> Mailbox:
    try:
        name = normalise(to)
    except NameRefused:
        raise DeliveryRefused("unknown_name", "The recipient is not a name.") from None
    mailbox = selectors.mailbox_find(name=name)
    record = mailbox.record if mailbox is not None else None
    if record is not None and record.status == NameStatus.SUSPENDED:
        raise DeliveryRefused("suspended", f"The mailbox of {name!r} is suspended by this gateway's staff.")
    if record is None or record.status != NameStatus.ACTIVE or record.owner_key != mailbox.owner_key:
        raise DeliveryRefused("unknown_name", f"No mailbox of {name!r} is kept by this gateway.")
    return mailbox


def _message_op(message: Message, mailbox: Mailbox) -> dict[str, Any]:
    """A stored message as the peers learn of it (its ciphertext joins it on the wire, from the message row)."""
    return {
        "name": mailbox.record.name,
        "uid": message.uid,
        "delivery_id": message.delivery_id,
        "sender": message.sender_key,
        "sender_verified": message.sender_verified,
        "scheme": message.scheme,
        "received_at": _ms(message.received_at),
    }


def _check_content(scheme: str, ciphertext: bytes) -> None:
    if scheme not in SCHEMES:
        raise DeliveryRefused("bad_scheme", f"The scheme must be one of {', '.join(SCHEMES)}.")
    if len(ciphertext) > settings.MNS_MAX_MESSAGE_BYTES:
        raise DeliveryRefused(
            "too_large", f"The ciphertext may be at most {settings.MNS_MAX_MESSAGE_BYTES} bytes here."
        )


def _check_sender(context: selectors.DeliveryContext, sender_key: str, sender_verified: bool) -> None:
    if sender_key and context.blocked_by_staff:
        raise DeliveryRefused("blocked", "This gateway does not accept messages from this sender.")
    if sender_key and context.blocked_by_owner:
        raise DeliveryRefused("blocked", "The owner of this mailbox blocked this sender.")
    if context.has_allow_list and not (sender_verified and context.allowed_by_owner):
        raise DeliveryRefused("blocked", "This mailbox accepts messages from the senders it lists only.")


def _check_rate(mailbox: Mailbox, sender_key: str) -> None:
    """A one-minute window per (mailbox, sender), shared by every worker through the cache."""
    sender = hashlib.sha256(sender_key.encode()).hexdigest()[:32] if sender_key else "unverified"
    counted = ratelimit.hit(f"mailbox:{mailbox.id}:{sender}", window=60)
    if counted is not None and counted[0] > settings.MNS_DELIVERY_RATE_PER_MINUTE:
        raise DeliveryRefused(
            "rate_limited", f"At most {settings.MNS_DELIVERY_RATE_PER_MINUTE} deliveries a minute to this mailbox."
        )


def _reserve(mailbox: Mailbox, size: int) -> None:
    """Take room for one message of ``size`` bytes in one conditional UPDATE, or refuse ``over_quota``.

    Concurrent deliveries to one mailbox queue on its row; each re-evaluates the condition once the one before
    committed, so the counters never pass the quota (and the check constraints would refuse it anyway).
    """
    reserved = Mailbox.objects.filter(
        id=mailbox.id, message_count__lt=F("max_messages"), byte_count__lte=F("max_bytes") - size
    ).update(message_count=F("message_count") + 1, byte_count=F("byte_count") + size)
    if not reserved:
        raise DeliveryRefused("over_quota", "The mailbox is full; its owner has to read and delete messages first.")


def _message_create(
    mailbox: Mailbox, delivery_id: str, scheme: str, ciphertext: bytes, sender_key: str, sender_verified: bool
) -> Message:
    message = _message_row(
        mailbox, delivery_id, scheme, ciphertext, sender_key, sender_verified, received_at=timezone.now()
    )
    if mailbox.auto_forward and mailbox.address:
        _forward_queue(message, mailbox, delete=mailbox.delete_forwarded)
    return message


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
    """The message row of a delivery or a replica's copy (``fields``: its ``uid``); it expires after the mailbox's
    retention, counted from its arrival."""
    return Message.objects.create(
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


def _receipt_send(receipt: Receipt, *, destination: str, sender_key: str) -> None:
    key = selectors.receipt_key(delivery_id=receipt.id, sender_key=sender_key)
    if receipt.status == "refused":  # a refusal must not stand in for a later "stored" of the same id
        key += f":refused:{receipt.reason}"
    outbound_enqueue(destination=destination, application=APPLICATION, payload=receipt.to_bytes(), idempotency_key=key)


def retention_days(mailbox: Mailbox) -> int:
    """The owner's retention, never longer than the gateway's."""
    return min(mailbox.retention_days or settings.MNS_RETENTION_DAYS, settings.MNS_RETENTION_DAYS)


# ---------------------------------------------------------------------------------------------- read and delete


def message_delete(*, mailbox: Mailbox, uid: str) -> None:
    """Delete one message of the mailbox; 404 ``message_not_found`` if it is not (or no longer) there."""
    if not _messages_delete(mailbox_id=mailbox.id, messages=Message.objects.filter(uid=uid), replicate=True):
        raise DomainError("message_not_found", "No such message in this mailbox.", status=404)


def messages_ack(*, mailbox: Mailbox, uids: list[str]) -> int:
    """Delete the listed messages of the mailbox (ids of other mailboxes, or gone already, are skipped)."""
    return _messages_delete(mailbox_id=mailbox.id, messages=Message.objects.filter(uid__in=uids), replicate=True)


def mailbox_messages_expire(*, mailbox_id: int, now: datetime | None = None, batch: int = 500) -> int:
    """Delete the mailbox's messages past their expiry, in batches; returns how many. Safe to run twice."""
    now, total = now or timezone.now(), 0
    while True:
        due = Message.objects.filter(mailbox_id=mailbox_id, expires_at__lte=now).order_by("id")
        ids = list(due.values_list("id", flat=True)[:batch])
        if not ids:
            break
        total += _messages_delete(mailbox_id=mailbox_id, messages=Message.objects.filter(id__in=ids))
    if total:
        logger.info("expired %s messages of mailbox %s", total, mailbox_id)
    return total


def _messages_delete(*, mailbox_id: int, messages: QuerySet[Message], replicate: bool = False) -> int:
    """Delete messages of one mailbox and give their room back, counting only what this call deleted.

    The rows are locked first: of two concurrent deletes of one message only one sees it, so the counters are
    decremented once (on PostgreSQL, FOR UPDATE skips a row another transaction deleted meanwhile). ``replicate``:
    the owner (or staff) deleted them, so the other replicas delete them too (expiry runs on each gateway).
    """
    with transaction.atomic():
        rows = list(messages.filter(mailbox_id=mailbox_id).select_for_update().values_list("id", "size", "uid"))
        if not rows:
            return 0
        Message.objects.filter(id__in=[row[0] for row in rows]).delete()
        Mailbox.objects.filter(id=mailbox_id).update(
            message_count=F("message_count") - len(rows), byte_count=F("byte_count") - sum(row[1] for row in rows)
        )
        if replicate:
            name = Mailbox.objects.filter(id=mailbox_id).values_list("record__name", flat=True).get()
            for row in rows:
                federation.op_append(kind="delete", payload={"name": name, "uid": row[2]})
    return len(rows)


# -------------------------------------------------------------------------------------------------- forwarding


@dataclass(frozen=True)
class ForwardSummary:
    queued: int  # stored messages now queued for forwarding
    retried: int  # forwards that had failed for good, queued again
    in_flight: int  # forwards already queued and still being tried


def mailbox_forward(*, mailbox: Mailbox, delete_after: bool = False) -> ForwardSummary:
    """Send every stored message to the owner's address through the outbox (option 2 of the seed).

    A message becomes ``forwarding`` now and ``forwarded`` only when its outbound message is ``sent`` (the node
    said ``delivered:true``; see ``message_forwarded``); the outbox retries the others. Asking again re-queues the
    forwards that failed for good and leaves the rest alone. ``delete_after`` deletes each one once forwarded.
    """
    if not mailbox.address:
        raise DomainError("address_missing", "Set the mailbox's address before forwarding.", status=409)
    queued = retried = in_flight = 0
    with transaction.atomic():
        pending = Message.objects.select_for_update(of=("self",)).select_related("outbound")
        for message in pending.filter(mailbox=mailbox, state__in=[State.STORED, State.FORWARDING]).order_by("id"):
            if message.state == State.STORED:
                _forward_queue(message, mailbox, delete=delete_after)
                queued += 1
                continue
            if delete_after and not message.delete_when_forwarded:
                Message.objects.filter(id=message.id).update(delete_when_forwarded=True)
            if message.outbound is None or message.outbound.status in _GIVEN_UP:
                _forward_requeue(message, mailbox)
                retried += 1
            else:
                in_flight += 1
    logger.info("forwarding %s: %s queued, %s retried, %s in flight", mailbox.record.name, queued, retried, in_flight)
    return ForwardSummary(queued=queued, retried=retried, in_flight=in_flight)


_GIVEN_UP = (OutboundMessage.Status.FAILED, OutboundMessage.Status.CANCELLED)


def _forward_queue(message: Message, mailbox: Mailbox, *, delete: bool) -> None:
    outbound = outbound_enqueue(
        destination=mailbox.address,
        application=APPLICATION,
        payload=_forwarded(message, mailbox).to_bytes(),
        idempotency_key=f"forward:{message.id}",
    )
    Message.objects.filter(id=message.id).update(
        state=State.FORWARDING, outbound=outbound, delete_when_forwarded=delete
    )


def _forward_requeue(message: Message, mailbox: Mailbox) -> None:
    if message.outbound is None:  # its outbound row was deleted by staff: queue it anew
        _forward_queue(message, mailbox, delete=message.delete_when_forwarded)
    else:
        outbound_retry(message_id=message.outbound.id)


def _forwarded(message: Message, mailbox: Mailbox) -> Forwarded:
    return Forwarded(
        name=mailbox.record.name,
        message_id=message.uid,
        sender=message.sender_key,
        sender_verified=message.sender_verified,
        scheme=message.scheme,
        ciphertext=bytes(message.ciphertext),
        received_at=_ms(message.received_at),
    )


def message_forwarded(*, outbound_id: int) -> bool:
    """The outbox sent a forward (``delivered:true``): mark its message forwarded, or delete it if asked.

    Called by the transport right after it marks the outbound message sent, and by the beat sweep for any it
    missed; a message no longer ``forwarding`` is left alone, so running it twice changes nothing.
    """
    with transaction.atomic():
        message = Message.objects.select_for_update().filter(outbound_id=outbound_id, state=State.FORWARDING).first()
        if message is None:
            return False
        if message.delete_when_forwarded:
            _messages_delete(
                mailbox_id=message.mailbox_id, messages=Message.objects.filter(id=message.id), replicate=True
            )
        else:
            Message.objects.filter(id=message.id).update(state=State.FORWARDED, forwarded_at=timezone.now())
    return True


# ---------------------------------------------------------------------------------------------------- settings

KEEP: Any = object()  # a setting the request did not mention


def mailbox_configure(
    *,
    mailbox: Mailbox,
    address: str = KEEP,
    retention_days: int | None = KEEP,
    auto_forward: bool = KEEP,
    delete_forwarded: bool = KEEP,
    blocked: list[str] = KEEP,
    allowed: list[str] = KEEP,
) -> Mailbox:
    """Change the owner's settings; what is not given stays. ``blocked``/``allowed`` replace those lists.

    Refused, changing nothing: an address that is not a Maxima address, a retention outside 1 … the gateway's
    (``None`` means the gateway's), automatic forwarding without an address, a key on both lists, lists longer
    than ``MNS_MAILBOX_MAX_SENDER_RULES`` together. New retention applies to messages delivered from now on.
    """
    with transaction.atomic():
        mailbox = Mailbox.objects.select_for_update().select_related("record").get(id=mailbox.id)
        if address is not KEEP:
            mailbox.address = address_check(address) if address else ""
        if retention_days is not KEEP:
            mailbox.retention_days = _retention(retention_days)
        if auto_forward is not KEEP:
            mailbox.auto_forward = bool(auto_forward)
        if delete_forwarded is not KEEP:
            mailbox.delete_forwarded = bool(delete_forwarded)
        if mailbox.auto_forward and not mailbox.address:
            raise DomainError("address_missing", "Automatic forwarding needs the mailbox's address.", status=409)
        _rules_replace(mailbox, blocked=blocked, allowed=allowed)
        mailbox.save()
    return mailbox


def _rules_replace(mailbox: Mailbox, *, blocked: list[str], allowed: list[str]) -> None:
    current = selectors.sender_lists(mailbox=mailbox)
    lists = {
        SenderRule.List.BLOCK: current["blocked"] if blocked is KEEP else _keys(blocked, "blocked"),
        SenderRule.List.ALLOW: current["allowed"] if allowed is KEEP else _keys(allowed, "allowed"),
    }
    both = set(lists[SenderRule.List.BLOCK]) & set(lists[SenderRule.List.ALLOW])
    if both:
        raise DomainError("sender_on_both_lists", "A sender key cannot be both blocked and allowed.")
    if sum(len(keys) for keys in lists.values()) > settings.MNS_MAILBOX_MAX_SENDER_RULES:
        raise DomainError(
            "too_many_senders", f"A mailbox lists at most {settings.MNS_MAILBOX_MAX_SENDER_RULES} senders in all."
        )
    if blocked is KEEP and allowed is KEEP:
        return
    SenderRule.objects.filter(mailbox=mailbox).delete()
    SenderRule.objects.bulk_create(
        SenderRule(mailbox=mailbox, sender_key=key, list=kind) for kind, keys in lists.items() for key in keys
    )


def _keys(values: list[str], field: str) -> list[str]:
    keys = []
    for value in values:
        key = _canonical_key(value)
        if not key:
            raise DomainError(
                "invalid", "The request has invalid fields.", fields={field: [f"Not a key: {value[:40]}"]}
            )
        keys.append(key)
    return list(dict.fromkeys(keys))


def _retention(days: int | None) -> int | None:
    if days is not None and not 1 <= days <= settings.MNS_RETENTION_DAYS:
        raise DomainError("retention_invalid", f"Retention is 1 to {settings.MNS_RETENTION_DAYS} days on this gateway.")
    return days


# ----------------------------------------------------------------------------------------------------- staff


def mailbox_purge(*, mailbox: Mailbox, actor: AbstractBaseUser, reason: str) -> int:
    """Delete every message of a mailbox (staff), with an audit entry; returns how many were deleted."""
    reason = _required_reason(reason)
    with transaction.atomic():
        deleted = _messages_delete(mailbox_id=mailbox.id, messages=Message.objects.all(), replicate=True)
        _audit(AuditEntry.Action.PURGE, actor, reason, mailbox=mailbox, detail=f"deleted {deleted} messages")
    logger.info("purged %s messages of %s by %s", deleted, mailbox.record.name, actor.get_username())
    return deleted


def sender_block(*, sender_key: str, actor: AbstractBaseUser, reason: str) -> BlockedSender:
    """Refuse deliveries from ``sender_key`` to every mailbox of this gateway (staff), with an audit entry."""
    key, reason = _canonical_key(sender_key), _required_reason(reason)
    if not key:
        raise DomainError("sender_invalid", "Not a Maxima identity key.")
    with transaction.atomic():
        blocked, created = BlockedSender.objects.get_or_create(
            sender_key=key, defaults={"reason": reason, "blocked_by": actor.get_username()}
        )
        if created:
            _audit(AuditEntry.Action.BLOCK_SENDER, actor, reason, sender_key=key)
    return blocked


def sender_unblock(*, sender_key: str, actor: AbstractBaseUser, reason: str) -> bool:
    key, reason = _canonical_key(sender_key), _required_reason(reason)
    with transaction.atomic():
        deleted, _ = BlockedSender.objects.filter(sender_key=key).delete()
        if deleted:
            _audit(AuditEntry.Action.UNBLOCK_SENDER, actor, reason, sender_key=key)
    return bool(deleted)


def _audit(
    action: str,
    actor: AbstractBaseUser,
    reason: str,
    *,
    mailbox: Mailbox | None = None,
    sender_key: str = "",
    detail: str = "",
) -> None:
    AuditEntry.objects.create(
        mailbox=mailbox,
        name=mailbox.record.name if mailbox is not None else "",
        sender_key=sender_key,
        action=action,
        actor=actor,
        actor_username=actor.get_username(),
        reason=reason,
        detail=detail,
    )


def _required_reason(reason: str) -> str:
    return required_reason(reason, acting_on="mailboxes")


# ----------------------------------------------------------------------------------------------------- helpers


def address_check(value: str) -> str:
    """A mailbox's address in its one spelling, or ``address_invalid``."""
    try:
        return address_text(value)
    except MailboxMessageInvalid:
        raise DomainError("address_invalid", "The address must be a Maxima address: Mx…@host:port or MAX#….") from None


def _canonical_key(key: str) -> str:
    try:
        return public_key_hex(parse_public_key(key))
    except (CodecError, TypeError):
        return ""


def _detail(error: Exception) -> str:
    return error.detail if isinstance(error, DomainError) else str(error)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
