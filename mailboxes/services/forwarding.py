"""Forwarding (option 2): the gateway sends each stored message to the owner's node, marked delivered only on
``delivered:true``."""

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from core.errors import DomainError
from mailboxes.models import Mailbox, Message
from mailboxes.services.common import State, _ms
from mailboxes.services.counters import counters_lock
from mailboxes.services.reading import _messages_delete
from maxima.models import OutboundMessage
from maxima.services import outbound_enqueue, outbound_retry
from mns_client.protocol.mailbox import (
    APPLICATION,
    Forwarded,
)

logger = logging.getLogger(__name__)


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
        batchable=True,  # the forwards of a mailbox go in as few sends as the batch size allows
    )
    Message.objects.filter(id=message.id).update(
        state=State.FORWARDING, outbound=outbound, delete_when_forwarded=delete
    )


def _forward_requeue(message: Message, mailbox: Mailbox) -> None:
    if message.outbound is None:  # its outbound row was deleted by staff: queue it anew
        _forward_queue(message, mailbox, delete=message.delete_when_forwarded)
    else:  # to where the owner is now: the address may have changed since it failed
        outbound_retry(message_id=message.outbound.id, destination=mailbox.address)


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
    missed; a message no longer ``forwarding`` is left alone, so running it twice changes nothing. The mailbox's
    row and counter shards are locked before the message (the lock order of ``counters``: a delete may follow).
    """
    with transaction.atomic():
        forwarding = Message.objects.filter(outbound_id=outbound_id, state=State.FORWARDING)
        mailbox_id = forwarding.values_list("mailbox_id", flat=True).first()
        if mailbox_id is None:
            return False
        counters_lock([mailbox_id])
        message = forwarding.select_for_update().first()
        if message is None:
            return False
        if message.delete_when_forwarded:
            _messages_delete(
                mailbox_id=message.mailbox_id, messages=Message.objects.filter(id=message.id), replicate=True
            )
        else:
            Message.objects.filter(id=message.id).update(state=State.FORWARDED, forwarded_at=timezone.now())
    return True
