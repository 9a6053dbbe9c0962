"""Staff see challenges and sessions (never a secret) and revoke sessions; nothing else is editable."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from handshake.models import Challenge, Session
from handshake.tests.support import answer, receive, start
from registry.tests.support import Owner, register

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gateway")]


@pytest.fixture
def opened(client: Client, alice: Owner, mallory: Owner) -> dict[str, Any]:
    """Two sessions of alice, one of mallory, plus a challenge with a wrong answer; the secrets, to look for."""
    secrets: dict[str, Any] = {"tokens": []}
    for owner, name, purposes in ((alice, "alice", ("read", "rotate")), (mallory, "mallory", ("read",))):
        register(owner, name)
        for purpose in purposes:
            started = start(name=name, purpose=purpose)
            receive(answer(owner, started.id, started.code))
            response = client.post(
                f"/api/v1/handshakes/{started.id}/session",
                {"verifier": started.verifier},
                content_type="application/json",
            )
            secrets["tokens"].append(response.json()["token"])
            secrets.setdefault("codes", []).append(started.code)
            secrets.setdefault("verifiers", []).append(started.verifier)
    failing = start(name="alice")
    receive(answer(alice, failing.id, "guess"))
    secrets["codes"].append(failing.code)
    secrets["pending"] = failing.id
    return secrets


@pytest.fixture
def staff(admin_client: Client) -> Client:
    return admin_client


def secrets_in(page: str, opened: dict[str, Any]) -> list[str]:
    values = opened["tokens"] + opened["codes"] + opened["verifiers"]
    hashes = list(Challenge.objects.values_list("code_hash", flat=True))
    hashes += list(Challenge.objects.values_list("verifier_hash", flat=True))
    hashes += list(Session.objects.values_list("token_hash", flat=True))
    return [value for value in values + hashes if value in page]


def test_the_challenge_list_and_page_show_state_purpose_times_and_attempts_but_no_secret(
    staff: Client, opened: dict[str, Any]
) -> None:
    listing = staff.get("/admin/handshake/challenge/").content.decode()
    detail = staff.get(f"/admin/handshake/challenge/{opened['pending']}/change/").content.decode()
    assert "verified" in listing
    assert "pending" in listing
    assert "rotate" in listing
    assert "code_wrong" in detail
    assert "Attempts" in detail
    assert secrets_in(listing + detail, opened) == []


def test_the_challenge_list_filters_by_state(staff: Client, opened: dict[str, Any]) -> None:
    response = staff.get("/admin/handshake/challenge/", {"state": "pending"})
    assert list(response.context["cl"].queryset.values_list("id", flat=True)) == [opened["pending"]]


def test_the_session_list_shows_each_session_without_its_token(staff: Client, opened: dict[str, Any]) -> None:
    session = Session.objects.first()
    listing = staff.get("/admin/handshake/session/").content.decode()
    detail = staff.get(f"/admin/handshake/session/{session.id}/change/").content.decode()
    assert listing.count("active") >= 3
    assert secrets_in(listing + detail, opened) == []


def test_staff_revoke_one_session(staff: Client, opened: dict[str, Any]) -> None:
    session = Session.objects.filter(record__name="alice").first()
    response = staff.post(
        "/admin/handshake/session/", {"action": "revoke", "_selected_action": [session.id]}, follow=True
    )
    assert "1 session(s) revoked." in response.content.decode()
    revoked = Session.objects.exclude(revoked_at=None)
    assert list(revoked.values_list("id", "revoked_by")) == [(session.id, "admin")]


def test_staff_revoke_every_session_of_a_mailbox(staff: Client, opened: dict[str, Any]) -> None:
    one_of_alices = Session.objects.filter(record__name="alice").first()
    staff.post("/admin/handshake/session/", {"action": "revoke_mailbox", "_selected_action": [one_of_alices.id]})
    assert sorted(Session.objects.exclude(revoked_at=None).values_list("record__name", flat=True)) == ["alice"] * 2
    assert Session.objects.get(record__name="mallory").revoked_at is None


def test_staff_who_may_only_look_cannot_revoke(client: Client, opened: dict[str, Any]) -> None:
    viewer = get_user_model().objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_session", "view_challenge"]))
    client.force_login(viewer)
    session = Session.objects.first()
    page = client.get("/admin/handshake/session/").content.decode()
    assert 'value="revoke"' not in page
    assert 'value="revoke_mailbox"' not in page
    client.post("/admin/handshake/session/", {"action": "revoke", "_selected_action": [session.id]})
    assert not Session.objects.exclude(revoked_at=None).exists()


def test_nothing_can_be_added_or_edited(staff: Client, opened: dict[str, Any]) -> None:
    session = Session.objects.first()
    assert staff.get("/admin/handshake/session/add/").status_code == 403
    assert staff.get("/admin/handshake/challenge/add/").status_code == 403
    page = staff.get(f"/admin/handshake/session/{session.id}/change/").content.decode()
    assert 'name="_save"' not in page
