"""Fixed-window counters in the shared cache, for every rate limit of the gateway.

A limit must never cost an accepted message: when the cache (Redis) is unreachable, ``hit`` answers None and
callers let the request through. The work is stored first and limited second; an outage of the limiter is not a
reason to drop a Maxima message the node will never post again.
"""

import logging
import time

from django.core.cache import cache

logger = logging.getLogger(__name__)


def hit(key: str, *, window: int, now: float | None = None) -> tuple[int, float] | None:
    """Count one event under ``key`` in the current window of ``window`` seconds.

    Returns (count so far in this window, seconds until the window ends), or None if the cache failed.
    """
    now = time.time() if now is None else now
    index = int(now // window)
    full_key = f"rate:{key}:{index}"
    try:
        try:
            count = cache.incr(full_key)  # one round trip in the common case
        except ValueError:  # the first event of this window
            count = 1 if cache.add(full_key, 1, timeout=window + 1) else cache.incr(full_key)
    except Exception as exc:  # the cache is down: do not limit, and say so once per failure
        logger.warning("rate limit not applied, the cache failed: %s", type(exc).__name__)
        return None
    return count, (index + 1) * window - now
