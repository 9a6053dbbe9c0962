"""The admin as a whole: readable section names, its own style sheet (for narrow windows) and icon."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(get_user_model().objects.create_superuser("staff", password="a-long-enough-password"))
    return client


def test_every_admin_section_has_a_readable_name(staff_client: Client) -> None:
    page = staff_client.get("/admin/").content.decode()
    assert 'class="section" title="Models in the Background processes application">Background processes</a>' in page
    assert "mns_site<" not in page.lower()


def test_admin_pages_carry_the_gateways_style_sheet_and_icon(staff_client: Client) -> None:
    page = staff_client.get("/admin/mailboxes/message/").content.decode()
    assert 'href="/static/mns_site/admin.css"' in page
    assert '<link rel="icon" href="/favicon.ico">' in page
