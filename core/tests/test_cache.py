"""``core.cache.RedisCache.run_script``, the one way the gateway runs its Lua scripts (every rate limit of every
request): on a real Redis, touching only this test's own keys, connection and scripts (the server is shared), and
on a silent server on loopback for a call that times out."""

import secrets
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from core.cache import RedisCache


@pytest.fixture
def cache(redis_url: str) -> Iterator[RedisCache]:
    """A cache of its own (one connection: every call here reuses it) under a prefix of its own, whose keys alone
    are deleted after (the database may be another's too: the broker's, by default)."""
    made = RedisCache(redis_url, {"KEY_PREFIX": f"test-cache-{secrets.token_hex(4)}"})
    yield made
    raw = made.raw_client()
    for key in raw.scan_iter(match=made.make_key("*")):
        raw.delete(key)


def test_counters_and_values_in_one_call(cache: RedisCache) -> None:
    cache.raw_client().set(cache.make_key("kept"), b"value")
    assert cache.count_windows_and_get([("a", 60), ("b", 60)], ["kept", "none"]) == ([1, 1], [b"value", None])
    assert cache.count_windows_and_get([("a", 60)], []) == ([2], [])
    assert 0 < cache.raw_client().ttl(cache.make_key("b")) <= 60
    assert cache.count_until_over([("a", 60, 2)]) is True
    cache.uncount("a")
    assert cache.count_windows_and_get([("a", 60)], []) == ([3], [])


def test_a_script_the_server_does_not_know_is_given_to_it_and_run_once(cache: RedisCache) -> None:
    """As after a restart of Redis, which keeps no scripts: a source no server has seen (its own comment)."""
    source = f"-- {secrets.token_hex(8)}\nreturn redis.call('INCR', KEYS[1])"
    key = cache.make_key("runs")
    assert cache.run_script(source, [key], []) == 1  # NOSCRIPT, loaded, run once
    assert cache.run_script(source, [key], []) == 2  # known now: EVALSHA alone


def test_a_connection_the_server_closed_is_replaced(cache: RedisCache, redis_url: str) -> None:
    cache.count_windows_and_get([("a", 60)], [])
    ours = cache.raw_client().client_id()  # the pool's one connection
    assert redis.Redis.from_url(redis_url).client_kill_filter(_id=ours) == 1
    assert cache.count_windows_and_get([("a", 60)], []) == ([2], [])
    assert cache.raw_client().client_id() != ours


class SilentRedis:
    """A server on loopback that answers ``HELLO`` as Redis 7 does (RESP3, redis-py's protocol), ``+OK`` to every
    other command but ``EVALSHA``, which it never answers: a Redis too slow for the caller's timeout. Counts the
    connections made to it, and those closed."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.accepted = 0
        self.closed = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        with client:
            while chunk := client.recv(65536):
                buffer += chunk
                while (command := _command(buffer)) is not None:
                    name, buffer = command
                    if name == b"HELLO":  # redis-py speaks RESP3: the server says it does too
                        client.sendall(b"%1\r\n$5\r\nproto\r\n:3\r\n")
                    elif name != b"EVALSHA":
                        client.sendall(b"+OK\r\n")
        self.closed += 1


def _command(buffer: bytes) -> tuple[bytes, bytes] | None:
    """The name of the first whole RESP command in ``buffer`` and what follows it, or None if it is not all here."""
    lines = buffer.split(b"\r\n")
    if len(lines) < 2 or not lines[0].startswith(b"*"):
        return None
    count, at, parts = int(lines[0][1:]), 1, []
    for _ in range(count):
        if at + 1 >= len(lines):
            return None
        parts.append(lines[at + 1])
        at += 2
    if at >= len(lines):
        return None
    return parts[0].upper(), b"\r\n".join(lines[at:])


@pytest.fixture
def silent() -> Iterator[SilentRedis]:
    server = SilentRedis()
    yield server
    server.listener.close()


def test_a_call_that_timed_out_is_closed_before_its_connection_goes_back(silent: SilentRedis) -> None:
    """Its reply may still come: a connection put back open would hand it to the next caller as theirs."""
    cache = RedisCache(silent.url, {"OPTIONS": {"socket_timeout": 0.2}})
    with pytest.raises(redis.TimeoutError):
        cache.count_windows_and_get([("a", 60)], [])
    closed_by = time.monotonic() + 5
    while silent.closed < 1 and time.monotonic() < closed_by:  # the server sees the close a moment later
        time.sleep(0.01)
    assert (silent.accepted, silent.closed) == (1, 1)
    with pytest.raises(redis.TimeoutError):
        cache.count_windows_and_get([("a", 60)], [])
    assert silent.accepted == 2  # the next call had a connection of its own
