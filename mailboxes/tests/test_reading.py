"""Reading a mailbox (option 1: the client decrypts): metadata newest first, one ciphertext at a time, delete."""

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.serializers import ModelSerializer

from mailboxes.models import AccessToken, Mailbox, Message
from mailboxes.serializers import MessageMetaSerializer, MessageSerializer
from mailboxes.tests.support import Opened, Owner, body, deliver, error, open_mailbox, pages_read, session, usage
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.crypto import seal, unseal

pytestmark = pytest.mark.django_db


def stored(sender: Owner, count: int, size: int = 10) -> list[Message]:
    for n in range(count):
        assert deliver(sender, ciphertext=bytes([n + 1]) * size) == "stored"
    return list(Message.objects.order_by("-id"))


def test_the_list_is_newest_first_and_metadata_only(client: Client, opened: Opened, sender: Owner) -> None:
    messages = stored(sender, 3)
    response = client.get("/api/v1/mailboxes/alice/messages", **opened.auth)
    assert response.status_code == 200
    data = body(response)
    assert [item["id"] for item in data["results"]] == [message.uid for message in messages]
    first = data["results"][0]
    assert set(first) == {
        "id",
        "sender",
        "sender_verified",
        "scheme",
        "size",
        "received_at",
        "expires_at",
        "state",
        "forwarded_at",
    }
    assert (first["sender"], first["sender_verified"], first["size"], first["state"]) == (
        sender.key,
        True,
        10,
        "stored",
    )


def test_the_list_pages_with_a_cursor(client: Client, opened: Opened, sender: Owner) -> None:
    messages = stored(sender, 5)
    first = body(client.get("/api/v1/mailboxes/alice/messages?limit=2", **opened.auth))
    second = body(client.get(first["next"], **opened.auth))
    assert [item["id"] for item in first["results"] + second["results"]] == [m.uid for m in messages[:4]]


def test_one_message_carries_its_ciphertext_and_the_owner_opens_it(
    client: Client, opened: Opened, sender: Owner, alice: Owner
) -> None:
    envelope = seal(alice.box_public, b"hello alice")
    deliver(sender, ciphertext=envelope)
    message = Message.objects.get()
    response = client.get(f"/api/v1/mailboxes/alice/messages/{message.uid}", **opened.auth)
    assert response.status_code == 200
    data = body(response)
    assert data["ciphertext"] == to_hex(envelope)
    assert unseal(alice.box_private, from_hex(data["ciphertext"])) == b"hello alice"


def test_deleting_a_message_gives_its_room_back(client: Client, opened: Opened, sender: Owner) -> None:
    first, second = stored(sender, 2, size=30)
    response = client.delete(f"/api/v1/mailboxes/alice/messages/{first.uid}", **opened.auth)
    assert response.status_code == 204
    assert list(Message.objects.values_list("uid", flat=True)) == [second.uid]
    assert usage() == (1, 30)
    assert error(client.delete(f"/api/v1/mailboxes/alice/messages/{first.uid}", **opened.auth)) == (
        404,
        "message_not_found",
    )
    assert usage() == (1, 30)


def test_ack_deletes_many_at_once_and_skips_what_is_not_there(client: Client, opened: Opened, sender: Owner) -> None:
    messages = stored(sender, 3)
    ids = [messages[0].uid, messages[2].uid, "not-a-message-id"]
    response = client.post(
        "/api/v1/mailboxes/alice/messages/ack", {"ids": ids}, content_type="application/json", **opened.auth
    )
    assert (response.status_code, body(response)) == (200, {"deleted": 2})
    assert list(Message.objects.values_list("uid", flat=True)) == [messages[1].uid]
    assert usage() == (1, 10)


def test_a_read_session_reads_and_deletes(client: Client, opened: Opened, sender: Owner, alice: Owner) -> None:
    [message] = stored(sender, 1)
    read = session(alice, "alice", "read")
    assert client.get("/api/v1/mailboxes/alice/messages", **read).status_code == 200
    assert client.get(f"/api/v1/mailboxes/alice/messages/{message.uid}", **read).status_code == 200
    assert client.delete(f"/api/v1/mailboxes/alice/messages/{message.uid}", **read).status_code == 204


