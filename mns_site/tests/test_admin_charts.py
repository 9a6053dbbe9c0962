"""The admin index's key figures with charts of the last 24 hours, and the samples the beat takes for them."""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from federation import services as federation_services
from federation.models import Peer, PeerLagSample
from mailboxes.tests.conftest import alice, gateway, opened, sender  # noqa: F401 (fixtures)
from mailboxes.tests.support import Opened, Owner, deliver
from maxima import tasks as maxima_tasks
from maxima.models import OutboundMessage, QueueSample
from mns_site.admin_charts import HOURS, hours, per_hour

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client) -> Client:
    client.force_login(get_user_model().objects.create_superuser("staff", password="a-long-enough-password"))
    return client


def test_the_admin_index_shows_each_figure_now_with_an_hourly_chart_of_24_points(
    staff_client: Client,
    opened: Opened,  # noqa: F811
    sender: Owner,  # noqa: F811
) -> None:
    deliver(sender)
    deliver(sender, to="nobody")
    response = staff_client.get("/admin/")
    page = response.content.decode()
    titles = [chart.title for chart in response.context["mns_charts"]]
    assert titles == [
        "Deliveries stored", "Deliveries refused", "Node sends", "Node send failures", "Inbound queue",
        "Oldest inbound", "Outbound queue", "Oldest outbound", "Peers' lag (ops, worst)", "Peers' lag (time, worst)",
    ]  # fmt: skip
    stored, refused = response.context["mns_charts"][:2]
    assert (stored.now, refused.now) == ("1 in the last hour", "1 in the last hour")
    assert (stored.values[-1], refused.values[-1], sum(stored.values)) == (1, 1, 1)
    polylines = re.findall(r'<polyline points="([^"]+)"', page)
    assert len(polylines) == len(titles)
    assert all(len(points.split()) == HOURS for points in polylines)
    assert "<script" not in page.split('<div class="mns-figures">')[1].split("</div>")[0]


def test_counts_fall_in_the_hour_of_their_timestamp_and_older_rows_are_left_out() -> None:
    now = timezone.now()
    for age in (timedelta(minutes=1), timedelta(hours=3, minutes=1), timedelta(hours=30)):
        row = OutboundMessage.objects.create(
            destination="0x01", application="t", payload=b"", size=0, idempotency_key=str(age), next_attempt_at=now
        )
        OutboundMessage.objects.filter(id=row.id).update(sent_at=now - age)
    values = per_hour(OutboundMessage.objects.all(), "sent_at", now)
    starts = hours(now)
    three_hours_ago = starts.index((now - timedelta(hours=3, minutes=1)).replace(minute=0, second=0, microsecond=0))
    assert (len(values), sum(values), values[-1] + values[-2], values[three_hours_ago]) == (24, 2, 1, 1)


def test_the_outbound_sweep_samples_the_queues_once_per_interval_and_forgets_after_48_hours(settings: Any) -> None:
    settings.MNS_SAMPLE_EVERY = 300
    old = QueueSample.objects.create(
        at=timezone.now() - timedelta(hours=49), inbound_depth=0, inbound_oldest_seconds=0, outbound_depth=0,
        outbound_oldest_seconds=0,
    )  # fmt: skip
    OutboundMessage.objects.create(
        destination="0x01", application="t", payload=b"", size=0, idempotency_key="k", next_attempt_at=timezone.now()
    )
    maxima_tasks.sweep_outbound()
    maxima_tasks.sweep_outbound()
    samples = list(QueueSample.objects.values_list("inbound_depth", "outbound_depth"))
    assert samples == [(0, 1)]
    assert not QueueSample.objects.filter(id=old.id).exists()


def test_each_enabled_peers_lag_is_sampled_once_per_interval_and_forgotten_after_48_hours() -> None:
    now = timezone.now()
    behind = Peer.objects.create(name="gw-b", identity_key="0xB", address="Mx1@h:1", remote_head=9, cursor=4)
    Peer.objects.create(name="gw-c", identity_key="0xC", address="Mx2@h:1", enabled=False)
    PeerLagSample.objects.create(peer=behind, at=now - timedelta(hours=49), lag_ops=1, lag_seconds=1)
    assert federation_services.peer_lag_sample(every=300, now=now) == 1
    assert federation_services.peer_lag_sample(every=300, now=now + timedelta(seconds=10)) == 0
    assert list(PeerLagSample.objects.values_list("peer__name", "lag_ops")) == [("gw-b", 5)]
