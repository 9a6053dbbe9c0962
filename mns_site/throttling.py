"""Rate limits: fixed one-window counters in the cache, one ``INCR`` per limit per request.

DRF's own throttles keep a list of every request time in the window and write it back on each request: with the
rates a gateway needs that is a growing pickle per client per request. A counter per window is constant work and
shared by every web process through Redis. (A client can pass at most twice the rate across a window boundary,
the usual price of fixed windows.)
"""

from typing import TYPE_CHECKING

from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from mns_site import ratelimit

if TYPE_CHECKING:
    from rest_framework.views import APIView


class FixedWindowThrottle(SimpleRateThrottle):
    def allow_request(self, request: Request, view: "APIView") -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        counted = ratelimit.hit(self.key, window=self.duration, now=self.timer())
        if counted is None:  # the cache is down: serve rather than fail
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
