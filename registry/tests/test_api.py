"""The registry's REST API: lookups with ETags, availability, history, reverse lookup, and signed changes."""

import json
from typing import Any

import pytest
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from mns_client.protocol.codecs import from_hex, mx_encode
from mns_client.protocol.statements import SignedStatement
from registry import services
from registry.models import NameRecord
from registry.tests.support import (
    FULL_WIDTH_ALICE,
    GATEWAY,
    Owner,
    db_snapshot,
    hold,
    new_box_key,
    post_statement,
    register,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def body(response: Any) -> Any:
    return json.loads(response.content)


def error(response: Any) -> tuple[int, str]:
    return response.status_code, body(response)["error"]


# ------------------------------------------------------------------------------------------- GET /names/{name}


def test_a_lookup_answers_the_record_with_the_owners_signature_to_verify(client: Client, alice: Owner) -> None:
    record = register(alice, "alice", payment_address="0x" + "AB" * 32)
    response = client.get("/api/v1/names/alice")
    assert response.status_code == 200
    data = body(response)
    assert data == {
        "name": "alice",
        "status": "active",
        "owner": alice.key,
        "box_key": record.box_key,
        "payment_address": "0x" + "AB" * 32,
        "data": None,
        "transfer": None,
        "gateways": [GATEWAY],
        "seq": 1,
        "statement": record.statement,
        "signature": record.signature,
        "transparency": {"status": "no_root"},  # no root on chain yet (transparency/tests: with one)
    }
    SignedStatement.from_dict({"statement": data["statement"], "signature": data["signature"]}).verify()
    assert response["Cache-Control"] == "public, max-age=30"
    assert response["ETag"].startswith('"')
    assert len(response["ETag"]) == 34


@pytest.mark.parametrize("spelling", ["ALICE", "Alice", FULL_WIDTH_ALICE])
def test_any_spelling_finds_the_canonical_name(client: Client, alice: Owner, spelling: str) -> None:
    register(alice, "alice")
    response = client.get(f"/api/v1/names/{spelling}")
    assert (response.status_code, body(response)["name"]) == (200, "alice")
    assert response["ETag"] == client.get("/api/v1/names/alice")["ETag"]


def test_a_current_etag_answers_304_without_a_body(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    etag = client.get("/api/v1/names/alice")["ETag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        response = client.get("/api/v1/names/alice", HTTP_IF_NONE_MATCH=header)
        assert (response.status_code, response.content) == (304, b"")
        assert (response["ETag"], response["Cache-Control"]) == (etag, "public, max-age=30")
    assert client.get("/api/v1/names/alice", HTTP_IF_NONE_MATCH='"other"').status_code == 200


def test_the_etag_changes_with_a_rotation(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    etag = client.get("/api/v1/names/alice")["ETag"]
    services.statement_apply(signed=alice.sign("update", "alice", 2), source="api")
    response = client.get("/api/v1/names/alice", HTTP_IF_NONE_MATCH=etag)
    assert (response.status_code, body(response)["seq"]) == (200, 2)
    assert response["ETag"] != etag


def test_unknown_pending_reserved_suspended_and_released_names_answer_distinctly(
    client: Client, alice: Owner, bob: Owner, staff: Any
) -> None:
    hold(alice, "pending")
    register(alice, "suspended")
    services.name_suspend(name="suspended", actor=staff, reason="spam")
    register(bob, "released")
    services.statement_apply(signed=bob.sign("release", "released", 2), source="api")
    services.name_reserve(name="paypal", actor=staff, reason="brand")
    answers = {name: error(client.get(f"/api/v1/names/{name}")) for name in ("nobody", "pending", "paypal", "admin")}
    assert answers == {
        "nobody": (404, "name_not_found"),
        "pending": (404, "name_pending"),
        "paypal": (404, "name_reserved"),
        "admin": (404, "name_reserved"),
    }
    assert error(client.get("/api/v1/names/ad")) == (404, "name_reserved")
    assert error(client.get("/api/v1/names/suspended")) == (403, "name_suspended")
    response = client.get("/api/v1/names/released")
    assert body(response) == {
        "error": "name_released",
        "detail": "The name 'released' was released by its owner (seq 2).",
    }
    assert response.status_code == 410


def test_a_lookup_is_exact_a_lookalike_finds_nothing(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    assert error(client.get("/api/v1/names/a1ice")) == (404, "name_not_found")


@pytest.mark.parametrize(("path", "code"), [("al%20ice", "name_invalid"), ("a" * 33, "name_too_long")])
def test_a_lookup_of_something_that_is_not_a_name_answers_400(client: Client, path: str, code: str) -> None:
    assert error(client.get(f"/api/v1/names/{path}")) == (400, code)


# ------------------------------------------------------------------------------------------------ availability


def availability(client: Client, raw: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/names/{raw}/availability")
    assert response.status_code == 200
    return body(response)


def test_availability_answers_the_normal_form_and_why_not(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    assert availability(client, "Bob") == {"name": "bob", "available": True, "reason": None, "detail": None}
    assert availability(client, "ALICE") == {
        "name": "alice",
        "available": False,
        "reason": "name_taken",
        "detail": "the name 'alice' is already registered to another key",
    }
    assert availability(client, "A1ice")["reason"] == "name_confusable"
    assert availability(client, "admin")["reason"] == "name_reserved"
    assert availability(client, "al")["reason"] == "name_reserved"


def test_availability_of_something_that_is_not_a_name_says_why(client: Client) -> None:
    answer = availability(client, "al%21ce")
    assert (answer["name"], answer["available"], answer["reason"]) == (None, False, "name_invalid")
    assert "U+0021" in answer["detail"]


def test_availability_does_not_count_the_askers_names_against_a_limit(
    client: Client, alice: Owner, settings: Any
) -> None:
    settings.MNS_NAMES_PER_OWNER = 1
    register(alice, "alice")
    assert availability(client, "other")["available"] is True


# ----------------------------------------------------------------------------------------------------- history


def test_the_history_lists_the_signed_statements_oldest_first(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    services.statement_apply(signed=alice.sign("update", "alice", 2), source="api")
    services.statement_apply(signed=alice.sign("release", "alice", 3), source="maxima")
    response = client.get("/api/v1/names/ALICE/history")
    assert response.status_code == 200
    entries = body(response)["results"]
    assert [entry["seq"] for entry in entries] == [1, 2, 3]
    assert [entry["statement"]["op"] for entry in entries] == ["register", "update", "release"]
    for entry in entries:
        SignedStatement.from_dict({"statement": entry["statement"], "signature": entry["signature"]}).verify()


def test_the_history_comes_in_pages(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    services.statement_apply(signed=alice.sign("update", "alice", 2), source="api")
    first = body(client.get("/api/v1/names/alice/history?limit=1"))
    assert [entry["seq"] for entry in first["results"]] == [1]
    second = body(client.get(first["next"]))
    assert [entry["seq"] for entry in second["results"]] == [2]


def test_the_history_of_an_unknown_name_answers_404(client: Client) -> None:
    assert error(client.get("/api/v1/names/nobody/history")) == (404, "name_not_found")


# ---------------------------------------------------------------------------------------------- reverse lookup


def test_the_names_of_one_key_are_listed_by_exact_key(client: Client, alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    hold(alice, "second")
    register(bob, "bob")
    register(alice, "gone")
    services.statement_apply(signed=alice.sign("release", "gone", 2), source="api")
    response = client.get("/api/v1/names", {"owner": alice.key})
    assert response.status_code == 200
    assert body(response) == {
        "owner": alice.key,
        "names": [
            {"name": "alice", "status": "active", "seq": 1},
            {"name": "second", "status": "pending", "seq": 1},
        ],
    }


def test_the_owner_key_may_be_given_in_lower_case_or_mx_form(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    for spelling in ("0x" + alice.key[2:].lower(), mx_encode(from_hex(alice.key))):
        assert body(client.get("/api/v1/names", {"owner": spelling}))["owner"] == alice.key


def test_names_are_never_listed_without_an_owner(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    response = client.get("/api/v1/names")
    assert response.status_code == 400
    assert body(response)["fields"] == {"owner": ["This field is required."]}
    assert error(client.get("/api/v1/names", {"owner": "0x1234"})) == (400, "invalid")


# ------------------------------------------------------------------------------------ POST /names/{name}/statements


def test_without_a_handshake_session_a_change_is_refused_and_nothing_is_written(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    before = db_snapshot()
    response = post_statement(client, "alice", alice.sign("update", "alice", 2), token=None)
    assert error(response) == (401, "session_required")
    assert db_snapshot() == before


def test_with_an_unknown_session_token_a_change_is_refused_and_nothing_is_written(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    before = db_snapshot()
    response = post_statement(client, "alice", alice.sign("update", "alice", 2), token="not-a-real-session-token")
    assert error(response) == (401, "session_invalid")
    assert response["WWW-Authenticate"] == "MNS-Session"
    assert db_snapshot() == before


def test_a_rotation_with_a_session_answers_201_and_the_new_record(
    client: Client, alice: Owner, sessions: list[dict[str, Any]]
) -> None:
    register(alice, "alice")
    rotation = alice.sign("update", "alice", 2, box_key=new_box_key())
    response = post_statement(client, "ALICE", rotation, token="good")
    assert response.status_code == 201
    assert (body(response)["seq"], body(response)["box_key"]) == (2, rotation.statement.box_key)
    assert sessions == [{"token": "good", "name": "alice", "purposes": {"rotate"}}]
    assert NameRecord.objects.get().seq == 2


def test_a_release_needs_a_session_for_deleting(client: Client, alice: Owner, sessions: list[dict[str, Any]]) -> None:
    register(alice, "alice")
    response = post_statement(client, "alice", alice.sign("release", "alice", 2), token="good")
    assert response.status_code == 201
    assert body(response) | {"statement": None, "signature": None} == {
        "name": "alice",
        "status": "released",
        "owner": None,
        "box_key": None,
        "payment_address": None,
        "data": None,
        "transfer": None,
        "gateways": [],
        "seq": 2,
        "statement": None,
        "signature": None,
    }
    assert sessions[0]["purposes"] == {"delete"}


def test_a_session_the_handshake_refuses_changes_nothing(
    client: Client, alice: Owner, sessions: list[dict[str, Any]]
) -> None:
    register(alice, "alice")
    before = db_snapshot()
    assert error(post_statement(client, "alice", alice.sign("update", "alice", 2), token="stale")) == (
        401,
        "session_invalid",
    )
    assert error(post_statement(client, "alice", alice.sign("update", "alice", 2))) == (401, "session_required")
    assert db_snapshot() == before


@pytest.mark.usefixtures("sessions")
def test_refused_changes_answer_their_code_and_write_nothing(client: Client, alice: Owner, bob: Owner) -> None:
    register(alice, "alice")
    register(bob, "bob")
    before = db_snapshot()
    update = alice.sign("update", "alice", 2)
    tampered = update.to_dict() | {"signature": "0x" + "00" * 128}
    malformed = update.to_dict() | {"statement": update.statement.to_dict() | {"seq": "2"}}
    answers = [
        error(post_statement(client, "bob", update, token="good")),
        error(post_statement(client, "alice", tampered, token="good")),
        error(post_statement(client, "alice", malformed, token="good")),
        error(post_statement(client, "alice", alice.sign("update", "alice", 1), token="good")),
        error(post_statement(client, "alice", bob.sign("update", "alice", 2), token="good")),
        error(post_statement(client, "alice", alice.sign("register", "alice", 2), token="good")),
        error(post_statement(client, "nobody", alice.sign("update", "nobody", 2), token="good")),
        error(post_statement(client, "alice", {"statement": {}}, token="good")),
    ]
    assert answers == [
        (400, "statement_wrong_name"),
        (400, "signature_invalid"),
        (400, "statement_invalid"),
        (400, "statement_stale_seq"),
        (400, "statement_wrong_owner"),
        (400, "statement_not_change"),
        (404, "name_not_found"),
        (400, "statement_invalid"),
    ]
    assert db_snapshot() == before


# ------------------------------------------------------------------------------------------ limits and schema


def test_lookups_are_rate_limited_per_client(client: Client, alice: Owner, monkeypatch: pytest.MonkeyPatch) -> None:
    register(alice, "alice")
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "lookup", "3/min")
    paths = ["/api/v1/names/alice", "/api/v1/names/bob/availability", "/api/v1/names/alice/history", "/api/v1/names/x"]
    assert [client.get(path).status_code for path in paths] == [200, 200, 200, 429]
    assert client.get("/api/v1/names/alice", REMOTE_ADDR="10.0.0.9").status_code == 200


def test_changes_are_rate_limited_per_client(client: Client, alice: Owner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "write", "2/min")
    statuses = [post_statement(client, "alice", alice.sign("update", "alice", 2)).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_every_endpoint_is_in_the_openapi_schema_with_its_serializers(client: Client) -> None:
    schema = body(client.get("/api/schema/", {"format": "json"}))
    paths = schema["paths"]
    assert paths["/api/v1/names"]["get"]["parameters"][0]["name"] == "owner"
    assert set(paths["/api/v1/names/{name}"]["get"]["responses"]) == {
        "200",
        "304",
        "400",
        "403",
        "404",
        "410",
        "default",
    }
    availability = paths["/api/v1/names/{name}/availability"]["get"]["responses"]["200"]
    assert availability["content"]["application/json"]["schema"]["$ref"].endswith("/Availability")
    assert "cursor" in {p["name"] for p in paths["/api/v1/names/{name}/history"]["get"]["parameters"]}
    post = paths["/api/v1/names/{name}/statements"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SignedStatementRequest")
    assert {"201", "401", "default"} <= set(post["responses"])
    assert {"NameRecord", "NameStatement", "Availability", "OwnerNames", "StatementEntry"} <= set(
        schema["components"]["schemas"]
    )
