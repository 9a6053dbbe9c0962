"""The owner's settings: address, retention, automatic forwarding, block and allow lists; refusals change nothing."""

from typing import Any

import pytest
from django.test import Client

from mailboxes.models import Mailbox, Message, SenderRule
from mailboxes.tests.support import Opened, Owner, body, deliver, error, session, snapshot

pytestmark = pytest.mark.django_db


def patch(client: Client, opened: Opened, change: dict[str, Any]) -> Any:
    return client.patch("/api/v1/mailboxes/alice", change, content_type="application/json", **opened.auth)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"retention_days": 31}, (400, "retention_invalid")),
        ({"retention_days": 0}, (400, "invalid")),
        ({"address": "nowhere"}, (400, "invalid")),
        ({"blocked": ["0x1234"]}, (400, "invalid")),
        ({"auto_forward": True, "address": ""}, (400, "invalid")),
    ],
)
def test_a_bad_setting_is_refused_and_changes_nothing(
    client: Client, opened: Opened, change: dict[str, Any], expected: tuple[int, str]
) -> None:
    before = snapshot()
    assert error(patch(client, opened, change)) == expected
    assert snapshot() == before


def test_a_key_on_both_lists_is_refused(client: Client, opened: Opened, sender: Owner) -> None:
    before = snapshot()
    assert error(patch(client, opened, {"blocked": [sender.key], "allowed": [sender.key]})) == (
        400,
        "sender_on_both_lists",
    )
    assert snapshot() == before


def test_too_many_listed_senders_are_refused(
    client: Client, opened: Opened, sender: Owner, bob: Owner, settings: Any
) -> None:
    settings.MNS_MAILBOX_MAX_SENDER_RULES = 1
    assert error(patch(client, opened, {"blocked": [sender.key, bob.key]})) == (400, "too_many_senders")
    assert not SenderRule.objects.exists()


def test_a_list_replaces_the_old_one_and_the_other_list_stays(
    client: Client, opened: Opened, sender: Owner, bob: Owner
) -> None:
    patch(client, opened, {"blocked": [sender.key], "allowed": [bob.key]})
    data = body(patch(client, opened, {"blocked": []}))
    assert (data["blocked"], data["allowed"]) == ([], [bob.key])


def test_a_shorter_retention_applies_to_new_messages(client: Client, opened: Opened, sender: Owner) -> None:
    patch(client, opened, {"retention_days": 2})
    deliver(sender)
    message = Message.objects.get()
    assert (message.expires_at - message.received_at).days == 2
    assert body(patch(client, opened, {"retention_days": None}))["retention_days"] == 30


def test_a_new_address_is_where_forwards_go(client: Client, opened: Opened, bob: Owner) -> None:
    assert body(patch(client, opened, {"address": bob.address}))["address"] == bob.address
    assert Mailbox.objects.get().address == bob.address


def test_settings_need_a_manage_session_a_read_session_only_sees_them(
    client: Client, opened: Opened, alice: Owner
) -> None:
    read = session(alice, "alice", "read")
    assert client.get("/api/v1/mailboxes/alice", **read).status_code == 200
    response = client.patch("/api/v1/mailboxes/alice", {"auto_forward": True}, content_type="application/json", **read)
    assert error(response) == (403, "session_out_of_scope")
    manage = session(alice, "alice", "manage")
    response = client.patch(
        "/api/v1/mailboxes/alice", {"auto_forward": True}, content_type="application/json", **manage
    )
    assert body(response)["auto_forward"] is True
