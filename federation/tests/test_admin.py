"""The federation in the admin: peers with their health and the paused alert, read-only logs, claims, leases."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from federation.models import Claim, Lease, Operation, Peer
from federation.tests.support import FakePeer, gateway, peer_b  # noqa: F401 (fixtures)
from mailboxes.tests.support import Owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(db: None) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("ops", password="a-long-enough-password"))
    return client


def test_the_peer_list_shows_lag_and_alerts_on_paused_peers(staff_client: Client, peer_b: FakePeer) -> None:  # noqa: F811
    Peer.objects.update(paused=True, paused_reason="12 invalid operations", remote_head=7, cursor=3)
    response = staff_client.get("/admin/federation/peer/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Paused peers (see their reason): gw-b" in page
    assert '<td class="field-lag_ops_display">4</td>' in page
    assert staff_client.get("/admin/federation/peer/?alert=paused").status_code == 200


def test_staff_resume_a_paused_peer_from_the_list(staff_client: Client, peer_b: FakePeer) -> None:  # noqa: F811
    peer = Peer.objects.get()
    Peer.objects.update(paused=True, paused_reason="invalid", invalid_ops=10)
    response = staff_client.post(
        "/admin/federation/peer/", {"action": "resume", "_selected_action": [peer.id]}, follow=True
    )
    assert response.status_code == 200
    peer.refresh_from_db()
    assert (peer.paused, peer.invalid_ops) == (False, 0)


def test_operations_claims_and_leases_are_read_only(staff_client: Client, peer_b: FakePeer) -> None:  # noqa: F811
    peer_b.says(peer_b.batch(peer_b.register_op(Owner.fresh(), "alice")))
    op = Operation.objects.get()
    for path in ("operation", "claim", "lease"):
        assert staff_client.get(f"/admin/federation/{path}/").status_code == 200
    assert staff_client.get(f"/admin/federation/operation/{op.id}/change/").status_code == 200
    assert staff_client.get("/admin/federation/operation/add/").status_code == 403
    assert staff_client.post(f"/admin/federation/operation/{op.id}/delete/").status_code == 403
    assert not Claim.objects.exists()
    assert not Lease.objects.exists()


def test_the_add_peer_form_asks_only_what_staff_know_about_a_peer(staff_client: Client) -> None:
    response = staff_client.get("/admin/federation/peer/add/")
    form = response.context["adminform"].form
    assert response.status_code == 200
    assert list(form.fields) == ["name", "identity_key", "address", "permanent", "api_url", "enabled"]
    page = response.content.decode()
    for internal in ("Waiting seq", "Waiting since", "Cursor", "Remote head", "Pushed", "Applied ops"):
        assert internal not in page, internal


def test_a_peers_bookkeeping_is_shown_read_only_once_it_exists(staff_client: Client, peer_b: FakePeer) -> None:  # noqa: F811
    peer = Peer.objects.get()
    response = staff_client.get(f"/admin/federation/peer/{peer.id}/change/")
    form = response.context["adminform"].form
    assert list(form.fields) == ["name", "identity_key", "address", "permanent", "api_url", "enabled"]
    assert "Waiting seq" in response.content.decode()  # read-only, shown for diagnosis


def test_staff_see_that_the_gateway_is_recovering_its_log_after_a_restore_and_what_it_did(
    staff_client: Client,
    peer_b: FakePeer,  # noqa: F811
) -> None:
    from federation import services

    services.log_restored(reason="the operator restored a backup")
    peers = staff_client.get("/admin/federation/peer/").content.decode()
    assert "restored from a backup (the operator restored a backup)" in peers
    heads = staff_client.get("/admin/federation/loghead/").content.decode()
    assert "recovering" in heads