def test_a_forward_session_does_not_read(client: Client, opened: Opened, alice: Owner) -> None:
    forward = session(alice, "alice", "forward")
    assert error(client.get("/api/v1/mailboxes/alice/messages", **forward)) == (403, "session_out_of_scope")


def test_without_credentials_nothing_is_read(client: Client, opened: Opened) -> None:
    response = client.get("/api/v1/mailboxes/alice/messages")
    assert error(response) == (401, "not_authenticated")
    assert response["WWW-Authenticate"] == "MNS-Session"


def test_another_mailboxs_token_or_message_is_no_use(client: Client, opened: Opened, sender: Owner, bob: Owner) -> None:
    [message] = stored(sender, 1)
    bobs = open_mailbox(bob, "bob")
    assert error(client.get("/api/v1/mailboxes/alice/messages", **bobs.auth)) == (403, "token_out_of_scope")
    assert error(client.get(f"/api/v1/mailboxes/bob/messages/{message.uid}", **bobs.auth)) == (
        404,
        "message_not_found",
    )
    assert error(client.delete(f"/api/v1/mailboxes/bob/messages/{message.uid}", **bobs.auth)) == (
        404,
        "message_not_found",
    )
    ack: Any = client.post(
        "/api/v1/mailboxes/bob/messages/ack", {"ids": [message.uid]}, content_type="application/json", **bobs.auth
    )
    assert body(ack) == {"deleted": 0}
    assert Message.objects.count() == 1


def test_the_mailbox_shows_its_quota_and_settings(client: Client, opened: Opened, sender: Owner, alice: Owner) -> None:
    stored(sender, 2, size=25)
    data = body(client.get("/api/v1/mailboxes/alice", **opened.auth))
    assert data == {
        "name": "alice",
        "owner": alice.key,
        "address": alice.address,
        "quota": {"max_messages": 1000, "max_bytes": 16 * 1024 * 1024, "messages": 2, "bytes": 50},
        "retention_days": 30,
        "retention_days_chosen": None,
        "auto_forward": False,
        "delete_forwarded": False,
        "blocked": [],
        "allowed": [],
        "created_at": data["created_at"],
    }


# ------------------------------------------------------------------------------------------- round trips per read


@pytest.mark.parametrize("credential", ["session", "token"])
def test_a_list_or_a_fetch_is_two_queries_the_credential_with_its_mailbox_then_the_messages(
    client: Client, opened: Opened, sender: Owner, alice: Owner, credential: str, django_assert_num_queries: Any
) -> None:
    stored(sender, 3)
    auth = session(alice, "alice", "read") if credential == "session" else opened.auth
    with django_assert_num_queries(2):
        listed = client.get("/api/v1/mailboxes/alice/messages", **auth)
    uid = body(listed)["results"][0]["id"]
    with django_assert_num_queries(2):
        fetched = client.get(f"/api/v1/mailboxes/alice/messages/{uid}", **auth)
    assert (listed.status_code, fetched.status_code, body(fetched)["id"]) == (200, 200, uid)


def test_the_mailbox_loaded_with_a_session_is_still_refused_when_it_is_a_previous_owners(
    client: Client, opened: Opened, alice: Owner, bob: Owner
) -> None:
    auth = session(alice, "alice", "read")
    Mailbox.objects.filter(record__name="alice").update(owner_key=bob.key)  # as left by another owner of the name
    assert error(client.get("/api/v1/mailboxes/alice/messages", **auth)) == (403, "mailbox_not_yours")


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
@pytest.mark.parametrize("serializer", [MessageMetaSerializer, MessageSerializer])
def test_a_message_is_shown_exactly_as_its_declared_fields_would_show_it(
    opened: Opened, sender: Owner, serializer: type, zone: str
) -> None:
    stored(sender, 1)
    message = Message.objects.get()
    message.forwarded_at = message.received_at  # every datetime field with a value
    with timezone.override(zone):  # the time zone is read once a message, no longer once a field
        direct = serializer(message).data
        declared = ModelSerializer.to_representation(serializer(), message)
    assert direct == declared
    assert direct["received_at"].endswith("Z" if zone == "UTC" else ":00")


