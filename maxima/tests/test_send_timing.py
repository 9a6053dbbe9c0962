"""A send's time limits follow how long the node takes to send its size, so a full-size message fits on a slow node."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from maxima.models import OutboundMessage
from maxima.selectors import outbound_due, outbound_lease
from maxima.timing import MAXIMA_MAX_DATA_BYTES, send_limits, send_seconds
from mns_client.protocol import sync

SIZES = [0, 1_000, 60_000, 78_000, 122_000, 200_000, 245_000, MAXIMA_MAX_DATA_BYTES]


@pytest.mark.parametrize(
    ("size", "low", "high"),
    [(1_000, 0.025, 0.035), (60_000, 0.45, 0.65), (122_000, 2.1, 2.6), (245_000, 8.5, 10.0)],
)
def test_the_expected_send_time_is_what_a_real_node_took_for_each_measured_size(
    size: int, low: float, high: float
) -> None:
    assert low <= send_seconds(size) <= high


def test_the_largest_message_waits_for_its_answer_margin_times_what_a_slow_node_takes_and_more() -> None:
    limits = send_limits(MAXIMA_MAX_DATA_BYTES)
    slow = send_seconds(MAXIMA_MAX_DATA_BYTES)

    assert slow >= 10
    assert limits.timeout >= settings.MNS_MAXIMA_SEND_MARGIN * slow
    assert limits.timeout >= slow + send_limits(0).timeout


@pytest.mark.parametrize("size", SIZES)
def test_every_sends_task_outlives_its_rpc_timeout_and_its_lease_outlives_the_task(size: int) -> None:
    limits = send_limits(size)

    assert limits.timeout + 2 <= limits.soft < limits.hard < limits.lease.total_seconds()
    assert limits.timeout > send_seconds(size)


def test_a_send_the_node_takes_a_second_at_most_keeps_the_limits_every_task_has() -> None:
    standard = (
        settings.CELERY_TASK_SOFT_TIME_LIMIT - 2,
        settings.CELERY_TASK_SOFT_TIME_LIMIT,
        settings.CELERY_TASK_TIME_LIMIT,
        outbound_lease(),
    )

    for size in (0, 1_000, 60_000, 77_000):
        limits = send_limits(size)
        assert (limits.timeout, limits.soft, limits.hard, limits.lease) == standard


def test_limits_grow_with_the_size_of_the_message() -> None:
    hards = [send_limits(size).hard for size in SIZES]

    assert hards == sorted(hards)
    assert hards[-1] > settings.CELERY_TASK_TIME_LIMIT


def test_the_federation_batch_default_is_what_a_real_node_sends_in_about_a_second() -> None:
    assert settings.MNS_FEDERATION_BATCH_BYTES == 60_000
    assert send_seconds(settings.MNS_FEDERATION_BATCH_BYTES) <= 1.0


def test_an_op_above_the_batch_size_goes_alone_and_stays_within_what_maxima_carries() -> None:
    big = {"seq": 2, "kind": "message", "payload": "A" * (settings.MNS_FEDERATION_MAX_OP_BYTES - 64)}
    small = {"seq": 1, "kind": "statement", "payload": "B" * 100}
    assert sync.op_size(big) <= settings.MNS_FEDERATION_MAX_OP_BYTES

    batches = list(sync.batches(origin="0xAB", head=2, ops=[small, big], max_bytes=settings.MNS_FEDERATION_BATCH_BYTES))

    assert [len(batch["ops"]) for batch in batches] == [1, 1]
    assert max(len(sync.encode(batch)) for batch in batches) <= MAXIMA_MAX_DATA_BYTES


def test_the_largest_message_a_mailbox_takes_replicates_as_one_op() -> None:
    assert settings.MNS_FEDERATION_MAX_OP_BYTES >= 2 * settings.MNS_MAX_MESSAGE_BYTES


@pytest.mark.django_db
def test_a_claim_on_a_big_message_is_not_taken_over_while_its_longer_send_may_still_run() -> None:
    claimed = timezone.now() - outbound_lease() - timedelta(seconds=1)
    small, big = (
        OutboundMessage.objects.create(
            destination="0xAB",
            application="mns",
            payload=b"x",
            size=size,
            idempotency_key=f"timing-{size}",
            status=OutboundMessage.Status.SENDING,
            claimed_at=claimed,
            next_attempt_at=claimed,
            max_attempts=3,
        )
        for size in (1_000, 200_000)
    )

    assert outbound_due(limit=10) == [small.id]
    OutboundMessage.objects.filter(id=big.id).update(claimed_at=timezone.now() - send_limits(200_000).lease)
    assert sorted(outbound_due(limit=10)) == sorted([small.id, big.id])
