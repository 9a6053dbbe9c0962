"""How long the node takes to send a Maxima message, by size, and the time limits of a send that follow from it.

Measured on real Minima 1.0.45 nodes (issue 17), one ``maxima send`` took 0.03 s for 1 KB of data, 0.5 s for
60 KB, 2.3 s for 122 KB and 8.5-10 s for 245 KB; above 250 000 bytes a message is refused. The time grows with the
square of the size: ``0.03 + MNS_MAXIMA_SEND_FULL_SECONDS * (size / 250 000)**2`` fits all four (full = 10 s, the
slow end of what was measured).

A send whose node takes up to a second fits the limits every task has: its RPC waits up to
``CELERY_TASK_SOFT_TIME_LIMIT`` minus 2 s, room for a busy node's queue (p99 1.9 s with 16 senders) and the node's own
20 s timeouts towards the recipient. Each second the node takes beyond the first adds ``MNS_MAXIMA_SEND_MARGIN``
seconds to the RPC timeout, and as much to the send task's soft and hard limits and to its claim's lease: a
full-size message on a slow node waits 36 s for its answer, not 18. Such a task may outlive the broker's
visibility timeout (30 s, kept for every other task); when the broker hands it out again while it runs, the claim,
whose lease covers it, turns the copy away.
"""

import itertools
import math
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

# Maxima refuses packages above 262144 bytes (NIOMessage.java); the data must leave room for the envelope.
MAXIMA_MAX_DATA_BYTES = 250_000
SEND_BASE_SECONDS = 0.03
# Replies due to one destination travel together up to this many bytes (``mns_client.protocol.batch``): a send the
# node takes about half a second for, so a batch keeps the time limits of every task (``send_limits``).
BATCH_BYTES = 60_000
# Seconds between the send's RPC timeout and its task's soft limit (the claim before, the result's UPDATE after),
# and between the task's hard limit and the lease after which another task may take its claim.
RPC_HEADROOM_SECONDS = 2
LEASE_HEADROOM_SECONDS = 5
# The claims of abandoned sends are found by size class, each with the lease of its largest size.
LEASE_SIZE_CLASSES = (50_000, 100_000, 150_000, 200_000, MAXIMA_MAX_DATA_BYTES)


def send_seconds(size: int) -> float:
    """What the node takes to send ``size`` bytes of data, as measured on real nodes (the slow end)."""
    share = min(max(size, 0), MAXIMA_MAX_DATA_BYTES) / MAXIMA_MAX_DATA_BYTES
    return SEND_BASE_SECONDS + settings.MNS_MAXIMA_SEND_FULL_SECONDS * share**2


def send_timeout(size: int) -> float:
    """How long the gateway waits for the node's answer to a send of ``size`` bytes."""
    beyond_a_second = max(0.0, send_seconds(size) - 1.0)
    standard = settings.CELERY_TASK_SOFT_TIME_LIMIT - RPC_HEADROOM_SECONDS
    return standard + settings.MNS_MAXIMA_SEND_MARGIN * beyond_a_second


@dataclass(frozen=True)
class SendLimits:
    """The limits of one send: its RPC ``timeout``, its task's ``soft`` and ``hard`` limits, its claim's lease."""

    timeout: float
    soft: int
    hard: int
    lease: timedelta


def send_limits(size: int) -> SendLimits:
    """The limits of a send of ``size`` bytes; those of every task when the node takes it at most a second."""
    timeout = send_timeout(size)
    extra = max(0, math.ceil(timeout + RPC_HEADROOM_SECONDS - settings.CELERY_TASK_SOFT_TIME_LIMIT))
    soft = settings.CELERY_TASK_SOFT_TIME_LIMIT + extra
    hard = settings.CELERY_TASK_TIME_LIMIT + extra
    return SendLimits(timeout, soft, hard, timedelta(seconds=hard + LEASE_HEADROOM_SECONDS))


def lease_classes() -> list[tuple[int, int, timedelta]]:
    """``(above, up_to, lease)`` for each size class: a claim on a message of that size is stale after ``lease``."""
    bounds = [-1, *LEASE_SIZE_CLASSES]
    return [(low, high, send_limits(high).lease) for low, high in itertools.pairwise(bounds)]