def test_a_mailboxs_messages_are_found_through_one_index_the_newest_first_one() -> None:
    """A second index on the mailbox alone made PostgreSQL read a big mailbox's list through it and sort every one
    of its messages (it plans ``mailbox_id = (subquery)`` for the average mailbox): 62 ms instead of 0.1 ms for the
    newest 21 of 47 540 messages in a table of a million (docs/performance.md, "One index for a mailbox's
    messages"). Every look-up by mailbox goes through (mailbox, -id), which also orders the list."""
    from django.db import connection

    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, Message._meta.db_table)
    by_mailbox = sorted(
        name for name, c in found.items() if c["index"] and not c["unique"] and c["columns"][:1] == ["mailbox_id"]
    )
    assert by_mailbox == ["message_mailbox_newest"]
    assert found["message_mailbox_newest"]["columns"] == ["mailbox_id", "id"]


def thousand_messages(name: str) -> Mailbox:
    """``name``'s mailbox with a thousand more messages, written in one statement, and the table analysed
    (PostgreSQL), so that the planner sees a mailbox of some size."""
    from django.db import connection

    mailbox = Mailbox.objects.get(record__name=name)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO mailboxes_message (uid, delivery_id, sender_key, sender_verified, scheme, ciphertext, size,"
            " received_at, expires_at, state, delete_when_forwarded, mailbox_id, shard)"
            " SELECT md5(%s || g), %s || g, '', false, 'nacl-sealedbox-v1', decode(md5(g::text), 'hex'),"
            " 16, now(), now() + interval '30 days', 'stored', false, %s, 0 FROM generate_series(1, 1000) AS g",
            [f"{name}-", f"{name}-", mailbox.id],
        )
        cursor.execute("ANALYZE mailboxes_message")
    return mailbox


