"""The fixed-window counters of every rate limit (``core.ratelimit``), on the cache the settings name: Redis in
the PostgreSQL phase, Django's local memory otherwise."""

import pytest
from django.core.cache import cache

from core import ratelimit

NOW = 1_800_000_000.0  # the start of a 60-second window


@pytest.fixture(autouse=True)
def clean_cache() -> None:
    cache.clear()


def test_a_count_given_back_is_no_longer_counted() -> None:
    assert ratelimit.hit_many([("k", 60), ("k", 60)], now=NOW) == [(1, 60.0), (2, 60.0)]
    ratelimit.give_back("k", window=60, now=NOW + 5)
    assert ratelimit.hit("k", window=60, now=NOW + 10) == (2, 50.0)


def test_a_count_given_back_after_its_window_ended_leaves_nothing_behind() -> None:
    ratelimit.hit("k", window=60, now=NOW)
    ratelimit.give_back("k", window=60, now=NOW + 60)  # the next window, which counted nothing yet
    assert cache.get(f"rate:k:{int((NOW + 60) // 60)}") is None
    assert ratelimit.hit("k", window=60, now=NOW + 61) == (1, 59.0)
    assert ratelimit.hit("k", window=60, now=NOW + 1) == (2, 59.0)  # the earlier window kept its count


def test_a_counted_event_is_settled_once_kept_or_given_back() -> None:
    [(count, _)] = ratelimit.hit_many([("k", 60)], now=NOW)
    kept = ratelimit.Counted("k", 60, NOW, count)
    kept.keep()
    kept.give_back()  # kept first: nothing to give back
    assert ratelimit.hit("k", window=60, now=NOW + 1) == (2, 59.0)
    twice = ratelimit.Counted("k", 60, NOW + 1, 2)
    twice.give_back()
    twice.give_back()  # given back once only
    twice.keep()
    assert ratelimit.hit("k", window=60, now=NOW + 2) == (2, 58.0)
