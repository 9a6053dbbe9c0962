"""``core.cache.RedisCache.run_script``, the one way the gateway runs its Lua scripts (every rate limit of every
request): on a real Redis, through the failures a pooled connection meets."""

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from core.cache import RedisCache


@pytest.fixture
def cache(redis_url: str) -> Iterator[RedisCache]:
    """A cache of its own (one connection is enough: every call here reuses it), emptied before and after."""
    made = RedisCache(redis_url, {"KEY_PREFIX": "t", "OPTIONS": {"socket_timeout": 0.2}})
    made.clear()
    yield made
    made.clear()


@pytest.fixture
def server(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def test_counters_and_values_in_one_call(cache: RedisCache) -> None:
    cache.raw_client().set(cache.make_key("kept"), b"value")
    assert cache.count_windows_and_get([("a", 60), ("b", 60)], ["kept", "none"]) == ([1, 1], [b"value", None])
    assert cache.count_windows_and_get([("a", 60)], []) == ([2], [])
    assert 0 < cache.raw_client().ttl(cache.make_key("b")) <= 60


def test_a_script_the_server_forgot_is_given_again(cache: RedisCache, server: redis.Redis) -> None:
    cache.count_windows_and_get([("a", 60)], [])
    server.script_flush()  # as a restarted Redis, which keeps no scripts
    assert cache.count_windows_and_get([("a", 60)], []) == ([2], [])
    assert cache.count_until_over([("a", 60, 2)]) is True  # the other scripts too
    cache.uncount("a")
    assert cache.count_windows_and_get([("a", 60)], []) == ([3], [])


def test_a_connection_the_server_closed_is_replaced(cache: RedisCache, server: redis.Redis) -> None:
    cache.count_windows_and_get([("a", 60)], [])
    assert server.client_kill_filter(_type="normal", skipme=True) >= 1  # ours, idle in the pool
    assert cache.count_windows_and_get([("a", 60)], []) == ([2], [])


def test_a_call_that_failed_leaves_no_reply_behind_for_the_next(cache: RedisCache, server: redis.Redis) -> None:
    """The first call times out while the server is paused; its reply, sent once the pause ends, must not be read
    as the second call's (which asks for another key)."""
    raw = cache.raw_client()
    raw.set(cache.make_key("first"), b"1")
    raw.set(cache.make_key("second"), b"2")
    cache.count_windows_and_get([], ["first"])  # the connection exists, in the pool
    unpaused = time.monotonic() + 0.6
    server.execute_command("CLIENT", "PAUSE", 600, "ALL")  # UNPAUSE could not end it early: it would wait too
    with pytest.raises(redis.TimeoutError):
        cache.count_windows_and_get([], ["first"])
    time.sleep(max(0.0, unpaused - time.monotonic()) + 0.1)
    assert cache.count_windows_and_get([], ["second"]) == ([], [b"2"])
    assert cache.count_windows_and_get([], ["first"]) == ([], [b"1"])


def test_threads_share_the_pool_without_mixing_replies(cache: RedisCache) -> None:
    counts: dict[str, list[int]] = {}

    def count(key: str) -> None:
        counts[key] = [cache.count_windows_and_get([(key, 60)], [])[0][0] for _ in range(200)]

    threads = [threading.Thread(target=count, args=(f"k{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == {f"k{i}": list(range(1, 201)) for i in range(8)}
