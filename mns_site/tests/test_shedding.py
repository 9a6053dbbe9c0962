"""Load shedding on the front proxy's queue stamp: a request that waited too long is refused before any work."""

import json
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.middleware import queued_seconds

pytestmark = pytest.mark.django_db

NOW = 1_795_660_441.5


@pytest.mark.parametrize(
    ("stamp", "queued"),
    [
        ("t=1795660441.250", 0.25),  # nginx $msec
        ("1795660441250", 0.25),  # milliseconds
        ("t=1795660441250000", 0.25),  # microseconds
        (" t=1795660441.5 ", 0.0),
    ],
)
def test_a_stamp_is_read_in_seconds_milliseconds_or_microseconds(stamp: str, queued: float) -> None:
    assert queued_seconds(stamp, NOW) == pytest.approx(queued)


@pytest.mark.parametrize(
    "stamp",
    ["", "t=", "soon", "t=1e9", "t=-5", "t=1795660442.5", "t=1795660300", "t=1.2.3", "9" * 40, "t=١٢٣"],
)
def test_a_stamp_that_is_not_a_time_or_from_a_wrong_clock_is_ignored(stamp: str) -> None:
    assert queued_seconds(stamp, NOW) is None  # garbage, the future (1 s ahead), 141 s old, too long, non-ASCII


def _stamp(seconds_ago: float) -> str:
    return f"t={time.time() - seconds_ago:.3f}"


def test_a_request_that_waited_too_long_is_answered_503_with_retry_after_and_touches_nothing(
    client: Client, settings: object
) -> None:
    settings.MNS_SHED_AFTER_MS = 200
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/names/alice", HTTP_X_REQUEST_START=_stamp(0.5))
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response["Cache-Control"] == "no-store"
    assert json.loads(response.content)["error"] == "overloaded"
    assert queries.captured_queries == []


def test_a_fresh_stamp_no_stamp_or_shedding_off_is_served(client: Client, settings: object) -> None:
    settings.MNS_SHED_AFTER_MS = 200
    assert client.get("/api/v1/names/alice", HTTP_X_REQUEST_START=_stamp(0.05)).status_code == 404
    assert client.get("/api/v1/names/alice").status_code == 404
    settings.MNS_SHED_AFTER_MS = 0
    assert client.get("/api/v1/names/alice", HTTP_X_REQUEST_START=_stamp(5)).status_code == 404


def test_the_nodes_hooks_are_never_shed_the_node_posts_each_event_once(client: Client, settings: object) -> None:
    """A node's post that waited in a proxy's queue is stored all the same (the admission queue never refuses it
    either): a 503 would lose the event, the node does not post it again."""
    from maxima.models import InboundEvent
    from testsupport import maxima_fixture

    settings.MNS_SHED_AFTER_MS = 200
    settings.MAXIMA_MAX_AGE_SECONDS = 10**9  # the fixture's message counts as fresh
    body = maxima_fixture("11-")["raw_body"]
    response = client.post(
        f"/maxima/hook/{settings.MAXIMA_HOOK_SECRET}/",
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_REQUEST_START=_stamp(5),
    )
    assert response.status_code == 200
    assert json.loads(response.content)["stored"] is True
    assert InboundEvent.objects.filter(msgid=json.loads(body)["data"]["msgid"]).exists()
    coin = client.post(
        "/onchain/hook/not-the-secret/", "{}", content_type="application/json", HTTP_X_REQUEST_START=_stamp(5)
    )
    assert coin.status_code == 404  # reached its view (a wrong secret), not shed
    assert client.get("/maxima/hooked", HTTP_X_REQUEST_START=_stamp(5)).status_code == 503  # only the hooks
