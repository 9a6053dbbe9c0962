"""The project's URLs plus a few views that fail on purpose, to see every error come out in the one shape."""

from django.urls import path
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import APIView
from core.errors import DomainError
from mns_site.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


class TokenOnly(BaseAuthentication):
    def authenticate(self, request: Request) -> None:
        return None

    def authenticate_header(self, request: Request) -> str:
        return "MNS-Token"


class Echo(serializers.Serializer):
    name = serializers.CharField(max_length=8)
    count = serializers.IntegerField(min_value=1)


class EchoView(APIView):
    def post(self, request: Request) -> Response:
        data = Echo(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(data.validated_data)


class SecretView(APIView):
    authentication_classes = [TokenOnly]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({})


class RefuseView(APIView):
    def get(self, request: Request) -> Response:
        raise DomainError("name_taken", "That name belongs to someone else.", status=409)


class ForbiddenView(APIView):
    def get(self, request: Request) -> Response:
        from rest_framework.exceptions import PermissionDenied

        raise PermissionDenied("Staff only.")


class CrashView(APIView):
    def get(self, request: Request) -> Response:
        raise RuntimeError("a bug")


class LimitedView(APIView):
    throttle_scope = "write"

    def get(self, request: Request) -> Response:
        return Response({})


def plain_crash(request: object) -> None:
    raise RuntimeError("a bug outside DRF")


urlpatterns = [
    *urlpatterns,
    path("test/echo", EchoView.as_view()),
    path("test/secret", SecretView.as_view()),
    path("test/refuse", RefuseView.as_view()),
    path("test/forbidden", ForbiddenView.as_view()),
    path("test/crash", CrashView.as_view()),
    path("test/plain-crash", plain_crash),
    path("test/limited", LimitedView.as_view()),
]
