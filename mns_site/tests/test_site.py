import json
import re
from typing import Any

import pytest
import yaml
from django.test import Client
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


def test_the_well_known_policy_names_the_limits_and_retention(client: Client, settings: object) -> None:
    response = client.get("/.well-known/mns.json")
    body = json.loads(response.content)
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    assert body["software"] == "mns-gateway"
    assert body["limits"]["max_message_bytes"] == settings.MNS_MAX_MESSAGE_BYTES
    assert body["retention_days"] == settings.MNS_RETENTION_DAYS
    assert body["rest_submission"] is False


def test_the_schema_is_valid_openapi_3_and_documents_the_error_shape(client: Client) -> None:
    response = client.get("/api/schema/")
    schema = yaml.safe_load(response.content)
    validate(schema)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/health" in schema["paths"]
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"error", "detail"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "default" in operation["responses"], f"{method} {path} does not document errors"


def test_the_api_docs_page_serves_swagger_ui_from_the_gateway_itself(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    # Every script, style sheet and image comes from this gateway: a relative address, never another host.
    # (Matching the word "cdn" would fail one run in a few thousand, when the page's random CSP nonce spells it.)
    addresses = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page)
    assert any(address.endswith(".js") for address in addresses), addresses
    assert all(address.startswith("/") and not address.startswith("//") for address in addresses), addresses
    assert "unpkg.com" not in page
    assert "jsdelivr" not in page


def test_the_admin_login_page_renders_with_the_site_title(client: Client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert "MNS gateway" in response.content.decode()


def test_admin_logins_are_rate_limited_per_client(client: Client, settings: object, monkeypatch: Any) -> None:
    from django.core.cache import cache

    from core import ratelimit

    cache.clear()
    settings.MNS_ADMIN_LOGIN_PER_MINUTE = 2
    # Within one minute's window: three attempts that straddled a minute's end were counted in two (CI saw it).
    monkeypatch.setattr(ratelimit.time, "time", lambda: 1_800_000_030.0)
    attempt = {"username": "admin", "password": "wrong-password"}
    statuses = [client.post("/admin/login/", attempt).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert client.get("/admin/login/").status_code == 200
