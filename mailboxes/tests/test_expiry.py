"""Retention: messages past their expiry are deleted by the beat task, and their room is given back."""

from datetime import timedelta

import pytest
from django.utils import timezone

from mailboxes import services, tasks
from mailboxes.models import Message
from mailboxes.tests.support import Opened, Owner, deliver, open_mailbox, usage

pytestmark = pytest.mark.django_db


def age(message: Message, days: int) -> None:
    Message.objects.filter(id=message.id).update(expires_at=timezone.now() - timedelta(days=days))


def test_expired_messages_are_deleted_and_the_counters_follow(opened: Opened, sender: Owner, bob: Owner) -> None:
    for size in (10, 20, 30):
        deliver(sender, ciphertext=b"x" * size)
    bobs = open_mailbox(bob, "bob")
    deliver(sender, "bob", ciphertext=b"b" * 5)
    old, _, newest = Message.objects.filter(mailbox=opened.mailbox).order_by("id")
    age(old, 1)
    age(Message.objects.get(mailbox=bobs.mailbox), 1)
    assert tasks.expire() == 2  # two mailboxes fanned out
    assert list(Message.objects.filter(mailbox=opened.mailbox).values_list("size", flat=True).order_by("id")) == [
        20,
        30,
    ]
    assert not Message.objects.filter(mailbox=bobs.mailbox).exists()
    assert (usage("alice")[1], usage("bob")[1]) == (50, 0)
    assert newest.state == "stored"


def test_expiring_twice_deletes_and_counts_once(opened: Opened, sender: Owner) -> None:
    deliver(sender, ciphertext=b"x" * 10)
    age(Message.objects.get(), 1)
    assert services.mailbox_messages_expire(mailbox_id=opened.mailbox.id) == 1
    assert services.mailbox_messages_expire(mailbox_id=opened.mailbox.id) == 0
    assert usage() == (0, 0)


def test_expiry_goes_through_large_backlogs_in_batches(opened: Opened, sender: Owner) -> None:
    for _ in range(7):
        deliver(sender)
    Message.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.mailbox_messages_expire(mailbox_id=opened.mailbox.id, batch=3) == 7
    assert usage()[0] == 0


def test_nothing_unexpired_is_touched(opened: Opened, sender: Owner) -> None:
    deliver(sender)
    assert tasks.expire() == 0
    assert Message.objects.count() == 1
