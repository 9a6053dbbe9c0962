"""Transfers of a name to another key and the owner's data record, over the REST API: what a lookup shows, who
may sign what, and every refusal writing nothing."""

import json
import time
from typing import Any

import pytest
from django.test import Client

from mns_client.protocol.statements import SignedStatement
from registry.models import NameRecord, StatementRecord
from registry.tests.support import Owner, db_snapshot, post_statement, register

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sessions")]

DAY_MS = 24 * 3600 * 1000
SITE = {"website": "https://alice.example/", "minima": "0x" + "AB" * 32}


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def body(response: Any) -> Any:
    return json.loads(response.content)


def error(response: Any) -> tuple[int, str]:
    return response.status_code, body(response)["error"]


def now_ms() -> int:
    return int(time.time() * 1000)


def offer(owner: Owner, to: Owner, seq: int = 2, *, days: int = 7, issued_at: int | None = None) -> SignedStatement:
    """The owner's offer of alice to ``to``, keeping its current binding (box key, data) while it is pending."""
    issued_at = now_ms() if issued_at is None else issued_at
    current = NameRecord.objects.get(name="alice").statement
    return owner.sign(
        "transfer",
        "alice",
        seq,
        to=to.key,
        expires_at=issued_at + days * DAY_MS,
        issued_at=issued_at,
        box_key=current["box_key"],
        **({"data": current["data"]} if "data" in current else {}),
    )


def accept(new_owner: Owner, seq: int = 3, *, accepts: int = 2, **fields: Any) -> SignedStatement:
    return new_owner.sign("accept", "alice", seq, accepts=accepts, issued_at=now_ms(), **fields)


def lookup(client: Client) -> dict[str, Any]:
    response = client.get("/api/v1/names/alice")
    assert response.status_code == 200
    return body(response)


# ------------------------------------------------------------------------------------------------ data record


def test_an_update_with_data_publishes_it_in_lookups(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    update = alice.sign("update", "alice", 2, data=SITE)
    assert post_statement(client, "alice", update, token="good").status_code == 201
    record = lookup(client)
    assert (record["data"], record["statement"]["data"], record["transfer"]) == (SITE, SITE, None)
    SignedStatement.from_dict({"statement": record["statement"], "signature": record["signature"]}).verify()


def test_an_update_without_data_clears_the_record(client: Client, alice: Owner) -> None:
    register(alice, "alice", data=SITE)
    assert lookup(client)["data"] == SITE
    assert post_statement(client, "alice", alice.sign("update", "alice", 2), token="good").status_code == 201
    assert lookup(client)["data"] is None


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"blob": "x" * 1100}, "at most 1024"),
        ({"a": None}, "must not hold null"),
        ({"a": 0.5}, "no fractions"),
        ([1, 2], "non-empty JSON object"),
        ("https://alice.example/", "non-empty JSON object"),
        ({}, "non-empty JSON object"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "nested deeper"),
    ],
)
def test_oversize_or_malformed_data_is_refused_and_nothing_is_written(
    client: Client, alice: Owner, data: object, problem: str
) -> None:
    register(alice, "alice")
    update = alice.sign("update", "alice", 2).to_dict()
    update["statement"]["data"] = data  # as a client that did not check would send it (the signature is moot)
    before = db_snapshot()
    response = post_statement(client, "alice", update, token="good")
    assert error(response) == (400, "statement_invalid")
    assert problem in body(response)["detail"]
    assert db_snapshot() == before


