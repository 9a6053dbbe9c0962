"""OpenAPI generation: every operation documents the one error shape as its default response."""

from drf_spectacular.openapi import AutoSchema as _AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="A stable machine-readable code, such as name_taken or throttled.")
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="For invalid input: each bad field with its messages.",
    )

    class Meta:
        ref_name = "Error"


class AutoSchema(_AutoSchema):
    def _get_response_bodies(self, direction: str = "response") -> dict:
        responses = super()._get_response_bodies(direction)
        error = self._get_response_for_code(OpenApiResponse(ErrorSerializer, "An error."), "default")
        responses.setdefault("default", error)
        return responses
