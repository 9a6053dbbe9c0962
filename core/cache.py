"""Django's Redis cache, minus a new ``redis.Redis`` object per operation, plus window counters in one round trip.

Django's ``RedisCacheClient.get_client`` builds a client (and its table of ~170 response callbacks) on every
call; on the hot paths (rate limits on every request) that was a measurable share of a lookup. A ``redis.Redis``
over a connection pool is thread-safe, so one per pool is enough.

Django's ``incr`` is two round trips (``EXISTS``, then ``INCRBY``), and a new counter a third (``SET NX``); a
request checks two limits. ``count_windows`` counts any number of them in one ``EVALSHA`` (profile: the rate
limits were a third of a lookup's time in the worker, almost all of it waiting on those round trips).
"""

from typing import Any

from django.core.cache.backends.redis import RedisCache as _RedisCache
from django.core.cache.backends.redis import RedisCacheClient as _RedisCacheClient


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


# INCR each key; a key that was not there gets its timeout (the counter of a new window). Returns the counts.
COUNT_WINDOWS = """
local counts = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[i]) end
  counts[i] = count
end
return counts
"""


class RedisCache(_RedisCache):
    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
        self._scripts: dict[int, Any] = {}

    def count_windows(self, counters: list[tuple[str, int]]) -> list[int]:
        """Add one to each ``(key, timeout)`` counter (made with its timeout when new), in one round trip; the
        values are the ones ``incr``/``add``/``get`` of this cache read and write."""
        keys = [self.make_and_validate_key(key) for key, _ in counters]
        client = self._cache.get_client(keys[0], write=True)
        script = self._scripts.get(id(client))
        if script is None:
            script = self._scripts[id(client)] = client.register_script(COUNT_WINDOWS)
        return [int(count) for count in script(keys=keys, args=[timeout for _, timeout in counters])]
