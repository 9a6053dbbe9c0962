"""A node's sends take time by size and go through one pipeline: the model, and what the nodes recorded."""

import itertools
import threading
from collections.abc import Iterator

import pytest

from simnet import SendTiming, SimNetwork
from simnet.sending import SendPipeline
from simnet.testing import rpc

MEASURED = SendTiming()


@pytest.mark.parametrize(
    ("size", "low", "high"),
    [(1_000, 0.025, 0.035), (60_000, 0.45, 0.65), (122_000, 2.1, 2.5), (245_000, 8.5, 10.0)],
)
def test_the_default_model_takes_the_time_a_real_node_took_for_each_measured_size(
    size: int, low: float, high: float
) -> None:
    assert low <= MEASURED.seconds(size) <= high


def test_the_default_model_gets_through_as_many_sends_a_second_as_a_real_node() -> None:
    alone, four, sixteen = MEASURED.rate(senders=1), MEASURED.rate(senders=4), MEASURED.rate(senders=16)

    assert 28 <= alone <= 35
    assert 48 <= four <= 56
    assert 40 <= sixteen <= 48
    assert alone < sixteen < four


def test_a_send_spends_its_computed_time_first_in_the_pipeline_then_alongside_others() -> None:
    slept: list[float] = []
    pipeline = SendPipeline(MEASURED, sleep=slept.append)

    answer, _ = pipeline.send(122_000, lambda: b"OK")

    assert answer == b"OK"
    assert slept == pytest.approx([MEASURED.serial_seconds(122_000), MEASURED.seconds(122_000) * 0.4])
    assert (pipeline.sent, pipeline.queued, pipeline.records[0].waiting) == (1, 0, 0)


def test_each_send_found_ahead_in_the_pipeline_slows_a_send_by_the_contention_share() -> None:
    assert MEASURED.serial_seconds(1000, waiting=10) == pytest.approx(MEASURED.serial_seconds(1000) * 1.15)


def test_instant_timing_never_sleeps() -> None:
    slept: list[float] = []
    pipeline = SendPipeline(SendTiming.instant(), sleep=slept.append)

    pipeline.send(250_000, lambda: None)

    assert slept == []


@pytest.fixture
def slow_net() -> Iterator[SimNetwork]:
    """Every send holds the pipeline for 0.2 s and nothing else: concurrent sends must queue."""
    timing = SendTiming(base_seconds=0.2, full_seconds=0.0, serial_share=1.0, contention=0.0)
    with SimNetwork(nodes=2, block_interval=30, send_timing=timing) as network:
        yield network


def test_a_node_sends_concurrent_messages_one_at_a_time_in_arrival_order(slow_net: SimNetwork) -> None:
    a, b = slow_net.nodes
    senders = 5
    start = threading.Barrier(senders)
    replies: list[dict] = []

    def send() -> None:
        start.wait()
        reply = rpc(a.rpc_url, f"maxima action:send to:{b.address} application:mns data:0x01").json()
        replies.append(reply["response"])

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    records = sorted(a.sends.records, key=lambda r: r.serial_start)
    assert [r["delivered"] for r in replies] == [True] * senders
    assert (a.sends.sent, b.sends.sent) == (senders, 0)
    assert [r.ticket for r in records] == list(range(senders))
    assert all(later.serial_start >= earlier.serial_end for earlier, later in itertools.pairwise(records))
    assert a.sends.queued >= 1
    assert records[0].waiting == 0


def test_a_poll_send_goes_through_the_same_pipeline(slow_net: SimNetwork) -> None:
    a, b = slow_net.nodes

    reply = rpc(a.rpc_url, f"maxima action:send to:{b.address} application:mns data:0x01 poll:true").json()
    for _ in range(100):
        if a.sends.sent:
            break
        threading.Event().wait(0.05)

    assert reply["response"]["message"] == "Message added to send stack.."
    assert a.sends.sent == 1


def test_262144_bytes_are_refused_at_once_without_the_time_their_size_would_take() -> None:
    timing = SendTiming(base_seconds=0.0, full_seconds=1000.0)
    with SimNetwork(nodes=2, block_interval=30, send_timing=timing) as net:
        a, b = net.nodes

        reply = rpc(a.rpc_url, f"maxima action:send to:{b.address} application:mns data:0x{'AB' * 262144}").json()

        assert (reply["response"]["delivered"], reply["response"]["error"]) == (False, "Maxima Mesasge too big")
        assert [r.size for r in a.sends.records] == [0]
