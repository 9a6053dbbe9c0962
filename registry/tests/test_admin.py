"""The registry in the admin: search, moderation with a reason and an audit entry, and no way to touch keys."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from registry.models import AuditEntry, NameRecord
from registry.tests.support import Owner, register

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/registry/namerecord/"


@pytest.fixture
def admin_user() -> User:
    return get_user_model().objects.create_superuser("ops", "ops@example.net", "a-long-test-password")


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_staff_suspend_a_name_through_the_admin_action_with_a_reason_kept_in_the_audit_log(
    admin_client: Client, admin_user: User, alice: Owner
) -> None:
    record = register(alice, "alice")
    selection = {"action": "suspend", ACTION_CHECKBOX_NAME: [record.pk]}

    asked = admin_client.post(CHANGELIST, selection)
    assert asked.status_code == 200
    assert b"Suspend these names?" in asked.content
    assert NameRecord.objects.get().status == "active"

    started = timezone.now()
    done = admin_client.post(CHANGELIST, {**selection, "apply": "1", "reason": "phishing reports from three users"})
    assert done.status_code == 302
    assert NameRecord.objects.get().status == "suspended"
    entry = AuditEntry.objects.get()
    assert (entry.name, entry.action, entry.actor, entry.actor_username) == ("alice", "suspend", admin_user, "ops")
    assert entry.reason == "phishing reports from three users"
    assert started <= entry.at <= timezone.now()
    assert (entry.status_before, entry.status_after) == ("active", "suspended")


def test_an_action_without_a_reason_asks_again_and_changes_nothing(admin_client: Client, alice: Owner) -> None:
    record = register(alice, "alice")
    response = admin_client.post(
        CHANGELIST, {"action": "suspend", ACTION_CHECKBOX_NAME: [record.pk], "apply": "1", "reason": ""}
    )
    assert response.status_code == 200
    assert b"This field is required." in response.content
    assert (NameRecord.objects.get().status, AuditEntry.objects.count()) == ("active", 0)


def test_a_refused_action_is_reported_per_name(admin_client: Client, alice: Owner) -> None:
    record = register(alice, "alice")
    response = admin_client.post(
        CHANGELIST,
        {"action": "restore", ACTION_CHECKBOX_NAME: [record.pk], "apply": "1", "reason": "why not"},
        follow=True,
    )
    assert "Not done for alice: The name &#x27;alice&#x27; is active, not suspended." in response.content.decode()
    assert AuditEntry.objects.count() == 0


def test_staff_reserve_a_new_name_from_the_reserve_page(admin_client: Client, admin_user: User) -> None:
    assert b"Reserve a name" in admin_client.get(CHANGELIST).content
    response = admin_client.post(f"{CHANGELIST}reserve/", {"name": "PayPal", "reason": "brand protection"})
    assert response.status_code == 302
    assert NameRecord.objects.get().status == "reserved"
    assert AuditEntry.objects.get().actor == admin_user


def test_the_reserve_page_shows_a_refusal_on_the_name(admin_client: Client, alice: Owner) -> None:
    register(alice, "alice")
    response = admin_client.post(f"{CHANGELIST}reserve/", {"name": "a1ice", "reason": "block"})
    assert response.status_code == 200
    assert "looks like &#x27;alice&#x27;" in response.content.decode()
    assert NameRecord.objects.get().name == "alice"


def test_staff_search_by_name_owner_key_and_box_key_and_filter_by_status(
    admin_client: Client, alice: Owner, bob: Owner
) -> None:
    alice_record = register(alice, "alice")
    register(bob, "bobby")

    def found(**query: str) -> set[str]:
        response = admin_client.get(CHANGELIST, query)
        return {record.name for record in response.context["cl"].result_list}

    assert found(q="bob") == {"bobby"}
    assert found(q=alice.key) == {"alice"}
    assert found(q=alice_record.box_key.lower()) == {"alice"}
    assert found(status__exact="active") == {"alice", "bobby"}
    assert found(status__exact="suspended") == set()


def test_a_record_page_shows_its_history_read_only_and_offers_no_way_to_edit_keys(
    admin_client: Client, alice: Owner
) -> None:
    record = register(alice, "alice")
    page = admin_client.get(f"{CHANGELIST}{record.pk}/change/")
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert 'name="owner_key"' not in page.content.decode()
    assert 'name="box_key"' not in page.content.decode()
    assert record.signature in page.content.decode()
    before = NameRecord.objects.values().get()
    response = admin_client.post(f"{CHANGELIST}{record.pk}/change/", {"owner_key": "0x00", "status": "active"})
    assert response.status_code == 403
    assert NameRecord.objects.values().get() == before
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{record.pk}/delete/", {"post": "yes"}).status_code == 403


def test_the_audit_log_is_read_only(admin_client: Client, alice: Owner) -> None:
    record = register(alice, "alice")
    admin_client.post(
        CHANGELIST, {"action": "suspend", ACTION_CHECKBOX_NAME: [record.pk], "apply": "1", "reason": "spam"}
    )
    entry = AuditEntry.objects.get()
    assert admin_client.get("/admin/registry/auditentry/").status_code == 200
    assert admin_client.get(f"/admin/registry/auditentry/{entry.pk}/change/").context["has_change_permission"] is False
    assert admin_client.post(f"/admin/registry/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get().reason == "spam"


def test_staff_who_may_only_view_names_are_offered_no_action_and_cannot_moderate(alice: Owner) -> None:
    viewer = get_user_model().objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="registry", codename="view_namerecord"))
    client = Client()
    client.force_login(viewer)
    record = register(alice, "alice")
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert page.context["action_form"] is None
    client.post(CHANGELIST, {"action": "suspend", ACTION_CHECKBOX_NAME: [record.pk], "apply": "1", "reason": "spam"})
    assert (NameRecord.objects.get().status, AuditEntry.objects.count()) == ("active", 0)
    assert client.get(f"{CHANGELIST}reserve/").status_code == 403
