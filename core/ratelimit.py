"""Fixed-window counters in the shared cache, for every rate limit of the gateway.

A limit must never cost an accepted message: when the cache (Redis) is unreachable, ``hit`` answers None and
callers let the request through. The work is stored first and limited second; an outage of the limiter is not a
reason to drop a Maxima message the node will never post again.
"""

import logging
import time
from dataclasses import dataclass, field

from django.core.cache import cache

logger = logging.getLogger(__name__)


def hit(key: str, *, window: int, now: float | None = None) -> tuple[int, float] | None:
    """Count one event under ``key`` in the current window of ``window`` seconds.

    Returns (count so far in this window, seconds until the window ends), or None if the cache failed.
    """
    counted = hit_many([(key, window)], now=now)
    return None if counted is None else counted[0]


def hit_many(limits: list[tuple[str, int]], *, now: float | None = None) -> list[tuple[int, float]] | None:
    """``hit`` for several ``(key, window)`` at once: one round trip to Redis for all of them (the limits of one
    request). Returns one (count, seconds left) per limit, in order, or None if the cache failed."""
    return hit_many_and_get(limits, [], now=now)[0]


def hit_many_and_get(
    limits: list[tuple[str, int]], gets: list[str], *, now: float | None = None
) -> tuple[list[tuple[int, float]] | None, list[bytes | None] | None]:
    """``hit_many``, and the raw values of the cache keys ``gets`` read in the same round trip (only on Redis:
    ``None`` elsewhere, and when the cache failed). What a request reads from the cache costs it nothing more
    than its rate limits did."""
    now = time.time() if now is None else now
    indexes = [int(now // window) for _, window in limits]
    full_keys = [f"rate:{key}:{index}" for (key, _), index in zip(limits, indexes, strict=True)]
    windows = [(k, w + 1) for k, (_, w) in zip(full_keys, limits, strict=True)]
    values = None
    try:
        count_windows_and_get = getattr(cache, "count_windows_and_get", None)  # core.cache.RedisCache
        if count_windows_and_get is not None:
            counts, values = count_windows_and_get(windows, gets)
        else:
            counts = [_count(k, w) for k, (_, w) in zip(full_keys, limits, strict=True)]
    except Exception as exc:  # the cache is down: do not limit, and say so once per failure
        logger.warning("rate limit not applied, the cache failed: %s", type(exc).__name__)
        return None, None
    counted = [
        (count, (index + 1) * window - now) for count, index, (_, window) in zip(counts, indexes, limits, strict=True)
    ]
    return counted, values


@dataclass
class Counted:
    """One event counted under ``key`` at ``now`` by a caller's round trip (``core.throttling.count_together``),
    for the code that judges it later: ``count`` so far in the window, or None when the cache failed (not limited).

    It is settled once: kept (``keep``: the event is one the limit counts) or given back (``give_back``); whichever
    comes first holds, and the other then does nothing, so a caller may give back on every way out but the one that
    kept it."""

    key: str
    window: int
    now: float
    count: int | None
    settled: bool = field(default=False, init=False)

    def over(self, limit: int) -> bool:
        return self.count is not None and self.count > limit

    def keep(self) -> None:
        self.settled = True

    def give_back(self) -> None:
        if not self.settled:
            self.settled = True
            if self.count is not None:
                give_back(self.key, window=self.window, now=self.now)


def give_back(key: str, *, window: int, now: float) -> None:
    """Take back one event that ``hit``/``hit_many`` counted under ``key`` at ``now``: a caller that counts first,
    to save a round trip, and learns afterwards that the event was not one the limit counts. Nothing when that
    window has ended, or when the cache failed (the window ends on its own)."""
    full_key = f"rate:{key}:{int(now // window)}"
    try:
        if hasattr(cache, "uncount"):  # core.cache.RedisCache
            cache.uncount(full_key)
        elif cache.get(full_key):
            cache.decr(full_key)
    except Exception as exc:
        logger.warning("a rate limit's count was not given back, the cache failed: %s", type(exc).__name__)


def over_any(limits: list[tuple[str, int, int]], *, now: float | None = None) -> bool:
    """Count one event under each ``(key, window, limit)`` in order, stopping at the first one over its limit
    (the later ones are not counted then); whether one was over. One round trip on Redis. False when the cache
    failed: a limit never costs an accepted message."""
    now = time.time() if now is None else now
    full_keys = [(f"rate:{key}:{int(now // window)}", window + 1, limit) for key, window, limit in limits]
    try:
        if hasattr(cache, "count_until_over"):  # core.cache.RedisCache
            return cache.count_until_over(full_keys)
        return any(_count(key, timeout - 1) > limit for key, timeout, limit in full_keys)  # any() stops at one
    except Exception as exc:
        logger.warning("rate limit not applied, the cache failed: %s", type(exc).__name__)
        return False


def _count(full_key: str, window: int) -> int:
    try:
        return cache.incr(full_key)  # one round trip in the common case
    except ValueError:  # the first event of this window
        return 1 if cache.add(full_key, 1, timeout=window + 1) else cache.incr(full_key)
