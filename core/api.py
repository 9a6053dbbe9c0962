"""The base views of the gateway's API: DRF's, with rate limits checked before authentication.

DRF runs authentication, then permissions, then throttles; a request with a bad token is refused before it is
ever counted, so guessing tokens or hammering authenticated endpoints would cost nothing. Every throttle of the
gateway keys on the client address alone, so nothing is lost by counting first.

A method the view does not handle is answered 405 right after the throttle, before credentials and permissions
are looked at (DRF would only find out in ``dispatch``, after a permission may already have refused it).
"""

from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, generics, views
from rest_framework.request import Request

from core import throttling
from core.schema import ErrorSerializer
from core.throttling import PerIPThrottle, ScopedThrottle

# The limits of every endpoint of the gateway's API: the client address's, and the view's ``throttle_scope``.
THROTTLES = (PerIPThrottle, ScopedThrottle)
# The headers of an answer that carries a secret or a one-time state (a session, a challenge's code): never cached.
NO_STORE = {"Cache-Control": "no-store"}


def error_response(description: str) -> OpenApiResponse:
    """An error of the API's one shape (``{"error", "detail"}``) in the OpenAPI schema, for ``extend_schema``."""
    return OpenApiResponse(ErrorSerializer, description=description)


class ThrottleFirst:
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # DRF's APIView.initial, with check_throttles moved to the front.
        self.format_kwarg = self.get_format_suffix(**kwargs)
        request.accepted_renderer, request.accepted_media_type = self.perform_content_negotiation(request)
        request.version, request.versioning_scheme = self.determine_version(request, *args, **kwargs)
        self.check_throttles(request)
        method = request.method.lower()
        if method not in self.http_method_names or not hasattr(self, method):
            raise exceptions.MethodNotAllowed(request.method)
        self.perform_authentication(request)
        self.check_permissions(request)

    def check_throttles(self, request: Request) -> None:
        # DRF's APIView.check_throttles, with every limit counted in one round trip to the cache.
        throttles = self.get_throttles()
        own = self.counted_keys(request)
        self.cached, self.counted = throttling.count_together(throttles, request, self, self.cache_keys(request), own)
        durations = [throttle.wait() for throttle in throttles if not throttle.allow_request(request, self)]
        if durations:
            for counted in self.counted:  # the view's own counters count only what its limits let through
                counted.give_back()
            self.throttled(request, max((d for d in durations if d is not None), default=None))

    def counted_keys(self, request: Request) -> list[tuple[str, int]]:
        """Counters of the view's own (``(key, window)``), which it judges later itself: counted with the rate
        limits' round trip into ``self.counted`` (``ratelimit.Counted``, in order), and given back when the
        request's limits refuse it."""
        return []

    def cache_keys(self, request: Request) -> list[str]:
        """Cache keys the view will read: fetched (raw) with the rate limits' round trip into ``self.cached``,
        one value (or None) per key, or ``self.cached`` is None (no Redis, or the cache failed)."""
        return []


class APIView(ThrottleFirst, views.APIView):
    pass


class ListAPIView(ThrottleFirst, generics.ListAPIView):
    pass