def test_a_body_that_is_not_json_is_refused_and_nothing_is_written(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    before = db_snapshot()
    response = client.post(
        "/api/v1/names/alice/statements",
        '{"statement": {"data": {"a": 1,}}',
        content_type="application/json",
        HTTP_AUTHORIZATION="MNS-Session good",
    )
    assert response.status_code == 400
    assert db_snapshot() == before


# --------------------------------------------------------------------------------------------------- transfers


def test_an_offer_shows_in_lookups_and_changes_nothing_else(
    client: Client, alice: Owner, bob: Owner, sessions: list[dict[str, Any]]
) -> None:
    register(alice, "alice", data=SITE)
    before = lookup(client)
    signed = offer(alice, bob)
    response = post_statement(client, "alice", signed, token="good")
    assert response.status_code == 201
    assert sessions[-1]["purposes"] == {"delete"}
    record = lookup(client)
    assert record["transfer"] == {"to": bob.key, "expires_at": signed.statement.expires_at, "offer": 2}
    assert (record["owner"], record["box_key"], record["data"]) == (alice.key, before["box_key"], SITE)


def test_an_offer_needs_the_owners_session(client: Client, alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    before = db_snapshot()
    assert error(post_statement(client, "alice", offer(alice, bob))) == (401, "session_required")
    assert db_snapshot() == before


def test_the_new_key_accepts_without_a_session_and_the_name_is_its_own(
    client: Client, alice: Owner, bob: Owner, sessions: list[dict[str, Any]]
) -> None:
    register(alice, "alice", data=SITE)
    post_statement(client, "alice", offer(alice, bob), token="good")
    calls = len(sessions)
    taken = accept(bob, data={"website": "https://bob.example/"})
    response = post_statement(client, "alice", taken)
    assert response.status_code == 201
    assert len(sessions) == calls  # no session was asked for
    record = lookup(client)
    assert (record["owner"], record["box_key"], record["transfer"]) == (bob.key, taken.statement.box_key, None)
    assert record["data"] == {"website": "https://bob.example/"}
    assert list(StatementRecord.objects.values_list("op", flat=True)) == ["register", "transfer", "accept"]
    names_of_bob = body(client.get("/api/v1/names", {"owner": bob.key}))["names"]
    assert [entry["name"] for entry in names_of_bob] == ["alice"]
    assert body(client.get("/api/v1/names", {"owner": alice.key}))["names"] == []


def test_an_accept_refused_answers_its_code_and_writes_nothing(
    client: Client, alice: Owner, bob: Owner, carol: Owner
) -> None:
    register(alice, "alice")
    post_statement(client, "alice", offer(alice, bob), token="good")
    before = db_snapshot()
    forged = accept(carol).to_dict()
    forged["statement"]["owner"] = bob.key  # bob's name on it, carol's signature
    answers = [
        error(post_statement(client, "alice", accept(carol))),  # signed by a key the offer does not name
        error(post_statement(client, "alice", forged)),
        error(post_statement(client, "alice", accept(bob, seq=4, accepts=3))),  # names another offer
        error(post_statement(client, "alice", accept(bob, seq=2, accepts=1))),  # behind the offer
        error(post_statement(client, "alice", accept(alice))),  # the owner accepting its own offer
    ]
    assert answers == [
        (400, "statement_wrong_owner"),
        (400, "signature_invalid"),
        (400, "transfer_wrong_offer"),
        (400, "statement_stale_seq"),
        (400, "statement_wrong_owner"),
    ]
    assert db_snapshot() == before


def test_an_accept_with_nothing_pending_is_refused_and_writes_nothing(client: Client, alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    before = db_snapshot()
    assert error(post_statement(client, "alice", accept(bob, seq=2, accepts=1))) == (400, "transfer_not_pending")
    assert db_snapshot() == before


def test_an_offer_past_its_deadline_cannot_be_accepted(client: Client, alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    # an offer issued 8 days ago, open for 7: by the gateway's clock it is over
    post_statement(client, "alice", offer(alice, bob, issued_at=now_ms() - 8 * DAY_MS), token="good")
    before = db_snapshot()
    assert error(post_statement(client, "alice", accept(bob))) == (400, "transfer_expired")
    assert db_snapshot() == before
    assert NameRecord.objects.get().owner_key == alice.key


def test_the_owner_cancels_an_offer_with_an_update_and_the_accept_is_then_refused(
    client: Client, alice: Owner, bob: Owner
) -> None:
    register(alice, "alice")
    post_statement(client, "alice", offer(alice, bob), token="good")
    assert post_statement(client, "alice", alice.sign("update", "alice", 3), token="good").status_code == 201
    assert lookup(client)["transfer"] is None
    before = db_snapshot()
    assert error(post_statement(client, "alice", accept(bob, seq=4))) == (400, "transfer_not_pending")
    assert db_snapshot() == before


def test_nobody_but_the_owner_can_offer_the_name(client: Client, alice: Owner, bob: Owner, carol: Owner) -> None:
    register(alice, "alice")
    before = db_snapshot()
    by_bob = bob.sign("transfer", "alice", 2, to=carol.key, expires_at=now_ms() + DAY_MS, issued_at=now_ms())
    assert error(post_statement(client, "alice", by_bob, token="good")) == (400, "statement_wrong_owner")
    assert db_snapshot() == before


def test_an_accept_that_would_take_the_new_key_past_the_names_per_owner_cap_is_refused(
    client: Client, alice: Owner, bob: Owner, settings: Any
) -> None:
    settings.MNS_NAMES_PER_OWNER = 1
    register(bob, "bobs-name")
    register(alice, "alice")
    post_statement(client, "alice", offer(alice, bob), token="good")
    before = db_snapshot()
    assert error(post_statement(client, "alice", accept(bob))) == (403, "owner_limit_reached")
    assert db_snapshot() == before
