"""A name transferred to another key: the old owner's mail never reaches the new one, and the new owner starts
with an empty mailbox of its own (its own box key), which it reads with its own handshake."""

import time

import pytest
from django.test import Client

from mailboxes.models import AccessToken, Mailbox, Message
from mailboxes.tests.support import Opened, Owner, body, deliver, deliver_body, error, sent, session, usage
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.crypto import seal
from registry.tests.support import post_statement

pytestmark = pytest.mark.django_db

DAY_MS = 24 * 3600 * 1000


def transfer_to(client: Client, old: Owner, new: Owner) -> None:
    """alice's owner offers the name to ``new`` (with a delete session) and ``new`` accepts it (no session)."""
    now = int(time.time() * 1000)
    offer = old.sign(
        "transfer", "alice", 2, box_key=to_hex(old.box_public), to=new.key, expires_at=now + DAY_MS, issued_at=now
    )
    token = session(old, "alice", "delete")["HTTP_AUTHORIZATION"].removeprefix("MNS-Session ")
    assert post_statement(client, "alice", offer, token=token).status_code == 201
    taken = new.sign("accept", "alice", 3, box_key=to_hex(new.box_public), accepts=2, issued_at=now + 1)
    assert post_statement(client, "alice", taken).status_code == 201


def test_after_a_transfer_the_new_owner_cannot_list_or_read_the_old_owners_mail(
    client: Client, opened: Opened, sender: Owner, alice: Owner, bob: Owner
) -> None:
    # given alice's mailbox with two messages sealed to her box key, and her read session
    for text in (b"for alice only", b"also for alice"):
        assert deliver(sender, ciphertext=seal(alice.box_public, text)) == "stored"
    old_uids = list(Message.objects.values_list("uid", flat=True))
    alice_read = session(alice, "alice", "read")
    # when the name is transferred to bob
    transfer_to(client, alice, bob)
    # then none of alice's messages exists any more, anywhere in the gateway
    assert not Message.objects.filter(uid__in=old_uids).exists()
    # and bob, with a read session of his own, lists an empty mailbox and cannot fetch an old message
    bob_read = session(bob, "alice", "read")
    listed = client.get("/api/v1/mailboxes/alice/messages", **bob_read)
    assert (listed.status_code, body(listed)["results"]) == (200, [])
    for uid in old_uids:
        assert error(client.get(f"/api/v1/mailboxes/alice/messages/{uid}", **bob_read)) == (404, "message_not_found")
    # and alice's token and session died with her ownership
    assert error(client.get("/api/v1/mailboxes/alice/messages", **opened.auth))[0] == 401
    assert error(client.get("/api/v1/mailboxes/alice/messages", **alice_read)) == (401, "session_invalid")


def test_the_new_owner_gets_a_fresh_mailbox_and_token_and_new_mail_reaches_it(
    client: Client, opened: Opened, sender: Owner, alice: Owner, bob: Owner
) -> None:
    old_mailbox_id = opened.mailbox.id
    transfer_to(client, alice, bob)
    mailbox = Mailbox.objects.get(record__name="alice")
    assert (mailbox.id != old_mailbox_id, mailbox.owner_key, usage()[0]) == (True, bob.key, 0)
    token = AccessToken.objects.get(mailbox=mailbox, revoked_at=None)
    assert token.owner_key == bob.key
    bob.open_token(bytes(token.blob))  # only bob's node can open it
    # mail sent after the transfer is sealed to bob's box key (what the lookup now says) and is his
    lookup = body(client.get("/api/v1/names/alice"))
    assert (lookup["owner"], lookup["box_key"]) == (bob.key, to_hex(bob.box_public))
    assert deliver(sender, ciphertext=seal(bob.box_public, b"hello bob")) == "stored"
    listed = body(client.get("/api/v1/mailboxes/alice/messages", **session(bob, "alice", "read")))["results"]
    assert [item["sender"] for item in listed] == [sender.key]


def test_a_pending_offer_leaves_the_old_owners_mailbox_working(
    client: Client, opened: Opened, sender: Owner, alice: Owner, bob: Owner
) -> None:
    now = int(time.time() * 1000)
    offer = alice.sign(
        "transfer", "alice", 2, box_key=to_hex(alice.box_public), to=bob.key, expires_at=now + DAY_MS, issued_at=now
    )
    token = session(alice, "alice", "delete")["HTTP_AUTHORIZATION"].removeprefix("MNS-Session ")
    assert post_statement(client, "alice", offer, token=token).status_code == 201
    assert deliver(sender) == "stored"
    listed = client.get("/api/v1/mailboxes/alice/messages", **opened.auth)
    assert (listed.status_code, len(body(listed)["results"])) == (200, 1)


def test_a_letter_sealed_for_the_old_owner_that_arrives_after_the_transfer_is_refused(
    client: Client, opened: Opened, sender: Owner, alice: Owner, bob: Owner
) -> None:
    # a sender looked alice up before the transfer (owner: alice) and its letter arrives after it
    transfer_to(client, alice, bob)
    before = list(Message.objects.values_list("uid", flat=True))
    late = deliver_body(ciphertext=seal(alice.box_public, b"meant for alice"), owner=alice.key)
    assert deliver(sender, body=late) == "owner_changed"
    assert list(Message.objects.values_list("uid", flat=True)) == before
    [(_, receipt)] = sent("receipt")
    assert (receipt["status"], receipt["reason"]) == ("refused", "owner_changed")
    # while a letter sealed for bob, naming him, is his
    assert deliver(sender, body=deliver_body(ciphertext=seal(bob.box_public, b"for bob"), owner=bob.key)) == "stored"
