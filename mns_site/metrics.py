"""Prometheus metrics at ``/metrics``, with the client library ``prometheus_client``.

Where each figure comes from, and why:

- **From the database, at scrape time** (a collector that runs a few indexed queries on each scrape): the queues,
  deliveries, node sends and peers' lag. The gateway runs several gunicorn workers and Celery workers, often on
  other machines; an in-memory counter in one process would see only its own share (and lose it on restart). The
  tables already hold every fact with its time and status: ``InboundEvent``/``OutboundMessage`` (the Maxima inbox
  and outbox), ``Message`` (stored deliveries), the receipts in the outbox (a refusal's idempotency key ends in
  ``:refused:<reason>``) and ``Peer``. Finished transport rows are deleted after ``MNS_TRANSPORT_KEEP_HOURS`` and
  messages expire, so a count of rows is not monotonic: a counter that falls reads as a reset to Prometheus, and
  ``rate()`` would invent traffic. These figures are therefore gauges over a fixed trailing window, the last hour
  (``…_last_hour``), which graph as they are, or gauges of the present state (queue depth, oldest age, lag).
- **Requests, in the web processes**: a histogram of request durations by route and status class. Only the web
  workers see requests, so prometheus_client's multiprocess mode sums them: each worker writes its values to
  memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR`` and the scrape (whichever worker answers it) reads them all.
  ``gunicorn.conf.py`` sets that directory to ``var/prometheus/`` in the master before any worker starts, empties
  it at start, and marks a worker's files dead when it exits. Without the variable (``runserver``, tests) the
  histogram lives in the process, which is then the only one. These are true counters (``_count``, ``_sum``).

Access: a bearer token (``MNS_METRICS_TOKEN``, compared in constant time); without one, only from loopback and only
in the embedded shape or with DEBUG (behind a proxy every client would look like loopback). Rate- and
size-limited like every URL.
"""

import hashlib
import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from rest_framework.request import Request

from core.api import APIView
from core.errors import DomainError
from mns_site.dapp import AnyAccept

