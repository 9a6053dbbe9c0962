"""A stand-in for the endpoints that will take sessions (the Mailboxes app's), to test the scope check."""

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from handshake.authentication import HasSessionScope, SessionTokenAuthentication
from mns_site.urls import urlpatterns as site_urlpatterns


class ReadView(APIView):
    authentication_classes = [SessionTokenAuthentication]
    permission_classes = [HasSessionScope]
    required_scopes = {"read"}

    def get(self, request: Request, name: str) -> Response:
        return Response({"name": request.auth.record.name, "scope": request.auth.purpose})


class RotateView(ReadView):
    required_scopes = {"rotate"}


class MisconfiguredView(ReadView):
    required_scopes: set[str] = set()


urlpatterns = [
    *site_urlpatterns,
    path("probe/<str:name>/read", ReadView.as_view()),
    path("probe/<str:name>/rotate", RotateView.as_view()),
    path("probe/<str:name>/misconfigured", MisconfiguredView.as_view()),
]
