"""The relay for MiniDapps (``POST /api/v1/relay``): an API request carried in a POST body the way a Minima node's
``MDS.net`` sends it (no header of the caller's, Java's form content type), answered 200 with the API's own status
and body; the relayed request meets the same authentication, rules and limits as a direct one."""

import json
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from mailboxes.models import Message
from mailboxes.tests.support import Opened, Owner, body, deliver, snapshot
from registry.tests.support import GATEWAY

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"  # what the node's HttpURLConnection labels an untyped POST


def relay(client: Client, request: Any, **extra: str) -> Any:
    raw = request if isinstance(request, str) else json.dumps(request)
    return client.post("/api/v1/relay", data=raw, content_type=FORM, **extra)


def relayed(response: Any) -> tuple[int, Any]:
    assert response.status_code == 200, response.content
    answer = body(response)
    assert set(answer) == {"status", "body"}
    return answer["status"], answer["body"]


def test_a_relayed_lookup_answers_what_the_api_answers(client: Client, opened: Opened) -> None:
    direct = client.get("/api/v1/names/alice")
    status, record = relayed(relay(client, {"method": "GET", "path": "/api/v1/names/alice"}))
    assert (status, record) == (200, body(direct))
    assert record["owner"] == opened.owner.key


def test_a_refusal_comes_back_as_the_apis_status_and_error_inside_a_200(client: Client, opened: Opened) -> None:
    status, answer = relayed(relay(client, {"method": "GET", "path": "/api/v1/names/nobody-here"}))
    assert (status, answer["error"]) == (404, "name_not_found")


def test_the_authorization_travels_in_the_body_and_opens_the_mailbox(
    client: Client, opened: Opened, sender: Owner
) -> None:
    assert deliver(sender) == "stored"
    message = Message.objects.get()
    auth = opened.auth["HTTP_AUTHORIZATION"]
    status, listing = relayed(relay(client, {"method": "GET", "path": "/api/v1/mailboxes/alice/messages?limit=5"}))
    assert (status, listing["error"]) == (401, "not_authenticated")
    request = {"method": "GET", "path": "/api/v1/mailboxes/alice/messages?limit=5", "authorization": auth}
    status, listing = relayed(relay(client, request))
    assert status == 200
    assert [item["id"] for item in listing["results"]] == [message.uid]
    delete = {"method": "DELETE", "path": f"/api/v1/mailboxes/alice/messages/{message.uid}", "authorization": auth}
    assert relayed(relay(client, delete)) == (204, None)
    assert not Message.objects.exists()


def test_a_patch_with_a_json_body_changes_the_settings(client: Client, opened: Opened) -> None:
    request = {
        "method": "PATCH",
        "path": "/api/v1/mailboxes/alice",
        "authorization": opened.auth["HTTP_AUTHORIZATION"],
        "json": {"retention_days": 7},
    }
    status, mailbox = relayed(relay(client, request))
    assert (status, mailbox["retention_days"]) == (200, 7)
    opened.mailbox.refresh_from_db()
    assert opened.mailbox.retention_days == 7


def test_a_post_answered_201_by_the_api_comes_back_whole(client: Client, opened: Opened) -> None:
    request = {
        "method": "POST",
        "path": "/api/v1/handshakes",
        "json": {"name": "alice", "purpose": "read", "verifier_hash": "13d3" + "0" * 60},
    }
    status, issued = relayed(relay(client, request))
    assert status == 201
    assert (issued["name"], issued["purpose"], len(issued["code"])) == ("alice", "read", 32)


def test_the_well_known_policy_can_be_relayed(client: Client, gateway: Any) -> None:
    status, policy = relayed(relay(client, {"method": "GET", "path": "/.well-known/mns.json"}))
    assert (status, policy["software"]) == (200, "mns-gateway")
    assert policy["maxima"]["publickey"] == GATEWAY


@pytest.mark.parametrize(
    "request_body",
    [
        "not json",
        '{"method": "GET", "path": "/api/v1/names/alice", "json": NaN}',
        "[1, 2]",
        {"method": "GET"},
        {"method": "PUT", "path": "/api/v1/names/alice"},
        {"method": "GET", "path": "/admin/"},
        {"method": "GET", "path": "/maxima/hook/secret"},
        {"method": "POST", "path": "/api/v1/relay", "json": {"method": "GET", "path": "/api/v1/health"}},
        {"method": "GET", "path": "/api/v1/../admin/"},
        {"method": "GET", "path": "/api/v1/%2E%2E/admin/"},
        {"method": "GET", "path": "/api/v1/relay%3F"},
        {"method": "GET", "path": "/api/v1/names/alice", "extra": 1},
        {"method": "GET", "path": "/api/v1/names/alice", "authorization": 5},
    ],
    ids=[
        "not-json",
        "a-nan",
        "not-an-object",
        "no-path",
        "unknown-method",
        "the-admin",
        "the-webhook",
        "the-relay-itself",
        "a-dot-dot-path",
        "an-encoded-dot-dot-path",
        "the-relay-encoded",
        "an-unknown-key",
        "a-non-text-authorization",
    ],
)
def test_what_cannot_be_relayed_is_refused_and_changes_nothing(
    client: Client, opened: Opened, request_body: Any
) -> None:
    before = snapshot()
    response = relay(client, request_body)
    assert (response.status_code, body(response)["error"]) == (400, "relay_invalid")
    assert snapshot() == before


def test_relayed_requests_count_against_the_apis_own_limits(
    client: Client, opened: Opened, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "write", "2/min")
    cache.clear()
    verifier_hash = "0" * 64
    request = {
        "method": "POST",
        "path": "/api/v1/handshakes",
        "json": {"name": "alice", "purpose": "read", "verifier_hash": verifier_hash},
    }
    statuses = [relayed(relay(client, request))[0] for _ in range(3)]
    assert statuses == [201, 201, 429]
