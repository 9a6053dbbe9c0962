"""Picking the session up with the verifier, and using it: scope, name, expiry, revocation, the registry."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from handshake import services
from handshake.models import Challenge, Session
from handshake.tests.support import Started, answer, body, error, receive, snapshot, start, statements
from mns_client.protocol.handshake import new_verifier, secret_hash
from registry import services as registry
from registry.models import NameRecord
from registry.tests.support import Owner, new_box_key, register

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gateway")]

Verified = Callable[..., Started]


@pytest.fixture
def verified(alice: Owner) -> Verified:
    """A challenge the owner's node answered: ready for its session to be picked up."""
    register(alice, "alice")

    def make(purpose: str = "read") -> Started:
        started = start(purpose=purpose)
        assert receive(answer(alice, started.id, started.code)) == "verified"
        return started

    return make


def pickup(client: Client, started: Started, **data: Any) -> Any:
    data = {"verifier": started.verifier} | data
    return client.post(f"/api/v1/handshakes/{started.id}/session", data, content_type="application/json")


def token_of(client: Client, started: Started) -> str:
    response = pickup(client, started)
    assert response.status_code == 201, response.content
    return body(response)["token"]


def auth(token: str, scheme: str = "MNS-Session") -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"{scheme} {token}"}


# --------------------------------------------------------------------------------------------------- pickup


def test_the_verifiers_holder_picks_up_a_token_for_the_name_and_purpose(client: Client, verified: Verified) -> None:
    started = verified("forward")
    before = timezone.now()
    response = pickup(client, started)
    assert response.status_code == 201
    data = body(response)
    assert set(data) == {"token", "scope", "name", "expires_at"}
    assert (data["scope"], data["name"], len(data["token"])) == ("forward", "alice", 43)
    assert response["Cache-Control"] == "no-store"
    session = Session.objects.get()
    assert session.token_hash == secret_hash(data["token"])
    assert data["token"] not in str(list(Session.objects.values()))
    assert (session.purpose, session.record.name, session.created_from_id) == ("forward", "alice", started.id)
    assert timedelta(seconds=3599) < session.expires_at - before <= timedelta(seconds=3601)
    assert body(client.get(f"/api/v1/handshakes/{started.id}"))["session_issued"] is True


def test_the_session_returned_is_the_one_stored_and_its_challenge_is_picked_up(verified: Verified) -> None:
    started = verified("manage")
    with CaptureQueriesContext(connection) as queries:
        opened = services.session_open(challenge_id=started.id, verifier=started.verifier)
    stored = Session.objects.get()
    fields = [field.attname for field in Session._meta.concrete_fields]
    assert [getattr(opened.session, name) for name in fields] == [getattr(stored, name) for name in fields]
    assert stored.token_hash == secret_hash(opened.token)
    challenge = Challenge.objects.get(id=started.id)
    assert timedelta(0) <= stored.created_at - challenge.session_issued_at < timedelta(seconds=1)
    # the challenge read, then the claim and the insert: one statement on PostgreSQL, two in a transaction on SQLite
    assert len(statements(queries)) == (2 if connection.vendor == "postgresql" else 3), statements(queries)
    if connection.vendor == "postgresql":  # both kept prepared
        assert all(sql.startswith("EXECUTE ") for sql in statements(queries)), statements(queries)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"verifier": None}, (400, "invalid")),
        ({"verifier": ""}, (400, "invalid")),
        ({"verifier": new_verifier()}, (403, "verifier_wrong")),
    ],
)
def test_a_pickup_without_or_with_a_wrong_verifier_is_refused(
    client: Client, verified: Verified, data: dict, expected: tuple
) -> None:
    started = verified()
    before = snapshot()
    assert error(pickup(client, started, **data)) == expected
    assert snapshot() == before


def test_a_pickup_with_no_body_at_all_is_refused(client: Client, verified: Verified) -> None:
    started = verified()
    before = snapshot()
    response = client.post(f"/api/v1/handshakes/{started.id}/session", {}, content_type="application/json")
    assert error(response) == (400, "invalid")
    assert snapshot() == before


def test_a_second_pickup_is_refused(client: Client, verified: Verified) -> None:
    started = verified()
    token_of(client, started)
    before = snapshot()
    assert error(pickup(client, started)) == (409, "session_already_issued")
    assert snapshot() == before
    assert Session.objects.count() == 1


