"""Security headers and cookies with the production settings, on an API response, an admin page and the Dapp.

The settings are those the production block of ``.env.example`` gives (read by ``mns_site.settings`` in a fresh
interpreter, as ``check --deploy`` is), applied to this process; requests come through the TLS proxy
(``X-Forwarded-Proto: https``) to the production host name.
"""

import json
import subprocess
import sys
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from mns_site.tests.test_settings import REPO, production_example

pytestmark = pytest.mark.django_db
SECURITY_SETTINGS = [
    "ALLOWED_HOSTS",
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "SECURE_CROSS_ORIGIN_OPENER_POLICY",
    "X_FRAME_OPTIONS",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "CSRF_COOKIE_SAMESITE",
    "MIDDLEWARE",
]


@pytest.fixture(scope="module")
def production_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = production_example(tmp_path_factory.mktemp("production"))
    code = (
        "import json, django; django.setup(); from django.conf import settings as s;"
        f"print(json.dumps({{k: getattr(s, k) for k in {SECURITY_SETTINGS!r}}}))"
    )
    clean = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "mns_site.settings", **env}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=clean, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture
def https(production_settings: dict[str, Any], settings: Any) -> Client:
    for key, value in production_settings.items():
        setattr(settings, key, tuple(value) if key == "SECURE_PROXY_SSL_HEADER" else value)
    cache.clear()
    host = production_settings["ALLOWED_HOSTS"][0]
    return Client(raise_request_exception=False, HTTP_HOST=host, HTTP_X_FORWARDED_PROTO="https")


def assert_secure_headers(response: Any) -> None:
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_production_turns_on_https_hsts_and_secure_cookies(production_settings: dict[str, Any]) -> None:
    assert production_settings["SECURE_SSL_REDIRECT"] is True
    assert production_settings["SECURE_HSTS_SECONDS"] >= 31536000
    for cookie in ("SESSION", "CSRF"):
        assert production_settings[f"{cookie}_COOKIE_SECURE"] is True
        assert production_settings[f"{cookie}_COOKIE_HTTPONLY"] is True
        assert production_settings[f"{cookie}_COOKIE_SAMESITE"] in {"Lax", "Strict"}


def test_an_api_response_carries_every_security_header(https: Client) -> None:
    response = https.get("/.well-known/mns.json")
    assert response.status_code == 200
    assert_secure_headers(response)


def test_an_api_error_carries_them_too(https: Client) -> None:
    response = https.post("/api/v1/handshakes", "{", content_type="application/json")
    assert response.status_code == 400
    assert_secure_headers(response)


def test_the_admin_login_page_and_its_cookies_are_secure(https: Client) -> None:
    get_user_model().objects.create_superuser("moderator", password="a-long-enough-password")
    page = https.get("/admin/login/")
    assert page.status_code == 200
    assert_secure_headers(page)
    csrf = page.cookies["csrftoken"]
    logged_in = https.post(
        "/admin/login/?next=/admin/",
        {"username": "moderator", "password": "a-long-enough-password", "csrfmiddlewaretoken": csrf.value},
        HTTP_REFERER="https://mns.example.net/admin/login/",
    )
    assert logged_in.status_code == 302, logged_in.content[:500]
    assert_secure_headers(https.get("/admin/"))
    for cookie in (https.cookies["sessionid"], csrf):
        assert (cookie["secure"], cookie["httponly"], cookie["samesite"]) == (True, True, "Lax"), cookie.key


def test_the_dapp_page_carries_every_security_header(https: Client) -> None:
    response = https.get("/app/")
    assert response.status_code in {200, 503}  # the page, or the one that says to run `make dapp`
    assert_secure_headers(response)
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_plain_http_is_redirected_to_https_except_the_node_hook_and_health(
    https: Client, production_settings: dict[str, Any]
) -> None:
    host = production_settings["ALLOWED_HOSTS"][0]
    plain = Client(HTTP_HOST=host, HTTP_X_FORWARDED_PROTO="http")
    response = plain.get("/api/v1/names/alice")
    assert (response.status_code, response["Location"]) == (301, f"https://{host}/api/v1/names/alice")
    assert plain.get("/api/v1/health").status_code != 301


def test_the_front_page_and_its_icon_carry_every_security_header(https: Client) -> None:
    page, icon = https.get("/"), https.get("/favicon.ico")
    assert (page.status_code, icon.status_code) == (200, 200)
    assert_secure_headers(page)
    assert_secure_headers(icon)
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
