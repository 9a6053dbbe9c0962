"""The admin: mailboxes with counts and quota use, messages by metadata only, staff blocks and purges, audited."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from mailboxes.models import AuditEntry, BlockedSender, Message
from mailboxes.tests.support import Opened, Owner, deliver, quota_set, usage
from mns_client.protocol.codecs import to_hex

pytestmark = pytest.mark.django_db

SECRET_BYTES = bytes(range(200, 232)) * 4


@pytest.fixture
def admin_client(client: Client, staff: User) -> Client:
    client.force_login(staff)
    return client


def test_the_mailbox_list_shows_counts_sizes_and_quota_use(admin_client: Client, opened: Opened, sender: Owner) -> None:
    deliver(sender, ciphertext=b"x" * 100)
    quota_set(max_messages=4)
    page = admin_client.get("/admin/mailboxes/mailbox/").content.decode()
    assert "alice" in page
    assert "25 % of messages, 0 % of bytes" in page


def test_messages_show_their_metadata_and_never_their_ciphertext(
    admin_client: Client, opened: Opened, sender: Owner
) -> None:
    deliver(sender, ciphertext=SECRET_BYTES)
    message = Message.objects.get()
    pages = [
        admin_client.get("/admin/mailboxes/message/").content.decode(),
        admin_client.get(f"/admin/mailboxes/message/{message.id}/change/").content.decode(),
    ]
    for page in pages:
        assert message.uid in page
        assert to_hex(SECRET_BYTES)[2:40] not in page.upper()
        assert "ciphertext" not in page.lower()
    assert "128" in pages[1]  # the size
    assert admin_client.post(f"/admin/mailboxes/message/{message.id}/delete/").status_code == 403


def test_purging_a_mailbox_deletes_its_messages_and_leaves_an_audit_entry(
    admin_client: Client, opened: Opened, sender: Owner, staff: User
) -> None:
    deliver(sender)
    deliver(sender)
    data = {"action": "purge", "_selected_action": [opened.mailbox.id], "apply": "1", "reason": "court order"}
    response = admin_client.post("/admin/mailboxes/mailbox/", data)
    assert response.status_code == 302
    assert not Message.objects.exists()
    assert usage() == (0, 0)
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.name, entry.actor, entry.reason, entry.detail) == (
        "purge",
        "alice",
        staff,
        "court order",
        "deleted 2 messages",
    )


def test_a_purge_without_a_reason_asks_for_one_and_deletes_nothing(
    admin_client: Client, opened: Opened, sender: Owner
) -> None:
    deliver(sender)
    data = {"action": "purge", "_selected_action": [opened.mailbox.id], "apply": "1", "reason": ""}
    response = admin_client.post("/admin/mailboxes/mailbox/", data)
    assert response.status_code == 200
    assert Message.objects.count() == 1
    assert not AuditEntry.objects.exists()


def test_staff_block_a_sender_network_wide_with_a_reason(
    admin_client: Client, opened: Opened, sender: Owner, staff: User
) -> None:
    response = admin_client.post(
        "/admin/mailboxes/blockedsender/add/", {"sender_key": sender.key, "reason": "spam run"}
    )
    assert response.status_code == 302
    blocked = BlockedSender.objects.get()
    assert (blocked.sender_key, blocked.blocked_by) == (sender.key, "moderator")
    assert deliver(sender) == "blocked"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.sender_key, entry.reason) == ("block_sender", sender.key, "spam run")
    data = {"action": "unblock", "_selected_action": [blocked.id], "apply": "1", "reason": "appeal granted"}
    admin_client.post("/admin/mailboxes/blockedsender/", data)
    assert not BlockedSender.objects.exists()
    assert deliver(sender) == "stored"
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "block_sender",
        "unblock_sender",
    ]


def test_the_message_list_has_short_columns_that_fit_a_1280_px_window(
    admin_client: Client, opened: Opened, sender: Owner
) -> None:
    deliver(sender, ciphertext=SECRET_BYTES)
    message = Message.objects.get()
    response = admin_client.get("/admin/mailboxes/message/")
    assert list(response.context["cl"].list_display) == [
        "short_uid", "mailbox", "short_sender", "size", "state", "received",
    ]  # fmt: skip
    page = response.content.decode()
    assert f'<span title="{message.uid}">{message.uid[:10]}…</span>' in page
    assert f"…{message.sender_key[-8:]}<" in page
    assert f"{message.received_at:%Y-%m-%d %H:%M}" in page
    assert '<td class="field-state">Stored</td>' in page
