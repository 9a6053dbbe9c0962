"""Django's Redis cache, minus a new ``redis.Redis`` object per operation.

Django's ``RedisCacheClient.get_client`` builds a client (and its table of ~170 response callbacks) on every
call; on the hot paths (rate limits on every request) that was a measurable share of a lookup. A ``redis.Redis``
over a connection pool is thread-safe, so one per pool is enough.
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


class RedisCache(_RedisCache):
    def __init__(self, server: str, params: dict) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
