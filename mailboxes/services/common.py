"""What every part of the mailboxes' services shares: the names of states, and the address check."""

import logging
from datetime import datetime

from core.errors import DomainError
from mailboxes.models import Message
from mns_client.protocol.mailbox import (
    MailboxMessageInvalid,
    address_text,
)
from registry.models import NameRecord

logger = logging.getLogger(__name__)


NameStatus = NameRecord.Status


State = Message.State


MAX_SECRET_CHARS = 128


def address_check(value: str) -> str:
    """A mailbox's address in its one spelling, or ``address_invalid``."""
    try:
        return address_text(value)
    except MailboxMessageInvalid:
        raise DomainError("address_invalid", "The address must be a Maxima address: Mx…@host:port or MAX#….") from None


def _detail(error: Exception) -> str:
    return error.detail if isinstance(error, DomainError) else str(error)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
