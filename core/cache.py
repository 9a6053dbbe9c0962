"""Django's Redis cache, minus a new ``redis.Redis`` object per operation, plus window counters in one round trip.

Django's ``RedisCacheClient.get_client`` builds a client (and its table of ~170 response callbacks) on every
call; on the hot paths (rate limits on every request) that was a measurable share of a lookup. A ``redis.Redis``
over a connection pool is thread-safe, so one per pool is enough.

Django's ``incr`` is two round trips (``EXISTS``, then ``INCRBY``), and a new counter a third (``SET NX``); a
request checks two limits. ``count_windows_and_get`` counts any number of them in one ``EVALSHA``, and reads
the keys the request needs besides (a lookup's published record, ``registry.published``) (profile: the rate
limits were a third of a lookup's time in the worker, almost all of it waiting on those round trips). Their keys
are made with ``make_key`` alone: ``validate_key`` only warns about keys memcached could not hold, and took a tenth
of the call.
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache as _RedisCache
from django.core.cache.backends.redis import RedisCacheClient as _RedisCacheClient
from redis import exceptions as redis_errors


class RedisCacheClient(_RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


# INCR each of the first ARGV[1] keys (a key that was not there gets its timeout, ARGV[i + 1]: the counter of a
# new window), then GET each key after them (false where there is none): a request's rate limits and what it
# reads from the cache (a lookup's published record) in one round trip.
COUNT_AND_GET = """
local n = tonumber(ARGV[1])
local out = {}
for i = 1, n do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[i + 1]) end
  out[i] = count
end
for i = n + 1, #KEYS do
  out[i] = redis.call('GET', KEYS[i])
end
return out
"""


# INCR the keys in order (a new one gets its timeout, ARGV[2i - 1]) until one is over its limit (ARGV[2i]): 1 if
# one was, 0 if none. The later limits are not counted for an event the earlier ones refused.
COUNT_UNTIL_OVER = """
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[2 * i - 1]) end
  if count > tonumber(ARGV[2 * i]) then return 1 end
end
return 0
"""


# DECR the key if it is still there (a counter whose window ended is gone: nothing to give back, and a DECR would
# leave a -1 without a timeout behind).
UNCOUNT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisCache(_RedisCache):
    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
        self._scripts: dict[tuple[int, str], Any] = {}

    def count_windows_and_get(self, counters: list[tuple[str, int]], gets: list[str]) -> tuple[list[int], list[Any]]:
        """Add one to each ``(key, timeout)`` counter (made with its timeout when new) and read the raw value
        (bytes, or None) of each key of ``gets``, all in one round trip. The counters are the values ``incr``/
        ``add``/``get`` of this cache read and write; the ``gets`` are the ones ``raw_client`` writes, not this
        cache's pickled ``get``/``set`` values."""
        keys = [self.make_key(key) for key, _ in counters] + [self.make_key(key) for key in gets]
        out = self.run_script(COUNT_AND_GET, keys, [len(counters), *(timeout for _, timeout in counters)])
        return [int(count) for count in out[: len(counters)]], [value or None for value in out[len(counters) :]]

    def count_until_over(self, counters: list[tuple[str, int, int]]) -> bool:
        """Add one to each ``(key, timeout, limit)`` counter in order, stopping after the first one over its
        limit, in one round trip; whether one was over."""
        keys = [self.make_key(key) for key, _, _ in counters]
        args = [value for _, timeout, limit in counters for value in (timeout, limit)]
        return bool(self.run_script(COUNT_UNTIL_OVER, keys, args))

    def uncount(self, key: str) -> None:
        """Take one back from the counter ``key`` of ``count_windows_and_get``, if it is still there."""
        self.run_script(UNCOUNT, [self.make_key(key)], [])

    def run_script(self, source: str, keys: list[str], args: list[Any]) -> Any:
        """Run the Lua script ``source`` on ``keys`` and ``args``: one ``EVALSHA`` written to a pooled
        connection and its reply read, without ``execute_command``'s machinery around each call (its retry
        closure, timing and error hooks: a third of the call's CPU in a worker). A script is never tried twice,
        whatever the connection's ``Retry`` says: a counter's ``INCR`` is not idempotent (the settings give the
        pool none anyway). redis-py keeps the connection fit for the next caller: the pool connects again one the
        server closed, and a call that fails is closed before its connection goes back, so its reply, if it comes
        after all, is read by nobody (with RESP3 and maintenance notifications, redis-py's default, the pool does
        not look for a reply left waiting). A server that does not know the script (new, or restarted) is given it,
        and the call made again."""
        script = self._script(source)
        pool = script.registered_client.connection_pool
        try:
            return _evalsha(pool, script.sha, keys, args)
        except redis_errors.NoScriptError:  # refused before running anything
            script.registered_client.script_load(source)
            return _evalsha(pool, script.sha, keys, args)

    def _script(self, source: str) -> Any:
        """``source`` registered once per client (redis-py's ``Script``): its SHA1 and the client whose pool
        ``run_script`` takes a connection from."""
        client = self.raw_client()
        script = self._scripts.get((id(client), source))
        if script is None:
            script = self._scripts[(id(client), source)] = client.register_script(source)
        return script

    def raw_client(self) -> Any:
        """The ``redis.Redis`` behind this cache (one per pool), for values kept as raw bytes."""
        return self._cache.get_client(None, write=True)


def _evalsha(pool: Any, sha: str, keys: list[str], args: list[Any]) -> Any:
    connection = pool.get_connection()
    try:
        connection.send_command("EVALSHA", sha, len(keys), *keys, *args)
        return connection.read_response()
    finally:
        pool.release(connection)
