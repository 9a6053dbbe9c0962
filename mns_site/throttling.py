from typing import TYPE_CHECKING

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

if TYPE_CHECKING:
    from rest_framework.views import APIView


class PerIPThrottle(SimpleRateThrottle):
    """The default limit for every API endpoint: requests per client address (MNS_THROTTLE_PER_IP).

    Endpoints that need a tighter limit add DRF's ``ScopedRateThrottle`` with a ``throttle_scope`` (the scopes and
    their rates are in settings); it keys on the client address too, since API clients are not Django users.
    """

    scope = "ip"

    def get_cache_key(self, request: Request, view: "APIView") -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
