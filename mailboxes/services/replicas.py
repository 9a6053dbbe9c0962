"""Copies of mailboxes and messages that another gateway of the network keeps (applied by ``replication.py``)."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mailboxes import selectors
from mailboxes.models import Mailbox, Message
from mailboxes.services.counters import counters_lock
from mailboxes.services.delivery import _content_refusal, _message_row, _room_taken
from mailboxes.services.reading import _messages_delete, retention_days
from mns_client.protocol.mailbox import (
    MailboxMessageInvalid,
    address_text,
)
from registry.models import NameRecord

logger = logging.getLogger(__name__)


def mailbox_replicate(*, record: NameRecord, owner_key: str, address: str) -> Mailbox:
    """A replica of a mailbox whose home gateway announced it (no access token here: the owner reads with a
    handshake session). A mailbox left by the name's previous owner is replaced; the same one again is kept."""
    mailbox = Mailbox.objects.select_for_update(no_key=True).filter(record=record).first()
    if mailbox is not None and mailbox.owner_key == owner_key:
        return mailbox
    if mailbox is not None:
        counters_lock([mailbox.id])  # the lock order of ``counters``, before its shards go with it
        mailbox.delete()
    mailbox = Mailbox.objects.create(
        record=record,
        owner_key=owner_key,
        address=address if _address_or_empty(address) else "",
        max_messages=settings.MNS_MAILBOX_MAX_MESSAGES,
        max_bytes=settings.MNS_MAILBOX_MAX_BYTES,
    )
    counters_lock([mailbox.id])  # makes its counter shards, its quota split among them
    return mailbox


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
    """Store a message another replica stored, under the same public id; ``applied``, ``duplicate`` or ``expired``.

    Counted against the quota like a delivery (refused ``over_quota`` otherwise); a message already here (the
    same id, or the same sender's delivery id) is not stored or counted again; nor is one already past its
    retention here (it would be expired at once, and the federation's tombstone of a deletion is kept only as
    long as a message can live: ``federation.services.compaction``).
    """
    if Message.objects.filter(uid=uid).exists():
        return "duplicate"
    if received_at + timedelta(days=retention_days(mailbox)) <= timezone.now():
        return "expired"
    if (refused := _content_refusal(scheme, ciphertext)) is not None:
        raise refused
    try:
        with transaction.atomic():
            shard = _room_taken(mailbox, len(ciphertext))
            _message_row(
                mailbox,
                delivery_id,
                scheme,
                ciphertext,
                sender_key,
                sender_verified,
                received_at=received_at,
                uid=uid,
                shard=shard,
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
