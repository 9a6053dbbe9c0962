"""Starting a handshake: POST /api/v1/handshakes and polling GET /api/v1/handshakes/{id}."""

import base64
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.throttling import ScopedRateThrottle

from handshake import services
from handshake.models import Challenge
from handshake.tests.support import body, error, snapshot, start, statements
from maxima.models import NodeState
from mns_client.protocol.handshake import new_verifier, secret_hash, verifier_hash
from registry import services as registry
from registry.tests.support import Owner, hold, register

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gateway")]


def post(client: Client, REMOTE_ADDR: str = "127.0.0.1", **data: str) -> object:
    data = {"name": "alice", "purpose": "read", "verifier_hash": verifier_hash(new_verifier()), **data}
    return client.post("/api/v1/handshakes", data, content_type="application/json", REMOTE_ADDR=REMOTE_ADDR)


def test_a_challenge_gives_the_code_and_the_gateways_stable_address(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    before = timezone.now()
    response = post(client, name="ALICE", purpose="rotate")
    assert response.status_code == 201
    data = body(response)
    assert set(data) == {"id", "name", "purpose", "code", "gateway_address", "application", "expires_at"}
    assert (data["name"], data["purpose"], data["application"]) == ("alice", "rotate", "mns")
    assert data["gateway_address"] == NodeState.objects.get().p2pidentity
    assert response["Cache-Control"] == "no-store"
    challenge = Challenge.objects.get()
    assert challenge.id == data["id"]
    assert len(data["id"]) == 22
    assert challenge.owner_key == alice.key
    assert (challenge.status, challenge.attempts, challenge.max_attempts) == ("pending", 0, 5)
    assert timedelta(seconds=299) < challenge.expires_at - before <= timedelta(seconds=301)
    assert challenge.client_address == "127.0.0.1"


def test_the_code_is_stored_only_as_its_hash(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    code = body(post(client))["code"]
    assert len(code) == 32
    assert Challenge.objects.get().code_hash == secret_hash(code)
    assert code not in str(list(Challenge.objects.values()))


def test_a_configured_permanent_address_is_the_one_given(client: Client, alice: Owner, settings: object) -> None:
    settings.MNS_MAXIMA_ADDRESS = "MAX#0x3081#Mx…@1.2.3.4:9001"
    register(alice, "alice")
    assert body(post(client))["gateway_address"] == "MAX#0x3081#Mx…@1.2.3.4:9001"


def test_a_permanent_address_known_not_to_resolve_is_never_given(
    client: Client, alice: Owner, settings: object
) -> None:
    settings.MNS_MAXIMA_ADDRESS = "MAX#0x3081#Mx…@1.2.3.4:9001"
    register(alice, "alice")
    NodeState.objects.update(address_resolves=False)
    assert body(post(client))["gateway_address"] == NodeState.objects.get().p2pidentity
    NodeState.objects.update(address_resolves=True)
    assert body(post(client))["gateway_address"] == "MAX#0x3081#Mx…@1.2.3.4:9001"


def test_the_challenge_returned_is_the_one_stored(alice: Owner) -> None:
    register(alice, "alice")
    issued = services.challenge_issue(
        name="alice", purpose="read", verifier_hash="ab" * 32, client_address="2001:DB8::1"
    )
    stored = Challenge.objects.get()
    fields = [field.attname for field in Challenge._meta.concrete_fields]
    assert [getattr(issued.challenge, name) for name in fields] == [getattr(stored, name) for name in fields]
    assert stored.client_address == "2001:db8::1"
    assert issued.challenge.record.name == "alice"


def test_a_challenge_is_issued_in_two_statements(alice: Owner) -> None:
    """The name's record locked and the gateway's address in one, the counts and the insert in the other."""
    register(alice, "alice")
    with CaptureQueriesContext(connection) as queries:
        services.challenge_issue(name="alice", purpose="read", verifier_hash="ab" * 32, client_address="192.0.2.1")
    assert len(statements(queries)) == 2, statements(queries)
    if connection.vendor == "postgresql":  # both kept prepared: every value of the row has a type to prepare with
        assert all(sql.startswith("EXECUTE ") for sql in statements(queries)), statements(queries)
    assert Challenge.objects.count() == 1


def test_a_register_handshake_is_answered_by_the_key_of_the_pending_registration(client: Client, alice: Owner) -> None:
    hold(alice, "alice")
    assert post(client, purpose="register").status_code == 201
    assert Challenge.objects.get().owner_key == alice.key


def test_the_challenge_ids_are_random_not_sequential(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    ids = [body(post(client))["id"] for _ in range(3)]
    assert len(set(ids)) == 3
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)  # 128 random bits each


@pytest.mark.parametrize(
    ("setup", "purpose", "expected"),
    [
        (None, "read", (404, "name_not_found")),
        ("pending", "read", (409, "name_pending")),
        ("active", "register", (409, "name_not_pending")),
        ("suspended", "read", (403, "name_suspended")),
        ("released", "manage", (404, "name_not_found")),
    ],
)
def test_a_name_nobody_can_answer_for_gets_no_challenge(
    client: Client, alice: Owner, admin_user: object, setup: str | None, purpose: str, expected: tuple
) -> None:
    if setup == "pending":
        hold(alice, "alice")
    elif setup is not None:
        register(alice, "alice")
    if setup == "suspended":
        registry.name_suspend(name="alice", actor=admin_user, reason="test")
    if setup == "released":
        registry.statement_apply(signed=alice.sign("release", "alice", 2), source="api")
    before = snapshot()
    assert error(post(client, purpose=purpose)) == expected
    assert snapshot() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("purpose", "everything"),
        ("verifier_hash", "A" * 64),
        ("verifier_hash", "a" * 63),
        ("verifier_hash", new_verifier()),
        ("name", "not a name!"),
    ],
)
def test_malformed_requests_are_refused_and_create_nothing(
    client: Client, alice: Owner, field: str, value: str
) -> None:
    register(alice, "alice")
    before = snapshot()
    status, code = error(post(client, **{field: value}))
    assert status == 400
    assert code in {"invalid", "name_invalid"}
    assert snapshot() == before


