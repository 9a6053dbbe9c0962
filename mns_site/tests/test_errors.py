"""Every 4xx and 5xx comes out as {"error", "detail", "fields"?}, whoever raised it."""

import json

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from mns_site.tests.urls import LimitedView

pytestmark = [pytest.mark.urls("mns_site.tests.urls")]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear()


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def body(response: object) -> dict:
    assert response["Content-Type"].startswith("application/json")
    return json.loads(response.content)


def test_invalid_fields_answer_400_with_each_field_named(client: Client) -> None:
    response = client.post("/test/echo", {"name": "far-too-long-name", "count": 0}, content_type="application/json")
    assert response.status_code == 400
    assert body(response) == {
        "error": "invalid",
        "detail": "The request has invalid fields.",
        "fields": {
            "name": ["Ensure this field has no more than 8 characters."],
            "count": ["Ensure this value is greater than or equal to 1."],
        },
    }


def test_malformed_json_answers_400(client: Client) -> None:
    response = client.post("/test/echo", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert body(response)["error"] == "malformed_request"


def test_a_missing_credential_answers_401_with_the_scheme_to_use(client: Client) -> None:
    response = client.get("/test/secret")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "MNS-Token"
    assert body(response) == {"error": "not_authenticated", "detail": "Authentication credentials were not provided."}


def test_a_refused_permission_answers_403(client: Client) -> None:
    response = client.get("/test/forbidden")
    assert response.status_code == 403
    assert body(response) == {"error": "permission_denied", "detail": "Staff only."}


def test_a_domain_refusal_keeps_its_code_and_status(client: Client) -> None:
    response = client.get("/test/refuse")
    assert response.status_code == 409
    assert body(response) == {"error": "name_taken", "detail": "That name belongs to someone else."}


def test_an_unknown_path_answers_404_in_the_same_shape(client: Client) -> None:
    response = client.get("/nothing/here")
    assert response.status_code == 404
    assert body(response) == {"error": "not_found", "detail": "Nothing is here."}


def test_a_wrong_method_answers_405(client: Client) -> None:
    response = client.delete("/api/v1/health")
    assert response.status_code == 405
    assert body(response) == {"error": "method_not_allowed", "detail": 'Method "DELETE" not allowed.'}


def test_a_body_over_the_limit_answers_413_before_it_is_read(client: Client, settings: object) -> None:
    settings.MNS_MAX_REQUEST_BYTES = 2048
    response = client.post("/test/echo", "x" * 4096, content_type="application/json")
    assert response.status_code == 413
    assert body(response) == {"error": "request_too_large", "detail": "The body may be at most 2048 bytes."}


def test_too_many_requests_answer_429_with_retry_after(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LimitedView, "throttle_classes", [ScopedRateThrottle])
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "write", "2/min")
    statuses = [client.get("/test/limited").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = client.get("/test/limited")
    assert body(response)["error"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 61


def test_a_crash_in_an_api_view_answers_500_without_details(client: Client) -> None:
    response = client.get("/test/crash")
    assert response.status_code == 500
    assert body(response) == {"error": "server_error", "detail": "The gateway failed to handle this request."}


def test_a_crash_outside_drf_answers_500_in_the_same_shape(client: Client) -> None:
    response = client.get("/test/plain-crash")
    assert response.status_code == 500
    assert body(response) == {"error": "server_error", "detail": "The gateway failed to handle this request."}


def test_a_bad_host_header_answers_400_in_the_same_shape(client: Client) -> None:
    response = client.get("/api/v1/health", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert body(response)["error"] == "bad_request"


def test_every_response_carries_a_request_id_and_keeps_a_sane_one_from_the_client(client: Client) -> None:
    assert len(client.get("/nothing").headers["X-Request-ID"]) == 32
    assert client.get("/nothing", HTTP_X_REQUEST_ID="trace-1234-abcd")["X-Request-ID"] == "trace-1234-abcd"
    assert client.get("/nothing", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"] != "bad id\n"


def test_json_nested_too_deeply_answers_400_not_500(client: Client) -> None:
    response = client.post("/test/echo", "[" * 50_000, content_type="application/json")
    assert response.status_code == 400
    assert body(response)["error"] == "malformed_request"


def test_requests_with_bad_credentials_are_rate_limited_too(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.throttling import ScopedThrottle
    from mns_site.tests.urls import SecretView

    monkeypatch.setattr(SecretView, "throttle_classes", [ScopedThrottle])
    monkeypatch.setattr(SecretView, "throttle_scope", "write", raising=False)
    monkeypatch.setitem(ScopedThrottle.THROTTLE_RATES, "write", "2/min")
    statuses = [client.get("/test/secret", HTTP_AUTHORIZATION="MNS-Token guess").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]