def test_a_pickup_before_the_answer_is_refused(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    started = start()
    before = snapshot()
    assert error(pickup(client, started)) == (409, "handshake_pending")
    assert snapshot() == before


def test_a_pickup_of_a_failed_or_expired_handshake_is_refused(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    failed, expired = start(), start()
    Challenge.objects.filter(id=failed.id).update(status="failed", failure_reason="too_many_attempts")
    Challenge.objects.filter(id=expired.id).update(expires_at=timezone.now())
    before = snapshot()
    assert error(pickup(client, failed)) == (409, "handshake_failed")
    assert error(pickup(client, expired)) == (410, "handshake_expired")
    assert snapshot() == before


def test_a_pickup_after_its_window_is_refused(client: Client, verified: Verified) -> None:
    started = verified()
    Challenge.objects.update(pickup_until=timezone.now())
    before = snapshot()
    assert error(pickup(client, started)) == (410, "handshake_expired")
    assert snapshot() == before


def test_the_wrong_verifier_is_refused_before_anything_about_the_state_is_told(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    started = start()
    assert error(pickup(client, started, verifier=new_verifier())) == (403, "verifier_wrong")


def test_a_pickup_of_an_unknown_handshake_is_not_found(client: Client) -> None:
    started = Started(id="A" * 22, code="", verifier=new_verifier())
    assert error(pickup(client, started)) == (404, "handshake_not_found")


# ------------------------------------------------------------------------------------------------ using it


@pytest.mark.urls("handshake.tests.urls")
@pytest.mark.parametrize("scheme", ["MNS-Session", "mns-session", "Bearer"])
def test_a_session_opens_the_endpoints_of_its_scope_for_its_name(
    client: Client, verified: Verified, scheme: str
) -> None:
    token = token_of(client, verified("read"))
    response = client.get("/probe/ALICE/read", **auth(token, scheme))
    assert (response.status_code, body(response)) == (200, {"name": "alice", "scope": "read"})


@pytest.mark.urls("handshake.tests.urls")
def test_without_a_token_the_answer_is_401_naming_the_scheme(client: Client) -> None:
    response = client.get("/probe/alice/read")
    assert error(response) == (401, "not_authenticated")
    assert response["WWW-Authenticate"] == "MNS-Session"
    assert error(client.get("/probe/alice/read", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")) == (401, "not_authenticated")


@pytest.mark.urls("handshake.tests.urls")
def test_a_token_for_another_purpose_is_refused(client: Client, verified: Verified) -> None:
    token = token_of(client, verified("read"))
    assert error(client.get("/probe/alice/rotate", **auth(token))) == (403, "session_out_of_scope")


@pytest.mark.urls("handshake.tests.urls")
def test_a_token_for_another_mailbox_is_refused(client: Client, verified: Verified, mallory: Owner) -> None:
    register(mallory, "mallory")
    token = token_of(client, verified("read"))
    assert error(client.get("/probe/mallory/read", **auth(token))) == (403, "session_out_of_scope")


@pytest.mark.urls("handshake.tests.urls")
def test_a_manage_session_allows_rotate_but_not_read(client: Client, verified: Verified) -> None:
    token = token_of(client, verified("manage"))
    assert client.get("/probe/alice/rotate", **auth(token)).status_code == 200
    assert error(client.get("/probe/alice/read", **auth(token))) == (403, "session_out_of_scope")


@pytest.mark.urls("handshake.tests.urls")
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"revoked_at": timezone.now()}, (401, "session_revoked")),
        ({"expires_at": timezone.now()}, (401, "session_expired")),
        ({"token_hash": "0" * 64}, (401, "session_invalid")),
    ],
)
def test_a_revoked_expired_or_unknown_token_is_refused(
    client: Client, verified: Verified, change: dict, expected: tuple
) -> None:
    token = token_of(client, verified("read"))
    Session.objects.update(**change)
    assert error(client.get("/probe/alice/read", **auth(token))) == expected


@pytest.mark.urls("handshake.tests.urls")
@pytest.mark.parametrize("garbage", ["x", "é" * 10, "a" * 200])
def test_a_malformed_token_is_refused_as_unknown(client: Client, garbage: str) -> None:
    assert error(client.get("/probe/alice/read", HTTP_AUTHORIZATION=f"MNS-Session {garbage}")) == (
        401,
        "session_invalid",
    )


@pytest.mark.urls("handshake.tests.urls")
def test_a_session_dies_with_its_name_changing_hands(client: Client, verified: Verified, alice: Owner) -> None:
    token = token_of(client, verified("read"))
    registry.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    assert error(client.get("/probe/alice/read", **auth(token))) == (401, "session_invalid")


@pytest.mark.urls("handshake.tests.urls")
def test_a_session_of_a_suspended_name_is_refused(client: Client, verified: Verified, admin_user: Any) -> None:
    token = token_of(client, verified("read"))
    registry.name_suspend(name="alice", actor=admin_user, reason="abuse report")
    assert error(client.get("/probe/alice/read", **auth(token))) == (403, "name_suspended")


@pytest.mark.urls("handshake.tests.urls")
def test_a_view_without_required_scopes_refuses_to_run(client: Client, verified: Verified) -> None:
    token = token_of(client, verified("read"))
    assert client.get("/probe/alice/misconfigured", **auth(token)).status_code == 500


def test_the_session_endpoint_tells_what_the_token_allows(client: Client, verified: Verified) -> None:
    token = token_of(client, verified("delete"))
    data = body(client.get("/api/v1/session", **auth(token)))
    assert (data["scope"], data["name"]) == ("delete", "alice")


def test_the_owner_ends_a_session_with_delete(client: Client, verified: Verified) -> None:
    token = token_of(client, verified("read"))
    assert client.delete("/api/v1/session", **auth(token)).status_code == 204
    assert Session.objects.get().revoked_by == "owner"
    assert error(client.get("/api/v1/session", **auth(token))) == (401, "session_revoked")


# --------------------------------------------------------------------------------- the registry's statements


def post_statement(client: Client, signed: Any, token: str, scheme: str = "Bearer") -> Any:
    return client.post(
        "/api/v1/names/alice/statements", signed.to_dict(), content_type="application/json", **auth(token, scheme)
    )


@pytest.mark.parametrize("purpose", ["rotate", "manage"])
def test_a_rotate_or_manage_session_lets_the_owner_rotate_the_box_key(
    client: Client, verified: Verified, alice: Owner, purpose: str
) -> None:
    token = token_of(client, verified(purpose))
    rotation = alice.sign("update", "alice", 2, box_key=new_box_key())
    response = post_statement(client, rotation, token)
    assert response.status_code == 201, response.content
    assert NameRecord.objects.get().box_key == rotation.statement.box_key


def test_a_read_session_cannot_change_the_record(client: Client, verified: Verified, alice: Owner) -> None:
    token = token_of(client, verified("read"))
    before = snapshot()
    assert error(post_statement(client, alice.sign("update", "alice", 2), token)) == (403, "session_out_of_scope")
    assert snapshot() == before


def test_a_release_needs_a_delete_or_manage_session(client: Client, verified: Verified, alice: Owner) -> None:
    rotate_token = token_of(client, verified("rotate"))
    before = snapshot()
    assert error(post_statement(client, alice.sign("release", "alice", 2), rotate_token)) == (
        403,
        "session_out_of_scope",
    )
    assert snapshot() == before
    delete_token = token_of(client, verified("delete"))
    assert post_statement(client, alice.sign("release", "alice", 2), delete_token).status_code == 201


# ---------------------------------------------------------------------------------------------- services


def test_session_authorise_returns_the_session_for_the_registry(client: Client, verified: Verified) -> None:
    token = token_of(client, verified("rotate"))
    session = services.session_authorise(token=token, name="alice", purposes={"rotate"})
    assert session == Session.objects.get()


def test_revoking_every_session_of_a_mailbox_leaves_other_names_alone(
    client: Client, verified: Verified, mallory: Owner
) -> None:
    tokens = [token_of(client, verified(purpose)) for purpose in ("read", "rotate")]
    register(mallory, "mallory")
    other = start(name="mallory")
    receive(answer(mallory, other.id, other.code))
    token_of(client, other)
    assert services.sessions_revoke_for_record(record=NameRecord.objects.get(name="alice"), by="staff") == 2
    assert all(error(client.get("/api/v1/session", **auth(t)))[1] == "session_revoked" for t in tokens)
    assert Session.objects.get(record__name="mallory").revoked_at is None
