"""The front page at ``/``, its icon, and the admin's "View site" link that leads there."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from mns_site.pages import FAVICON

pytestmark = pytest.mark.django_db


def test_the_front_page_says_what_this_is_and_links_to_the_dapp_docs_policy_and_health(client: Client) -> None:
    response = client.get("/")
    page = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert "MNS gateway" in page
    for link in ('href="/app/"', 'href="/api/docs/"', 'href="/.well-known/mns.json"', 'href="/api/v1/health"'):
        assert link in page, link


def test_the_front_page_shows_the_status_health_reports(client: Client) -> None:
    health = client.get("/api/v1/health").json()
    page = client.get("/").content.decode()
    assert f'class="status status-{health["status"]}">{health["status"]}<' in page
    for name in health["checks"]:
        assert f"{name}: " in page


def test_the_front_page_needs_no_script_and_allows_none(client: Client) -> None:
    response = client.get("/")
    assert "<script" not in response.content.decode()
    assert response["Content-Security-Policy"].startswith("default-src 'none'")
    assert "script-src" not in response["Content-Security-Policy"]


def test_the_favicon_is_an_icon_not_a_404(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content) == FAVICON.read_bytes()
    assert FAVICON.read_bytes()[:4] == b"\x00\x00\x01\x00"  # the ICO header


def test_the_admins_view_site_link_goes_to_the_front_page(client: Client) -> None:
    user = get_user_model().objects.create_superuser("staff", password="a-long-enough-password")
    client.force_login(user)
    page = client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in page