@pytest.mark.django_db(transaction=True)
def test_a_message_is_fetched_through_its_uid_whatever_the_size_of_its_mailbox(
    opened: Opened, alice: Owner, postgres: None
) -> None:
    """Among a million messages PostgreSQL fetched one message of a big mailbox (6 210 messages) by walking the
    mailbox's messages through a (mailbox, …) index, checking each one's uid, the mailbox's size unknown to its plan:
    5 821 pages for one row, and the mailbox read at a million 0.6 times its figure at 20 000 (docs/performance.md,
    "A message by its uid"). The fetch now finds the message by its uid alone and keeps it only if it is the
    credential's mailbox's. That plan needs a million rows to appear, so here the property is checked, not the old
    plan reproduced: with alice holding a thousand messages, the fetch touches a handful of pages, and another
    mailbox's message is never returned."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from handshake.models import Session
    from mailboxes import selectors

    mailbox = thousand_messages("alice")
    session(alice, "alice", "read")
    digest = Session.objects.get(record__name="alice").token_hash
    oldest = Message.objects.filter(mailbox=mailbox).order_by("id").first()

    with CaptureQueriesContext(connection) as captured:
        read = selectors.credential_read(session_digest=digest, uid=oldest.uid)
    assert [message.uid for message in read.messages] == [oldest.uid]
    open_mailbox(Owner.fresh(), "bob")
    elsewhere = Message.objects.create(
        mailbox=Mailbox.objects.get(record__name="bob"),
        delivery_id="d",
        sender_key="",
        sender_verified=False,
        scheme="nacl-sealedbox-v1",
        ciphertext=b"x",
        size=1,
        shard=0,
        received_at=timezone.now(),
        expires_at=timezone.now(),
    )
    assert selectors.credential_read(session_digest=digest, uid=elsewhere.uid).messages == []
    assert selectors.credential_read(token_id=opened.token_id, uid=elsewhere.uid).messages == []  # nor a token's
    assert [m.uid for m in selectors.credential_read(token_id=opened.token_id, uid=oldest.uid).messages] == [oldest.uid]

    # The statement is kept prepared on the connection (prepared, then executed, the first time): read it the
    # times after which PostgreSQL keeps one plan for every uid, then look at the plan it kept.
    *_, statement = captured.captured_queries
    assert statement["sql"].startswith("EXECUTE ")
    for _ in range(6):
        selectors.credential_read(session_digest=digest, uid=oldest.uid)
    pages = pages_read(statement["sql"])
    assert pages < 40, f"{pages} pages read to fetch one message"


@pytest.mark.django_db(transaction=True)
def test_the_reads_statements_are_planned_once_for_every_credential_and_message(
    opened: Opened, alice: Owner, postgres: None
) -> None:
    """A read's statement is kept prepared (``execute_prepared``) with its page size in its text, so that after a
    few runs PostgreSQL keeps one plan for it whatever the credential or the message: a read no longer pays for
    its plan (``docs/performance.md``, "The reads' statements kept prepared"). (In the bench's world a size given
    as a parameter had PostgreSQL plan every run again; in this small one it would not, so that is not shown.)"""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from handshake.models import Session
    from mailboxes import selectors

    mailbox = thousand_messages("alice")  # a mailbox of some size, as the planner sees it
    session(alice, "alice", "read")
    digest = Session.objects.get(record__name="alice").token_hash
    uids = list(Message.objects.filter(mailbox=mailbox).order_by("id").values_list("uid", flat=True))
    with CaptureQueriesContext(connection) as captured:
        for n in range(8):
            newest = selectors.credential_read(session_digest=digest, newest=21)
            assert [m.uid for m in newest.messages] == uids[::-1][:21]
            one = selectors.credential_read(token_id=opened.token_id, uid=uids[n % 3])
            assert [m.uid for m in one.messages] == [uids[n % 3]]
    names = {q["sql"].split()[1] for q in captured.captured_queries if q["sql"].startswith("EXECUTE ")}
    with connection.cursor() as cursor:  # this test's two statements (others' may be kept on the connection)
        cursor.execute("SELECT name, generic_plans FROM pg_prepared_statements WHERE name = ANY(%s)", [list(names)])
        plans = dict(cursor.fetchall())
    assert len(plans) == 2
    assert all(generic >= 2 for generic in plans.values()), plans  # every run after the fifth or sixth


def test_past_the_largest_page_the_newest_are_not_read(opened: Opened) -> None:
    from mailboxes import selectors

    with pytest.raises(ValueError, match="at most 201"):
        selectors.credential_read(token_id=opened.token_id, newest=202)


def test_every_page_size_is_read_exactly_through_a_few_statements(opened: Opened, alice: Owner, postgres: None) -> None:
    """A client choosing its page size (``?limit=`` 1 to 200, so ``newest`` 2 to 201) gets exactly that many
    messages, and the connection keeps one statement per size of ``_NEWEST_LIMITS``, not one per size asked: the
    statements kept prepared stay few (each holds some of the server's memory for the connection's life)."""
    from django.db import connection

    from mailboxes import selectors

    mailbox = thousand_messages("alice")
    newest_first = list(Message.objects.filter(mailbox=mailbox).order_by("-id").values_list("uid", flat=True))
    for newest in [0, 1, *range(2, 202, 7), 201]:
        read = selectors.credential_read(token_id=opened.token_id, newest=newest)
        assert [m.uid for m in read.messages] == newest_first[:newest]
    with connection.cursor() as cursor:
        cursor.execute(  # the access token's reads of the newest (a session's are statements of their own)
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s AND statement LIKE %s",
            [f"%FROM {AccessToken._meta.db_table} c JOIN%", "%ORDER BY id DESC LIMIT%"],
        )
        assert cursor.fetchone()[0] == len(selectors._NEWEST_LIMITS)
