"""The gateway's own public pages: health and policy. Higher apps add their parts and fields by registering
(``core.health.register``, ``core.wellknown.register``); this module imports none of them."""

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core import health, wellknown
from core.api import APIView
from core.errors import error_body


class CheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    ms = serializers.FloatField(help_text="How long the check took.")
    detail = serializers.CharField(required=False)


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(["ok", "degraded", "down"])
    version = serializers.CharField()
    checks = serializers.DictField(child=CheckSerializer())
    peers = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="Each peer: last heard, lag (ops, seconds), paused."
    )
    error = serializers.CharField(required=False, help_text="Only when down: unhealthy.")
    detail = serializers.CharField(required=False, help_text="Only when down: which parts failed.")


class HealthView(APIView):
    """Whether this gateway's parts answer: 200 when it can serve, 503 naming the part that failed."""

    throttle_classes: list = []  # probed every few seconds by load balancers and monitors

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer})
    def get(self, request: Request) -> Response:
        results = health.run_checks_cached()
        failed = [name for name, result in results.items() if not result.ok]
        down = [name for name in failed if results[name].critical]
        body = {
            "status": health.status_of(results),
            "version": settings.MNS_VERSION,
            "checks": {name: result.as_dict() for name, result in results.items()},
        }
        body.update(health.reports(results))
        if down:
            body = {**error_body("unhealthy", "Not working: " + ", ".join(down) + "."), **body}
        return Response(body, status=503 if down else 200, headers={"Cache-Control": "no-store"})


class WellKnownView(APIView):
    """The gateway's public policy, for clients choosing where to register and what they may send."""

    @extend_schema(responses={200: inline_serializer("GatewayPolicy", {"software": serializers.CharField()})})
    def get(self, request: Request) -> Response:
        rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
        body = {
            "software": "mns-gateway",
            "version": settings.MNS_VERSION,
            "name": settings.MNS_GATEWAY_NAME,
            "api": settings.MNS_PUBLIC_URL.rstrip("/") + "/api/v1/",
            "limits": {
                "max_message_bytes": settings.MNS_MAX_MESSAGE_BYTES,
                "max_request_bytes": settings.MNS_MAX_REQUEST_BYTES,
                "rate_per_ip": rates["ip"],
                # Per client address, by kind of endpoint ("ip" counts every API request; DRF rate strings).
                "rates": dict(rates),
                # Maxima messages reaching the webhook, per sender key and in all, per minute.
                "maxima_per_sender_per_minute": settings.MNS_HOOK_RATE_PER_SENDER_PER_MINUTE,
                "maxima_per_minute": settings.MNS_HOOK_RATE_PER_MINUTE,
            },
            "retention_days": settings.MNS_RETENTION_DAYS,
            "rest_submission": settings.MNS_REST_SUBMISSION,
            "schemes": ["nacl-sealedbox-v1", "maxima-rsa-v1"],
            **wellknown.fields(),
        }
        return Response(body, headers={"Cache-Control": "public, max-age=300"})
