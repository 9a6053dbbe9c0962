"""Reading and deleting (option 1: the client decrypts), and the expiry of old messages."""

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.errors import DomainError
from federation import services as federation
from mailboxes.models import Mailbox, Message
from mailboxes.services.counters import counters_lock, room_give_back

logger = logging.getLogger(__name__)


def retention_days(mailbox: Mailbox) -> int:
    """The owner's retention, never longer than the gateway's."""
    return min(mailbox.retention_days or settings.MNS_RETENTION_DAYS, settings.MNS_RETENTION_DAYS)


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
    """Delete messages of one mailbox and give their room back to the shards that counted them, counting only
    what this call deleted.

    The mailbox's row and counter shards are locked first (``counters.counters_lock``: the lock order of every
    transaction that touches them), then the messages: of two concurrent deletes of one message only one sees it,
    so the counters are decremented once (on PostgreSQL, FOR UPDATE skips a row another transaction deleted
    meanwhile). ``replicate``: the owner (or staff) deleted them, so the other replicas delete them too (expiry
    runs on each gateway).
    """
    with transaction.atomic():
        counters_lock([mailbox_id])
        rows = list(
            messages.filter(mailbox_id=mailbox_id).select_for_update().values_list("id", "size", "uid", "shard")
        )
        if not rows:
            return 0
        Message.objects.filter(id__in=[row[0] for row in rows]).delete()
        room_give_back(mailbox_id=mailbox_id, deleted=[(shard, size) for _, size, _, shard in rows])
        if replicate:
            name = Mailbox.objects.filter(id=mailbox_id).values_list("record__name", flat=True).get()
            for row in rows:
                federation.op_append(kind="delete", payload={"name": name, "uid": row[2]})
    return len(rows)
