"""``/metrics``: the gateway's figures for Prometheus, read from the database, behind a token in production.

Deliveries and sends go through the real services (``deliver_received``, ``outbound_send`` with a fake node), as
the inbound and send tasks run them; the figures are then read from a scrape.
"""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from mailboxes.tests.conftest import alice, gateway, opened, sender  # noqa: F401 (fixtures)
from mailboxes.tests.support import FakeNode, Opened, Owner, deliver, send_all

pytestmark = pytest.mark.django_db
DASHBOARD = Path(django_settings.BASE_DIR) / "docs" / "grafana" / "mns-gateway.json"
TOKEN = "a" * 40


@pytest.fixture(autouse=True)
def _open_on_loopback(settings: Any) -> None:
    settings.MNS_METRICS_TOKEN = ""
    settings.MNS_METRICS_OPEN_ON_LOOPBACK = True


def scrape(client: Client, **headers: str) -> dict[str, float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        sample.name + json.dumps(sample.labels, sort_keys=True) if sample.labels else sample.name: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_a_stored_delivery_and_a_refusal_show_with_the_refusals_reason(
    client: Client,
    opened: Opened,  # noqa: F811
    sender: Owner,  # noqa: F811
) -> None:
    assert deliver(sender) == "stored"
    assert deliver(sender, to="nobody") == "unknown_name"
    figures = scrape(client)
    assert figures["mns_deliveries_stored_last_hour"] == 1
    assert figures['mns_deliveries_refused_last_hour{"reason": "unknown_name"}'] == 1


def test_the_outbox_depth_its_oldest_age_and_the_nodes_sends_and_failures_show(
    client: Client,
    opened: Opened,  # noqa: F811
    sender: Owner,  # noqa: F811
) -> None:
    deliver(sender)
    deliver(sender, to="nobody")
    queued = scrape(client)["mns_outbound_queue_depth"]
    assert queued >= 2  # the two receipts (and what registration queued)
    assert scrape(client)["mns_outbound_oldest_age_seconds"] >= 0
    send_all(FakeNode(delivered=False))
    failing = scrape(client)
    assert (failing["mns_node_send_failures_last_hour"], failing["mns_node_sends_last_hour"]) == (queued, 0)
    from maxima.models import OutboundMessage

    OutboundMessage.objects.update(next_attempt_at=django_now())
    send_all(FakeNode())
    sent = scrape(client)
    assert (sent["mns_node_sends_last_hour"], sent["mns_outbound_queue_depth"]) == (queued, 0)
    assert sent["mns_node_send_failures_last_hour"] == 0


def django_now() -> Any:
    from django.utils import timezone

    return timezone.now()


def test_requests_are_counted_by_route_and_status_class(client: Client) -> None:
    client.get("/api/v1/health")
    client.get("/no-such-page")
    figures = scrape(client)
    assert figures['mns_http_request_duration_seconds_count{"route": "health", "status_class": "2xx"}'] >= 1
    assert figures['mns_http_request_duration_seconds_count{"route": "unmatched", "status_class": "4xx"}'] >= 1


def test_a_missing_token_is_401_a_wrong_one_403_and_the_right_one_200(client: Client, settings: Any) -> None:
    settings.MNS_METRICS_TOKEN = TOKEN
    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + "b" * 40)
    assert (missing.status_code, json.loads(missing.content)["error"]) == (401, "metrics_token_missing")
    assert (wrong.status_code, json.loads(wrong.content)["error"]) == (403, "metrics_token_invalid")
    assert b"mns_" not in missing.content + wrong.content
    assert "mns_inbound_queue_depth" in scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def test_without_a_token_only_loopback_in_the_embedded_shape_may_read_them(client: Client, settings: Any) -> None:
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    settings.MNS_METRICS_OPEN_ON_LOOPBACK = False  # production: a proxy in front makes every client loopback
    assert client.get("/metrics").status_code == 403


def test_every_expression_of_the_grafana_dashboard_reads_a_metric_the_endpoint_exposes(client: Client) -> None:
    response = client.get("/metrics")
    exposed = set()
    for family in text_string_to_metric_families(response.content.decode()):
        exposed.add(family.name)
        exposed.update(sample.name for sample in family.samples)
        if family.type == "histogram":
            exposed.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        if family.type == "counter":  # a labelled counter nothing has counted yet has no sample to name it
            exposed.add(family.name + "_total")
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for expr in expressions for name in re.findall(r"\bmns_[a-z0-9_]+", expr)}
    assert len(expressions) >= 12
    assert named - exposed == set()
    assert {"mns_inbound_queue_depth", "mns_peer_lag_seconds", "mns_deliveries_refused_last_hour"} <= named
    assert "mns_early_answers_total" in named
