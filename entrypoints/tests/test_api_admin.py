"""GET /api/v1/entry-points, /.well-known/mns.json's entry_points, and the admin's view of the publications."""

import json

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.test import Client

from entrypoints.models import Publication, Setup
from federation.models import Peer
from mns_client.protocol.entrypoints import BULLETIN_SCRIPT
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork

pytestmark = pytest.mark.django_db

URL = "/api/v1/entry-points"
CHANGELIST = "/admin/entrypoints/publication/"
TOKEN = "0x6E1D6025E36E2D793F242C25E6946B99A7BCE4DD96D28286833512E5A9668832"
OWNER = "0x0E9145164A12BA509EA1DDC0A7475B576104F6F4147D566BEDEC3F267490BF0B"
ADDRESS = "0x1DF1924B7E73144C4F3661AFFD29A9D1D2AE0EB1F5E05554AE11A6BF6A1FAB4F"
ENTRY = {"maxima_address": "MAX#0xAB#Mx@h:1", "identity_key": "0xAB", "api_url": "https://gw1.example/api/v1/"}


def _set_up() -> Setup:
    return Setup.objects.create(
        pk=1,
        owner_key=OWNER,
        tokenid=TOKEN,
        script=BULLETIN_SCRIPT,
        script_address=ADDRESS,
        first_coinid="0xC1",
        completed_at="2026-01-01T00:00:00Z",
    )


def _publication(seq: int, status: str, **fields: object) -> Publication:
    bulletin = {"v": 1, "seq": seq, "issued_at": 1000 + seq, "entries": [ENTRY]}
    return Publication.objects.create(seq=seq, bulletin=bulletin, status=status, **fields)


def test_the_newest_confirmed_list_is_served_with_its_coin_block_and_seq(client: Client) -> None:
    _set_up()
    _publication(1, "confirmed", coinid="0xC1", block=20)
    _publication(2, "confirmed", coinid="0xC2", block=31)
    _publication(3, "sent", coinid="0xC3")

    response = client.get(URL)

    assert response.status_code == 200
    assert response.json() == {
        "v": 1,
        "seq": 2,
        "issued_at": 1002,
        "entries": [ENTRY],
        "coinid": "0xC2",
        "block": 31,
        "tokenid": TOKEN,
        "address": ADDRESS,
        "owner": OWNER,
    }


def test_before_any_list_is_confirmed_the_answer_is_404_not_published(client: Client) -> None:
    _set_up()
    _publication(1, "failed", error="node down")

    response = client.get(URL)

    assert response.status_code == 404
    assert response.json()["error"] == "not_published"


def test_a_gateway_without_setup_answers_404_not_configured(client: Client) -> None:
    response = client.get(URL)

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_configured",
        "detail": "This gateway has not set up the entry-point list (entrypoints_setup).",
    }


def test_the_endpoint_is_rate_limited(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "lookup", "2/min")
    cache.clear()

    responses = [client.get(URL) for _ in range(3)]

    assert [r.status_code for r in responses] == [404, 404, 429]
    assert responses[2].json()["error"] == "throttled"


def test_the_endpoint_is_in_the_openapi_schema(client: Client) -> None:
    schema = json.loads(client.get("/api/schema/", {"format": "json"}).content)

    operation = schema["paths"]["/api/v1/entry-points"]["get"]
    assert set(operation["responses"]) >= {"200", "404", "default"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/EntryPoints")


def test_well_known_tells_readers_the_token_owner_and_script(client: Client) -> None:
    assert client.get("/.well-known/mns.json").json()["entry_points"] is None
    _set_up()

    published = client.get("/.well-known/mns.json").json()["entry_points"]

    assert published == {"script": BULLETIN_SCRIPT, "address": ADDRESS, "tokenid": TOKEN, "owner": OWNER}


# ------------------------------------------------------------------------------------------------------ admin


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("ops", "ops@example.net", "a-long-test-password"))
    return client


def test_the_admin_shows_the_publications_and_the_current_list(admin_client: Client) -> None:
    _set_up()
    _publication(1, "confirmed", coinid="0xC1AAAAAAAAAAAA", block=20)
    _publication(2, "failed", error="rotation: node unreachable")

    page = admin_client.get(CHANGELIST).content.decode()
    setup_page = admin_client.get("/admin/entrypoints/setup/1/change/").content.decode()

    assert "Current list on chain" in page
    assert "seq 1 · block 20 · coin <code>0xC1AAAAAAAAAAAA</code>" in page
    assert "https://gw1.example/api/v1/" in page
    assert "rotation: node unreachable" in page
    assert TOKEN in page
    assert ADDRESS in setup_page


def test_the_admin_action_publishes_a_new_list_and_the_page_shows_it(
    admin_client: Client, net: SimNetwork, publisher: MinimaRPC, peers: list[Peer], django_capture_on_commit_callbacks
) -> None:
    from entrypoints import services

    services.setup_run(rpc=publisher, wait_seconds=20, poll=0.05, say=lambda line: None)
    first = Publication.objects.get(seq=1)
    net.wait_blocks(3)  # the first bulletin coin is deep enough to be spent by the rotation

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(CHANGELIST, {"action": "publish_now", ACTION_CHECKBOX_NAME: [first.pk]})

    assert response.status_code == 302
    second = Publication.objects.get(seq=2)
    assert second.status == Publication.Status.SENT
    assert len(second.entries) == 3
    assert '<td class="field-status">Sent</td>' in admin_client.get(CHANGELIST).content.decode()
