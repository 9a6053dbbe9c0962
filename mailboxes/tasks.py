from celery import shared_task
from django.utils import timezone

from core.queue import enqueue_now
from mailboxes import selectors, services


@shared_task(name="mailboxes.expire", ignore_result=True)
def expire() -> int:
    """Beat, every MNS_MESSAGE_EXPIRE_EVERY seconds: fan out the mailboxes holding expired messages, and the
    forwards whose "sent" mark was missed. By hand: ``python manage.py shell -c "from mailboxes.tasks import
    expire; expire()"`` (with no broker it runs the per-mailbox tasks in place)."""
    mailboxes = selectors.mailboxes_with_expired(now=timezone.now(), limit=1000)
    for mailbox_id in mailboxes:
        enqueue_now(expire_mailbox, mailbox_id)
    forwards = selectors.forwards_unmarked(limit=1000)
    for outbound_id in forwards:
        enqueue_now(mark_forwarded, outbound_id)
    return len(mailboxes) + len(forwards)


@shared_task(name="mailboxes.expire_mailbox", ignore_result=True)
def expire_mailbox(mailbox_id: int) -> int:
    return services.mailbox_messages_expire(mailbox_id=mailbox_id)


@shared_task(name="mailboxes.mark_forwarded", ignore_result=True)
def mark_forwarded(outbound_id: int) -> bool:
    return services.message_forwarded(outbound_id=outbound_id)
