"""What staff do to mailboxes and senders, with a reason, audited in the mailboxes' own audit rows."""

import logging

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from core.errors import DomainError
from core.staff import required_reason
from mailboxes.models import AuditEntry, BlockedSender, Mailbox, Message
from mailboxes.services.reading import _messages_delete
from mns_client.protocol.codecs import canonical_public_key
from mns_client.protocol.errors import CodecError

logger = logging.getLogger(__name__)


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
    reason = _required_reason(reason)
    try:
        key = canonical_public_key(sender_key)
    except CodecError:
        raise DomainError("sender_invalid", "Not a Maxima identity key.") from None
    with transaction.atomic():
        blocked, created = BlockedSender.objects.get_or_create(
            sender_key=key, defaults={"reason": reason, "blocked_by": actor.get_username()}
        )
        if created:
            _audit(AuditEntry.Action.BLOCK_SENDER, actor, reason, sender_key=key)
    return blocked


def sender_unblock(*, sender_key: str, actor: AbstractBaseUser, reason: str) -> bool:
    reason = _required_reason(reason)
    try:
        key = canonical_public_key(sender_key)
    except CodecError:
        return False  # not a key, so never blocked
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