WINDOW = timedelta(hours=1)
REQUEST_SECONDS = Histogram(
    "mns_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (the URL pattern's name) and status class (2xx, 4xx, …).",
    ["route", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


# --- Request metrics -------------------------------------------------------------------------------------------
class RequestMetricsMiddleware:
    """Times every request that reaches Django and records it under its route's name (bounded: never the path)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        REQUEST_SECONDS.labels(route_name(request), f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        return response


def route_name(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.view_name or match.route


# --- Figures from the database ---------------------------------------------------------------------------------
def gauge(name: str, documentation: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def refused_receipts() -> QuerySet:
    """Receipts of refused deliveries in the outbox (their key ends in ``:refused:<reason>``)."""
    from maxima.models import OutboundMessage

    return OutboundMessage.objects.filter(idempotency_key__startswith="receipt:", idempotency_key__contains=":refused:")


def failed_sends() -> QuerySet:
    """Outbox rows whose last attempt (``claimed_at``) failed: given up for good, or waiting for a retry."""
    from maxima.models import OutboundMessage

    return OutboundMessage.objects.filter(Q(status="failed") | (Q(status="queued", attempts__gt=0) & ~Q(last_error="")))


class DatabaseCollector(Collector):
    """The gateway's figures, read from its tables at each scrape (see the module's docstring)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from federation.selectors import peers_health
        from mailboxes.models import Message
        from maxima.models import NodeState, OutboundMessage
        from maxima.selectors import queue_figures

        now = timezone.now()
        since = now - WINDOW
        queues = queue_figures(now=now)
        yield gauge(
            "mns_inbound_queue_depth", "Maxima messages received and not yet processed.", queues["inbound_depth"]
        )
        yield gauge(
            "mns_inbound_oldest_age_seconds",
            "Age of the oldest Maxima message waiting to be processed (0 when none waits).",
            queues["inbound_oldest_seconds"],
        )
        yield gauge("mns_outbound_queue_depth", "Maxima messages waiting to be sent.", queues["outbound_depth"])
        yield gauge(
            "mns_outbound_oldest_age_seconds",
            "Age of the oldest Maxima message waiting to be sent (0 when none waits).",
            queues["outbound_oldest_seconds"],
        )
        yield gauge(
            "mns_deliveries_stored_last_hour",
            "Deliveries stored in a mailbox in the last hour (over Maxima and REST).",
            Message.objects.filter(received_at__gte=since).count(),
        )
        refused = GaugeMetricFamily(
            "mns_deliveries_refused_last_hour",
            "Deliveries over Maxima refused in the last hour, by the receipt's reason.",
            labels=["reason"],
        )
        reasons: dict[str, int] = {}
        for key in refused_receipts().filter(created_at__gte=since).values_list("idempotency_key", flat=True):
            reason = key.rsplit(":refused:", 1)[1]
            reasons[reason] = reasons.get(reason, 0) + 1
        for reason, count in sorted(reasons.items()):
            refused.add_metric([reason], count)
        yield refused
        yield gauge(
            "mns_node_sends_last_hour",
            "Maxima messages the node confirmed sent in the last hour.",
            OutboundMessage.objects.filter(status="sent", sent_at__gte=since).count(),
        )
        yield gauge(
            "mns_node_send_failures_last_hour",
            "Maxima messages whose send failed in the last hour (given up, or waiting for a retry).",
            failed_sends().filter(claimed_at__gte=since).count(),
        )
        node = NodeState.objects.first()
        yield gauge(
            "mns_node_reachable", "1 when the node answered its last check.", int(bool(node and node.reachable))
        )
        yield from self.peers(peers_health())

    def peers(self, peers: list) -> Iterator[GaugeMetricFamily]:
        families = {
            "ops": GaugeMetricFamily(
                "mns_peer_lag_ops", "Operations of a peer's log not yet applied here.", labels=["peer"]
            ),
            "seconds": GaugeMetricFamily(
                "mns_peer_lag_seconds",
                "How long a peer's log has been incomplete here (0 when caught up).",
                labels=["peer"],
            ),
            "healthy": GaugeMetricFamily(
                "mns_peer_healthy",
                "1 when a peer is heard from, not paused and within the lag limits.",
                labels=["peer"],
            ),
        }
        for peer in peers:
            families["ops"].add_metric([peer.name], peer.lag_ops)
            families["seconds"].add_metric([peer.name], peer.lag_seconds)
            families["healthy"].add_metric([peer.name], int(peer.healthy))
        yield from families.values()


def exposition() -> bytes:
    """The text a scrape gets: the database figures and the request histogram (summed over every web process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(registry) + generate_latest(REGISTRY)


# --- The endpoint ---------------------------------------------------------------------------------------------
def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def check_access(request: HttpRequest) -> None:
    """A valid bearer token, or (no token configured) loopback in the embedded shape or with DEBUG; else refused."""
    expected = settings.MNS_METRICS_TOKEN
    if expected:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise DomainError(
                "metrics_token_missing", "Send the metrics token: Authorization: Bearer <token>.", status=401
            )
        if not hmac.compare_digest(_digest(given.strip()), _digest(expected)):
            raise DomainError("metrics_token_invalid", "This is not the metrics token.", status=403)
        return
    if not (settings.MNS_METRICS_OPEN_ON_LOOPBACK and _loopback(request.META.get("REMOTE_ADDR", ""))):
        raise DomainError(
            "metrics_forbidden",
            "Metrics need MNS_METRICS_TOKEN here (only loopback may read them without).",
            status=403,
        )


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class MetricsView(APIView):
    """GET ``/metrics``: the Prometheus text format. Throttled per client address like the API."""

    content_negotiation_class = AnyAccept

    @extend_schema(exclude=True)  # for Prometheus, not an API client
    def get(self, request: Request) -> HttpResponse:
        check_access(request)
        response = HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)  # every Prometheus reads it
        response["Cache-Control"] = "no-store"
        return response
