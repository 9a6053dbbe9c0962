"""Parallel writers on PostgreSQL: the quota holds, a delivery id is stored once, a delete gives room back once."""

import importlib
import threading
from collections.abc import Callable

import pytest
from django.db import connection, transaction

from mailboxes import services
from mailboxes.models import Mailbox, Message
from mailboxes.tests.support import Opened, Owner, deliver, deliver_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres")]


def together(
    monkeypatch: pytest.MonkeyPatch, attempts: list[Callable[[], object]], at: str = "delivery._reserve"
) -> list:
    """Run the attempts in threads that all reach ``mailboxes.services.<at>`` (``module.function``) before any of
    them goes on."""
    barrier = threading.Barrier(len(attempts), timeout=20)
    module_name, function = at.split(".")
    module = importlib.import_module(f"mailboxes.services.{module_name}")
    real = getattr(module, function)

    def wait_then(*args: object, **kwargs: object) -> object:
        barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(module, function, wait_then)
    outcomes: list = []

    def run(attempt: Callable[[], object]) -> None:
        try:
            with transaction.atomic():  # as the inbound task runs a handler
                outcomes.append(attempt())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(attempt,)) for attempt in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


def test_parallel_deliveries_never_pass_the_message_quota(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner, settings: object
) -> None:
    Mailbox.objects.update(max_messages=3)
    outcomes = together(monkeypatch, [lambda: deliver(sender) for _ in range(8)])
    assert outcomes == ["over_quota"] * 5 + ["stored"] * 3
    mailbox = Mailbox.objects.get()
    assert mailbox.message_count == Message.objects.count() == 3


def test_parallel_deliveries_never_pass_the_byte_quota(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner
) -> None:
    Mailbox.objects.update(max_bytes=1000)
    outcomes = together(monkeypatch, [lambda: deliver(sender, ciphertext=b"x" * 300) for _ in range(6)])
    assert outcomes == ["over_quota"] * 3 + ["stored"] * 3
    mailbox = Mailbox.objects.get()
    assert mailbox.byte_count == sum(Message.objects.values_list("size", flat=True)) == 900


def test_one_delivery_processed_twice_at_once_is_stored_once(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner
) -> None:
    body = deliver_body()
    outcomes = together(monkeypatch, [lambda: deliver(sender, body=body) for _ in range(4)])
    assert outcomes == ["stored"] * 4
    assert Message.objects.count() == Mailbox.objects.get().message_count == 1


def test_deleting_one_message_from_two_places_at_once_gives_its_room_back_once(
    monkeypatch: pytest.MonkeyPatch, opened: Opened, sender: Owner
) -> None:
    deliver(sender, ciphertext=b"x" * 70)
    deliver(sender, ciphertext=b"y" * 30)
    uid = Message.objects.order_by("id").first().uid
    mailbox = opened.mailbox
    outcomes = together(
        monkeypatch,
        [lambda: services.messages_ack(mailbox=mailbox, uids=[uid]) for _ in range(3)],
        at="reading._messages_delete",
    )
    assert outcomes == [0, 0, 1]
    mailbox.refresh_from_db()
    assert (mailbox.message_count, mailbox.byte_count) == (1, 30)
