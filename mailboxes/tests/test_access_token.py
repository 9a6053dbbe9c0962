"""The access token: ``MNS-Token <id>:<secret>`` stands for a fresh handshake on its own mailbox; rotate, revoke."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.test import Client

from mailboxes import services
from mailboxes.models import AccessToken
from mailboxes.tests.support import Opened, Owner, body, error, open_mailbox, sent, session
from mns_client.protocol.codecs import from_hex
from mns_client.protocol.mailbox import access_token_header, access_token_open
from registry import services as registry_services

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/mailboxes/alice"),
        ("get", "/api/v1/mailboxes/alice/messages"),
        ("post", "/api/v1/mailboxes/alice/forward"),
        ("get", "/api/v1/mailboxes/alice/access-token"),
    ],
)
def test_the_token_opens_every_endpoint_of_its_mailbox(client: Client, opened: Opened, method: str, path: str) -> None:
    response = getattr(client, method)(path, content_type="application/json", **opened.auth)
    assert response.status_code in (200, 202)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("MNS-Token nonsense", (401, "token_invalid")),
        ("MNS-Token aaaaaaaaaaaaaaaa:secret", (401, "token_invalid")),
        ("Basic abc", (401, "not_authenticated")),
    ],
)
def test_a_wrong_token_is_refused(client: Client, opened: Opened, header: str, expected: tuple[int, str]) -> None:
    assert error(client.get("/api/v1/mailboxes/alice/messages", HTTP_AUTHORIZATION=header)) == expected


def test_the_right_id_with_a_wrong_secret_is_refused(client: Client, opened: Opened) -> None:
    header = access_token_header(opened.token_id, opened.secret[:-1] + ("A" if opened.secret[-1] != "A" else "B"))
    assert error(client.get("/api/v1/mailboxes/alice", HTTP_AUTHORIZATION=header)) == (401, "token_invalid")


def test_rotating_replaces_the_token_and_sends_the_new_blob(client: Client, opened: Opened, alice: Owner) -> None:
    response = client.post("/api/v1/mailboxes/alice/access-token/rotate", **opened.auth)
    assert response.status_code == 201
    data = body(response)
    token_id, secret = access_token_open(alice.private_key, from_hex(data["token"]))
    assert token_id == data["token_id"] != opened.token_id
    assert error(client.get("/api/v1/mailboxes/alice", **opened.auth)) == (401, "token_revoked")
    assert (
        client.get("/api/v1/mailboxes/alice", HTTP_AUTHORIZATION=access_token_header(token_id, secret)).status_code
        == 200
    )
    assert [message["token_id"] for _, message in sent("access-token")] == [opened.token_id, token_id]
    assert AccessToken.objects.filter(revoked_at=None).count() == 1


def test_a_manage_session_rotates_but_a_read_session_does_not(client: Client, opened: Opened, alice: Owner) -> None:
    assert error(client.post("/api/v1/mailboxes/alice/access-token/rotate", **session(alice, "alice", "read"))) == (
        403,
        "session_out_of_scope",
    )
    assert (
        client.post("/api/v1/mailboxes/alice/access-token/rotate", **session(alice, "alice", "manage")).status_code
        == 201
    )


def test_revoking_stops_the_token_and_a_rotation_makes_a_new_one(client: Client, opened: Opened, alice: Owner) -> None:
    assert client.delete("/api/v1/mailboxes/alice/access-token", **opened.auth).status_code == 204
    assert error(client.get("/api/v1/mailboxes/alice", **opened.auth)) == (401, "token_revoked")
    manage = session(alice, "alice", "manage")
    assert error(client.get("/api/v1/mailboxes/alice/access-token", **manage)) == (404, "token_not_found")
    assert client.post("/api/v1/mailboxes/alice/access-token/rotate", **manage).status_code == 201


def test_a_token_is_refused_while_its_name_is_suspended_and_dies_with_a_release(
    client: Client, opened: Opened, alice: Owner, staff: User
) -> None:
    registry_services.name_suspend(name="alice", actor=staff, reason="abuse")
    assert error(client.get("/api/v1/mailboxes/alice", **opened.auth)) == (403, "name_suspended")
    registry_services.name_restore(name="alice", actor=staff, reason="resolved")
    registry_services.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    assert error(client.get("/api/v1/mailboxes/alice", **opened.auth)) == (401, "token_invalid")


def test_the_database_keeps_one_live_token_per_mailbox(opened: Opened) -> None:
    token = AccessToken.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        AccessToken.objects.create(mailbox=opened.mailbox, name="alice", owner_key=token.owner_key, blob=b"x")


def test_a_token_for_one_mailbox_is_nothing_for_another(client: Client, opened: Opened, bob: Owner) -> None:
    open_mailbox(bob, "bob")
    assert error(client.get("/api/v1/mailboxes/bob", **opened.auth)) == (403, "token_out_of_scope")


def test_the_blob_is_fetched_with_the_register_session_only_while_live(opened: Opened, alice: Owner) -> None:
    token = services.access_token_issue(mailbox=opened.mailbox)
    assert access_token_open(alice.private_key, bytes(token.blob))[0] == token.token_id
    assert AccessToken.objects.filter(revoked_at=None).get() == token


def test_settings_change_with_the_token(
    client: Client, opened: Opened, sender: Owner, bob: Owner, settings: Any
) -> None:
    settings.MNS_RETENTION_DAYS = 30
    change = {"retention_days": 7, "auto_forward": True, "blocked": [sender.key], "allowed": [bob.key]}
    response = client.patch("/api/v1/mailboxes/alice", change, content_type="application/json", **opened.auth)
    assert response.status_code == 200
    data = body(response)
    assert (data["retention_days"], data["retention_days_chosen"], data["auto_forward"]) == (7, 7, True)
    assert (data["blocked"], data["allowed"]) == ([sender.key], [bob.key])


@pytest.mark.parametrize("method", ["PUT", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("path", ["/api/v1/mailboxes/alice", "/api/v1/mailboxes/alice/access-token"])
def test_a_method_an_endpoint_does_not_serve_answers_405_even_with_the_token(
    client: Client, opened: Opened, method: str, path: str
) -> None:
    response = client.generic(method, path, **opened.auth)
    assert error(response) == (405, "method_not_allowed")
