"""``GET /api/v1/entry-points``: the newest confirmed entry-point list, as this gateway read it from the chain."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import THROTTLES, APIView, error_response
from core.errors import DomainError
from entrypoints import selectors
from entrypoints.serializers import EntryPointsSerializer, entry_points_data


class EntryPointsView(APIView):
    """The newest confirmed list with its coin, block and seq. Clients should read the chain through their own
    node first (docs/protocol.md, "Entry points") and ask here only when it has none."""

    throttle_classes = THROTTLES
    throttle_scope = "lookup"

    @extend_schema(
        operation_id="entry_points_retrieve",
        responses={
            200: EntryPointsSerializer,
            404: error_response(
                "not_published: no list is confirmed yet; not_configured: this gateway has no bulletin "
                "set up (entrypoints_setup).",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        config = selectors.chain_config()
        if config is None:
            raise DomainError(
                "not_configured", "This gateway has not set up the entry-point list (entrypoints_setup).", status=404
            )
        publication = selectors.current()
        if publication is None:
            raise DomainError("not_published", "No entry-point list is confirmed on chain yet.", status=404)
        return Response(entry_points_data(publication, config), headers={"Cache-Control": "public, max-age=60"})
