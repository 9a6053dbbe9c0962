"""The admin index's key figures, each with a chart of the last 24 hours in hourly buckets (server-rendered SVG).

Counts come from the rows' own timestamps (messages' ``received_at``, receipts' ``created_at``, sends' ``sent_at``,
failed attempts' ``claimed_at``); what the rows cannot tell afterwards — how long the queues were, how far peers
lagged — comes from the samples the beat writes (``maxima.QueueSample``, ``federation.PeerLagSample``), the
highest value of each hour. The figure beside each chart is the present one, the same as ``/metrics`` exposes.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from mns_site import metrics

HOURS = 24
WIDTH, HEIGHT = 240, 40


@dataclass(frozen=True)
class Chart:
    title: str
    now: str  # the present figure, as shown
    values: list[float]  # one per hour, oldest first, the current hour last
    unit: str = ""  # of the peak, under the chart

    @property
    def peak(self) -> float:
        return max(self.values, default=0)

    @property
    def points(self) -> str:
        """The polyline's points in the SVG's coordinates: x across the hours, y up from the bottom to the peak."""
        top = self.peak or 1
        step = WIDTH / (len(self.values) - 1) if len(self.values) > 1 else WIDTH
        return " ".join(
            f"{i * step:.1f},{HEIGHT - 2 - (value / top) * (HEIGHT - 4):.1f}" for i, value in enumerate(self.values)
        )

    @property
    def area(self) -> str:
        return f"0,{HEIGHT} {self.points} {WIDTH},{HEIGHT}"


def hours(now: datetime) -> list[datetime]:
    """The start of each of the last 24 hours, oldest first (the last is the current hour)."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=HOURS - 1 - n) for n in range(HOURS)]


def per_hour(rows: QuerySet, field: str, now: datetime, *, value: str | None = None) -> list[float]:
    """Rows counted (or ``value``'s highest) per hour of ``field``, over the last 24 hours."""
    starts = hours(now)
    aggregate = Max(value) if value else Count("pk")
    buckets = (
        rows.filter(**{f"{field}__gte": starts[0]})
        .annotate(hour=TruncHour(field))
        .values("hour")
        .annotate(v=aggregate)
        .values_list("hour", "v")
    )
    found = {hour: amount or 0 for hour, amount in buckets}
    return [float(found.get(start, 0)) for start in starts]


def seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min" if value < 7200 else f"{value / 3600:.1f} h"


def charts() -> list[Chart]:
    from federation.models import PeerLagSample
    from federation.selectors import peers_health
    from mailboxes.models import Message
    from maxima.models import OutboundMessage, QueueSample
    from maxima.selectors import queue_figures

    now = timezone.now()
    hour_ago = now - metrics.WINDOW
    queues = queue_figures(now=now)
    stored = Message.objects.all()
    refused = metrics.refused_receipts()
    sent = OutboundMessage.objects.filter(status="sent")
    failed = metrics.failed_sends()
    samples = QueueSample.objects.all()
    peers = peers_health()
    return [
        Chart("Deliveries stored", f"{stored.filter(received_at__gte=hour_ago).count()} in the last hour",
              per_hour(stored, "received_at", now)),
        Chart("Deliveries refused", f"{refused.filter(created_at__gte=hour_ago).count()} in the last hour",
              per_hour(refused, "created_at", now)),
        Chart("Node sends", f"{sent.filter(sent_at__gte=hour_ago).count()} in the last hour",
              per_hour(sent, "sent_at", now)),
        Chart("Node send failures", f"{failed.filter(claimed_at__gte=hour_ago).count()} in the last hour",
              per_hour(failed, "claimed_at", now)),
        Chart("Inbound queue", f"{queues['inbound_depth']:.0f} waiting",
              per_hour(samples, "at", now, value="inbound_depth")),
        Chart("Oldest inbound", seconds(queues["inbound_oldest_seconds"]),
              per_hour(samples, "at", now, value="inbound_oldest_seconds"), " s"),
        Chart("Outbound queue", f"{queues['outbound_depth']:.0f} waiting",
              per_hour(samples, "at", now, value="outbound_depth")),
        Chart("Oldest outbound", seconds(queues["outbound_oldest_seconds"]),
              per_hour(samples, "at", now, value="outbound_oldest_seconds"), " s"),
        Chart("Peers' lag (ops, worst)", f"{max((p.lag_ops for p in peers), default=0)} ops",
              per_hour(PeerLagSample.objects.all(), "at", now, value="lag_ops")),
        Chart("Peers' lag (time, worst)", seconds(max((p.lag_seconds for p in peers), default=0)),
              per_hour(PeerLagSample.objects.all(), "at", now, value="lag_seconds"), " s"),
    ]  # fmt: skip
