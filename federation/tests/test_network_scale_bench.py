"""The scale bench's model (``bench.network_scale``, docs/scaling.md): its measured parts are the real protocol,
and its simulated parts behave as the page says."""

import random

from bench import network_scale


def test_a_measured_round_finds_exactly_the_difference_and_costs_less_than_the_set() -> None:
    figures = network_scale.measure(names=4000, gateways=5, fraction=0.005, https_mbps=100, seed=1)
    assert figures.difference == 20
    assert 0 < figures.round_bytes < figures.names * figures.item_bytes / 10
    assert figures.new_peer_reconcile_bytes < 2000  # a new peer asks for the top subtrees whole
    assert figures.new_peer_snapshot_bytes == 4000 * figures.item_bytes


def test_two_gateways_converge_in_one_period_and_more_take_longer() -> None:
    rng = random.Random(3)
    assert network_scale.spread(2, rng, trials=20)[0] == 1
    assert network_scale.spread(50, rng, trials=20)[0] > network_scale.spread(5, rng, trials=20)[0]


def test_a_claim_waits_longer_among_more_gateways() -> None:
    few, _ = network_scale.claim_latency(5, random.Random(1), trials=200)
    many, _ = network_scale.claim_latency(100, random.Random(1), trials=200)
    assert 0 < few < many


def test_the_projection_of_a_round_matches_the_measured_round_at_the_measured_size() -> None:
    measured = network_scale.measure(names=20000, gateways=5, fraction=0.005, https_mbps=100, seed=2)
    same = network_scale.project(measured, 20000, 5, 100, seed=2)
    assert same.round_requests == measured.round_requests
    assert same.round_bytes == measured.round_bytes
