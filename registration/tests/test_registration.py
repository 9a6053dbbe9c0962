"""Creating a mailbox: the request holds the name and answers the register handshake; the owner's node answering
it confirms the name, creates the mailbox and sends the access token that only that node can open."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from handshake import services as handshake_services
from handshake.models import Challenge
from mailboxes import services
from mailboxes.models import AccessToken, Mailbox, Registration
from mailboxes.tests.support import (
    VERIFIER,
    Opened,
    Owner,
    answer,
    body,
    error,
    inbound,
    open_mailbox,
    sent,
    snapshot,
    usage,
)
from maxima.models import NodeState
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.handshake import verifier_hash
from mns_client.protocol.mailbox import AccessTokenMessage, Register, access_token_open
from registration import services as registration
from registry import services as registry_services
from registry.models import NameRecord

pytestmark = pytest.mark.django_db


def register_request(owner: Owner, name: str = "alice", **overrides: Any) -> dict[str, Any]:
    return {
        **owner.register(name).to_dict(),
        "address": owner.address,
        "verifier_hash": verifier_hash(VERIFIER),
        **overrides,
    }


def post(client: Client, data: dict[str, Any]) -> Any:
    return client.post("/api/v1/mailboxes", data, content_type="application/json")


# ---------------------------------------------------------------------------------------------------- request


def test_a_request_holds_the_name_and_answers_the_register_handshake(
    client: Client, gateway: NodeState, alice: Owner
) -> None:
    response = post(client, register_request(alice))
    assert response.status_code == 201
    data = body(response)
    challenge = Challenge.objects.get()
    assert data == {
        "name": "alice",
        "status": "pending",
        "handshake": {
            "id": challenge.id,
            "name": "alice",
            "purpose": "register",
            "code": data["handshake"]["code"],
            "gateway_address": gateway.p2pidentity,
            "application": "mns",
            "expires_at": data["handshake"]["expires_at"],
        },
    }
    assert NameRecord.objects.get().status == "pending"
    assert Registration.objects.get().address == alice.address
    assert not Mailbox.objects.exists()
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"address": "not an address"}, (400, "invalid")),
        ({"verifier_hash": "abc"}, (400, "invalid")),
        ({"signature": "0x" + "00" * 128}, (400, "signature_invalid")),
        ({"statement": {"v": 1}}, (400, "statement_invalid")),
    ],
)
def test_a_malformed_or_forged_request_is_refused_and_nothing_is_written(
    client: Client, gateway: NodeState, alice: Owner, change: dict[str, Any], expected: tuple[int, str]
) -> None:
    before = snapshot()
    assert error(post(client, register_request(alice, **change))) == expected
    assert snapshot() == before
    assert not Challenge.objects.exists()


def test_a_name_held_by_another_key_is_refused_and_nothing_is_written(
    client: Client, gateway: NodeState, alice: Owner, bob: Owner
) -> None:
    open_mailbox(alice, "alice")
    before = snapshot()
    assert error(post(client, register_request(bob))) == (409, "name_taken")
    assert snapshot() == before


def test_a_gateway_that_does_not_know_its_node_yet_answers_503_and_writes_nothing(
    client: Client, db: None, alice: Owner
) -> None:
    before = snapshot()
    assert error(post(client, register_request(alice))) == (503, "gateway_not_ready")
    assert snapshot() == before


def test_when_the_challenge_cannot_be_issued_the_new_hold_is_undone_too(
    client: Client, gateway: NodeState, alice: Owner
) -> None:
    NodeState.objects.update(p2pidentity="", localidentity="")  # the node's key is known, its address not yet
    before = snapshot()
    assert error(post(client, register_request(alice))) == (503, "gateway_not_ready")
    assert snapshot() == before


def test_a_retried_request_gets_a_new_challenge_until_the_open_limit(
    client: Client, gateway: NodeState, alice: Owner, settings: Any
) -> None:
    settings.MNS_HANDSHAKE_OPEN_PER_NAME = 2
    request = register_request(alice)
    assert [post(client, request).status_code for _ in range(2)] == [201, 201]
    before = snapshot()
    assert error(post(client, request)) == (429, "too_many_challenges")
    assert snapshot() == before
    assert Challenge.objects.count() == Registration.objects.count() == 2


# ----------------------------------------------------------------------------------------------- confirmation


def test_the_owners_answer_confirms_the_name_creates_the_mailbox_and_sends_the_access_token(
    gateway: NodeState, alice: Owner, settings: Any
) -> None:
    settings.MNS_MAILBOX_MAX_MESSAGES, settings.MNS_MAILBOX_MAX_BYTES = 7, 99_999
    pending = registration.mailbox_register(
        signed=alice.register("alice"), address=alice.address, verifier_hash=verifier_hash(VERIFIER), source="api"
    )
    assert answer(alice, pending.issued.challenge.id, pending.issued.code) == "verified"
    mailbox = Mailbox.objects.get()
    assert (mailbox.record.name, mailbox.record.status, mailbox.owner_key) == ("alice", "active", alice.key)
    assert (mailbox.address, mailbox.max_messages, mailbox.max_bytes) == (alice.address, 7, 99_999)
    assert usage() == (0, 0)
    token = AccessToken.objects.get()
    [(destination, message)] = sent("access-token")
    assert destination == alice.address
    blob = AccessTokenMessage.from_bytes(json.dumps(message).encode()).blob
    assert blob == bytes(token.blob)
    token_id, secret = access_token_open(alice.private_key, blob)
    assert (token_id, token.name) == (token.token_id, "alice")
    assert secret not in str(list(AccessToken.objects.values()))  # stored hashed only
    assert services.access_token_authenticate(credentials=f"{token_id}:{secret}") == token


def test_a_wrong_code_confirms_nothing(gateway: NodeState, alice: Owner) -> None:
    pending = registration.mailbox_register(
        signed=alice.register("alice"), address=alice.address, verifier_hash=verifier_hash(VERIFIER), source="api"
    )
    assert answer(alice, pending.issued.challenge.id, "wrong-code") == "code_wrong"
    assert NameRecord.objects.get().status == "pending"
    assert not Mailbox.objects.exists()
    assert not AccessToken.objects.exists()


def test_the_register_sessions_holder_fetches_the_token_blob_and_only_the_owners_key_opens_it(
    client: Client, gateway: NodeState, alice: Owner, bob: Owner
) -> None:
    issued = body(post(client, register_request(alice)))["handshake"]
    answer(alice, issued["id"], issued["code"])
    session = body(
        client.post(
            f"/api/v1/handshakes/{issued['id']}/session", {"verifier": VERIFIER}, content_type="application/json"
        )
    )
    assert session["scope"] == "register"
    response = client.get("/api/v1/mailboxes/alice/access-token", HTTP_AUTHORIZATION=f"MNS-Session {session['token']}")
    assert response.status_code == 200
    data = body(response)
    token = AccessToken.objects.get()
    assert data == {
        "name": "alice",
        "token_id": token.token_id,
        "token": to_hex(bytes(token.blob)),
        "created_at": data["created_at"],
    }
    assert access_token_open(alice.private_key, from_hex(data["token"]))[0] == token.token_id
    with pytest.raises(Exception, match="does not open"):
        access_token_open(bob.private_key, from_hex(data["token"]))


def test_an_unanswered_registration_expires_and_frees_the_name(
    client: Client, gateway: NodeState, alice: Owner, bob: Owner
) -> None:
    assert post(client, register_request(alice)).status_code == 201
    NameRecord.objects.update(status_changed_at=NameRecord.objects.get().status_changed_at - timedelta(hours=1))
    assert registry_services.name_holds_expire(older_than=timedelta(minutes=10)) == 1
    assert not NameRecord.objects.exists()
    assert not Mailbox.objects.exists()
    assert post(client, register_request(bob)).status_code == 201


def test_a_name_registered_anew_by_another_owner_gets_a_fresh_mailbox(
    gateway: NodeState, alice: Owner, bob: Owner
) -> None:
    first = open_mailbox(alice, "alice")
    registry_services.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    pending = registration.mailbox_register(
        signed=bob.sign("register", "alice", 3, box_key=to_hex(bob.box_public)),
        address=bob.address,
        verifier_hash=verifier_hash(VERIFIER),
        source="api",
    )
    assert answer(bob, pending.issued.challenge.id, pending.issued.code) == "verified"
    mailbox = Mailbox.objects.get()
    assert (mailbox.owner_key, mailbox.address) == (bob.key, bob.address)
    assert mailbox.id != first.mailbox.id
    assert AccessToken.objects.get().owner_key == bob.key


# ---------------------------------------------------------------------------------------------- over Maxima


def test_a_register_over_maxima_is_answered_with_the_challenge_at_reply_to(gateway: NodeState, alice: Owner) -> None:
    request = Register(signed=alice.register("alice"), address=alice.address, reply_to=alice.address)
    message = inbound(alice, request.to_dict())
    assert registration.register_received(message=message, body=request.to_dict()) == "challenged"
    [(destination, reply)] = sent("register-challenge")
    challenge = Challenge.objects.get()
    assert destination == alice.address
    assert reply == {
        "v": 1,
        "type": "register-challenge",
        "name": "alice",
        "challenge": challenge.id,
        "code": reply["code"],
        "expires_at": int(challenge.expires_at.timestamp() * 1000),
    }
    assert answer(alice, challenge.id, reply["code"]) == "verified"
    assert Mailbox.objects.get().address == alice.address
    assert [destination for destination, _ in sent("access-token")] == [alice.address]


def test_a_register_over_maxima_from_another_key_is_refused_and_holds_nothing(
    gateway: NodeState, alice: Owner, bob: Owner
) -> None:
    request = Register(signed=alice.register("alice"), address=alice.address).to_dict()
    before = snapshot()
    assert registration.register_received(message=inbound(bob, request), body=request) == "register_wrong_sender"
    assert snapshot() == before
    assert sent("register-refused") == [
        (
            alice.address,
            {
                "v": 1,
                "type": "register-refused",
                "name": "alice",
                "reason": "register_wrong_sender",
                "detail": "A register over Maxima must come from the statement's owner's node.",
            },
        )
    ]


def test_a_register_over_maxima_for_a_taken_name_is_answered_with_the_reason(
    gateway: NodeState, alice: Owner, bob: Owner
) -> None:
    open_mailbox(alice, "alice")
    request = Register(signed=bob.register("alice"), address=bob.address).to_dict()
    before = snapshot()
    assert registration.register_received(message=inbound(bob, request), body=request) == "name_taken"
    assert snapshot() == before
    [(destination, reply)] = sent("register-refused")
    assert (destination, reply["reason"]) == (bob.address, "name_taken")


def test_a_malformed_register_over_maxima_is_refused_to_its_sender(gateway: NodeState, alice: Owner) -> None:
    request = {"v": 1, "type": "register", "statement": {}, "signature": "0x00", "address": alice.address}
    assert registration.register_received(message=inbound(alice, request), body=request) == "malformed"
    [(destination, reply)] = sent("register-refused")
    assert (destination, reply["reason"], reply["name"]) == (alice.key, "statement_invalid", None)
    assert not NameRecord.objects.exists()


def test_opened_fixture_has_a_working_token(opened: Opened) -> None:
    assert (
        services.access_token_authenticate(credentials=f"{opened.token_id}:{opened.secret}").mailbox == opened.mailbox
    )


def test_a_reserved_name_is_refused_with_409_and_nothing_is_written(
    client: Client, gateway: NodeState, alice: Owner
) -> None:
    before = snapshot()
    assert error(post(client, register_request(alice, **alice.register("admin").to_dict()))) == (409, "name_reserved")
    assert snapshot() == before


def test_a_register_challenge_asked_for_again_confirms_with_the_first_requests_address(
    gateway: NodeState, alice: Owner
) -> None:
    registration.mailbox_register(
        signed=alice.register("alice"), address=alice.address, verifier_hash=verifier_hash(VERIFIER), source="api"
    )
    again = handshake_services.challenge_issue(name="alice", purpose="register", verifier_hash=verifier_hash(VERIFIER))
    assert answer(alice, again.challenge.id, again.code) == "verified"
    assert Mailbox.objects.get().address == alice.address