def test_a_client_with_too_many_open_challenges_on_a_name_gets_no_more(
    client: Client, alice: Owner, settings: object
) -> None:
    settings.MNS_HANDSHAKE_OPEN_PER_NAME = 2
    register(alice, "alice")
    assert [post(client).status_code, post(client).status_code] == [201, 201]
    before = snapshot()
    assert error(post(client)) == (429, "too_many_challenges")
    assert snapshot() == before


@pytest.mark.parametrize("address", ["::ffff:192.0.2.7", "2001:DB8:0:0:0:0:0:7"])
def test_an_ipv6_client_is_limited_whatever_the_spelling_of_its_address(
    client: Client, alice: Owner, settings: object, address: str
) -> None:
    """The address is counted as it is stored: an IPv4-mapped address (a dual-stack listener's) or an IPv6 one not
    in its short form was once compared with a spelling other than the stored one, and was never limited."""
    settings.MNS_HANDSHAKE_OPEN_PER_NAME = 1
    register(alice, "alice")
    assert post(client, REMOTE_ADDR=address).status_code == 201
    assert error(post(client, REMOTE_ADDR=address)) == (429, "too_many_challenges")
    assert post(client, REMOTE_ADDR="192.0.2.8").status_code == 201  # another client is not


def test_a_stranger_filling_a_names_challenges_does_not_lock_the_owner_out(
    client: Client, alice: Owner, settings: object
) -> None:
    settings.MNS_HANDSHAKE_OPEN_PER_NAME = 2
    register(alice, "alice")
    for _ in range(2):
        post(client, REMOTE_ADDR="203.0.113.9")
    assert error(post(client, REMOTE_ADDR="203.0.113.9")) == (429, "too_many_challenges")
    assert post(client, REMOTE_ADDR="198.51.100.7").status_code == 201


def test_a_name_has_a_ceiling_of_open_challenges_over_all_clients(
    client: Client, alice: Owner, settings: object
) -> None:
    settings.MNS_HANDSHAKE_OPEN_PER_NAME = 1
    register(alice, "alice")
    for n in range(20):
        assert post(client, REMOTE_ADDR=f"198.51.100.{n + 1}").status_code == 201
    assert error(post(client, REMOTE_ADDR="198.51.100.200")) == (429, "too_many_challenges")


def test_expired_and_answered_challenges_do_not_count_against_the_name(
    client: Client, alice: Owner, settings: object
) -> None:
    settings.MNS_HANDSHAKE_OPEN_PER_NAME = 2
    register(alice, "alice")
    expired, failed = start(), start()
    Challenge.objects.filter(id=expired.id).update(expires_at=timezone.now())
    Challenge.objects.filter(id=failed.id).update(status="failed", failure_reason="too_many_attempts")
    assert post(client).status_code == 201


def test_challenges_are_rate_limited_per_client(client: Client, alice: Owner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"write": "2/min", "lookup": "300/min"})
    register(alice, "alice")
    assert [post(client).status_code for _ in range(2)] == [201, 201]
    before = snapshot()
    response = post(client)
    assert error(response) == (429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert snapshot() == before


def test_without_a_known_maxima_address_the_gateway_is_not_ready(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    NodeState.objects.all().delete()
    assert error(post(client)) == (503, "gateway_not_ready")
    assert error(post(client, name="nobody")) == (503, "gateway_not_ready")  # before telling the name is unknown
    assert not Challenge.objects.exists()


# ------------------------------------------------------------------------------------------------- polling


def test_a_new_challenge_polls_as_pending(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    started = start(purpose="forward")
    response = client.get(f"/api/v1/handshakes/{started.id}")
    assert response.status_code == 200
    assert body(response) == {
        "id": started.id,
        "name": "alice",
        "purpose": "forward",
        "status": "pending",
        "reason": None,
        "attempts_left": 5,
        "expires_at": body(response)["expires_at"],
        "session_issued": False,
    }
    assert started.code not in response.content.decode()


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expired", "challenge_expired"),
        ({"status": "failed", "failure_reason": "too_many_attempts", "attempts": 5}, "failed", "too_many_attempts"),
        ({"status": "verified"}, "verified", None),
    ],
)
def test_polling_tells_expired_failed_with_its_reason_and_verified(
    client: Client, alice: Owner, change: dict, status: str, reason: str | None
) -> None:
    register(alice, "alice")
    started = start()
    Challenge.objects.filter(id=started.id).update(**change)
    data = body(client.get(f"/api/v1/handshakes/{started.id}"))
    assert (data["status"], data["reason"]) == (status, reason)


def test_an_unknown_challenge_id_is_not_found(client: Client) -> None:
    assert error(client.get("/api/v1/handshakes/AAAAAAAAAAAAAAAAAAAAAA")) == (404, "handshake_not_found")
