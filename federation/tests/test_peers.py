"""Peers: the management command, the entry-point selector, pause/resume and the health endpoint's peers part."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from core import health
from federation import selectors, services
from federation.models import Peer
from federation.tests.support import FakePeer, gateway  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def peers(*args: str) -> str:
    out = StringIO()
    call_command("peers", *args, stdout=out)
    return out.getvalue()


def permanent_address(peer: FakePeer) -> str:
    """``MAX#<its key>#<an MLS address>`` (any node's Mx address will do as the MLS here)."""
    return f"MAX#{peer.key}#{peer.address}"


def test_peers_add_is_idempotent_and_list_shows_the_peer() -> None:
    peer = FakePeer.fresh("gw-b")
    args = ["add", "gw-b", "--key", peer.key, "--address", peer.address, "--api-url", "http://b.test/api/v1/"]
    assert peers(*args) == "added peer gw-b\n"
    assert peers(*args) == "updated peer gw-b\n"
    listed = json.loads(peers("list", "--json"))
    assert [(row["name"], row["identity_key"], row["enabled"], row["lag_ops"]) for row in listed] == [
        ("gw-b", peer.key, True, 0)
    ]
    assert Peer.objects.count() == 1


def test_peers_remove_forgets_the_peer_and_removing_again_is_no_error() -> None:
    FakePeer.fresh("gw-b").add()
    assert peers("remove", "gw-b") == "removed peer gw-b\n"
    assert peers("remove", "gw-b") == "no peer gw-b\n"
    assert not Peer.objects.exists()


def test_peers_add_refuses_a_bad_key_and_writes_nothing() -> None:
    with pytest.raises(CommandError, match="peer_key_invalid"):
        peers("add", "gw-x", "--key", "0x1234", "--address", "MxABC@127.0.0.1:9001")
    assert not Peer.objects.exists()


def test_peers_add_refuses_a_permanent_flag_on_a_non_permanent_address() -> None:
    peer = FakePeer.fresh("gw-b")
    with pytest.raises(CommandError, match="peer_address_invalid"):
        peers("add", "gw-b", "--key", peer.key, "--address", peer.address, "--permanent")
    assert not Peer.objects.exists()


def test_entry_candidates_are_the_healthy_permanent_enabled_unpaused_peers() -> None:
    now = timezone.now()
    good, silent, paused, contact = (FakePeer.fresh(name) for name in ("good", "silent", "paused", "contact"))
    for peer in (good, silent, paused):
        peer.address = permanent_address(peer)
        services.peer_upsert(
            name=peer.name, identity_key=peer.key, address=peer.address, api_url=f"http://{peer.name}/", permanent=True
        )
    contact.add(last_heard_at=now)
    Peer.objects.filter(name__in=["good", "paused"]).update(last_heard_at=now)
    Peer.objects.filter(name="silent").update(last_heard_at=now - timedelta(days=1))
    services.peer_pause(peer_id=Peer.objects.get(name="paused").id, reason="test")
    assert selectors.entry_candidates() == [
        selectors.EntryCandidate(maxima_address=good.address, identity_key=good.key, api_url="http://good/")
    ]


def test_resuming_a_paused_peer_resets_its_invalid_count() -> None:
    peer = FakePeer.fresh("gw-b").add(invalid_ops=12)
    assert services.peer_pause(peer_id=peer.id, reason="too many invalid operations")
    assert services.peer_resume(peer_id=peer.id)
    peer.refresh_from_db()
    assert (peer.paused, peer.paused_reason, peer.invalid_ops) == (False, "", 0)


def test_health_reports_each_peer_and_is_degraded_not_down_when_one_is_paused(
    gateway: object,  # noqa: F811
) -> None:
    peer = FakePeer.fresh("gw-b").add(last_heard_at=timezone.now())
    response = Client().get("/api/v1/health")
    body = json.loads(response.content)
    assert body["checks"]["peers"]["ok"] is True
    assert [(p["name"], p["lag_ops"], p["paused"], p["healthy"]) for p in body["peers"]] == [("gw-b", 0, False, True)]
    services.peer_pause(peer_id=peer.id, reason="invalid operations")
    health._memo.clear()
    response = Client().get("/api/v1/health")
    body = json.loads(response.content)
    assert body["checks"]["peers"]["ok"] is False
    assert body["peers"][0]["paused"] is True
    assert response.status_code == 200  # degraded, never down, for a peer
