"""Rate limits: fixed one-window counters in the cache, one ``INCR`` per limit per request.

DRF's own throttles keep a list of every request time in the window and write it back on each request: with the
rates a gateway needs that is a growing pickle per client per request. A counter per window is constant work and
shared by every web process through Redis. (A client can pass at most twice the rate across a window boundary,
the usual price of fixed windows.)
"""

import time
from typing import TYPE_CHECKING

from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from core import ratelimit

# What count_together counted for a request, and the same handed on to the view (hand_on); environ keys.
COUNTED, HANDED_ON = "mns.throttles.counted", "mns.throttles.handed_on"

if TYPE_CHECKING:
    from rest_framework.views import APIView


class FixedWindowThrottle(SimpleRateThrottle):
    def prepare(self, request: Request, view: "APIView") -> str | None:
        """The key this request counts under, or None when this limit does not apply to it."""
        if self.rate is None:
            return None
        return self.get_cache_key(request, view)

    def allow_request(self, request: Request, view: "APIView") -> bool:
        if not hasattr(self, "_counted"):  # not counted together with the view's other limits (count_together)
            self.key = self.prepare(request, view)
            if self.key is None:
                return True
            self._counted = ratelimit.hit(self.key, window=self.duration, now=self.timer())
        counted = self._counted
        if counted is None:  # not limited, or the cache is down: serve rather than fail
            return True
        count, self._wait = counted
        return count <= self.num_requests

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)


class PerIPThrottle(FixedWindowThrottle):
    """The default limit for every API endpoint: requests per client address (MNS_THROTTLE_PER_IP)."""

    scope = "ip"

    def get_cache_key(self, request: Request, view: "APIView") -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ScopedThrottle(ScopedRateThrottle, FixedWindowThrottle):
    """A tighter per-address limit for one kind of endpoint, named by the view's ``throttle_scope``
    ("lookup", "write", …; the rates are in settings). API clients are not Django users, so it keys on the
    client address."""

    def prepare(self, request: Request, view: "APIView") -> str | None:
        # DRF's ScopedRateThrottle.allow_request: the rate is the view's scope's, known only now.
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return None
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().prepare(request, view)

    def allow_request(self, request: Request, view: "APIView") -> bool:
        return FixedWindowThrottle.allow_request(self, request, view)


def count_together(
    throttles: list[object],
    request: Request,
    view: "APIView",
    gets: list[str] = (),
    own: list[tuple[str, int]] = (),
) -> tuple[list[bytes | None] | None, list[ratelimit.Counted]]:
    """Count the request under every fixed-window limit of the view in one round trip to the cache; each
    throttle's ``allow_request`` then only compares. (Every limit counts every request, as DRF's loop does.)

    ``gets``: cache keys the view reads anyway, fetched raw in the same round trip (on Redis; ``None`` otherwise,
    or when the cache failed). ``own``: ``(key, window)`` counters of the view's own, which it judges itself later
    (``ThrottleFirst.counted_keys``), counted in the same round trip: one ``ratelimit.Counted`` each."""
    fixed = [t for t in throttles if isinstance(t, FixedWindowThrottle)]
    keyed = []
    for throttle in fixed:
        throttle.key = throttle.prepare(request, view)
        throttle._counted = None
        if throttle.key is not None:
            keyed.append(throttle)
    if not keyed and not gets and not own:
        return None, []
    asked = ([t.key for t in keyed], list(gets), list(own))
    handed = request.META.pop(HANDED_ON, None)
    if handed is not None and handed[0] == asked:  # counted already by an early answer that missed (hand_on)
        now, counted, values = handed[1]
    else:
        now = keyed[0].timer() if keyed else time.time()
        limits = [(t.key, t.duration) for t in keyed] + list(own)
        counted, values = ratelimit.hit_many_and_get(limits, list(gets), now=now)
    counted = counted or [None] * (len(keyed) + len(own))
    for throttle, each in zip(keyed, counted[: len(keyed)], strict=True):
        throttle._counted = each
    request.META[COUNTED] = (asked, (now, counted, values))
    ours = counted[len(keyed) :]
    return values, [
        ratelimit.Counted(key, window, now, None if each is None else each[0])
        for (key, window), each in zip(own, ours, strict=True)
    ]


def hand_on(request: Request) -> None:
    """Let the view that will handle ``request`` use what ``count_together`` counted for it (an early answer,
    ``core.fastpath``, that could not answer): the request is counted once. Only the same limits and keys are
    taken over; the environ key cannot come from a client (headers are ``HTTP_*``)."""
    if COUNTED in request.META:
        request.META[HANDED_ON] = request.META.pop(COUNTED)
