from django.conf import settings
from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from mns_site import health
from mns_site.api import APIView
from mns_site.errors import error_body, json_error


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
        if "peers" in results:
            body["peers"] = health.peers_report()
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
            "maxima": gateway_identity(),
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
            "entry_points": entry_points_config(),
        }
        return Response(body, headers={"Cache-Control": "public, max-age=300"})


def gateway_identity() -> dict:
    """The gateway's own Maxima identity and address, as its node last reported them (empty until it has)."""
    from mns_site.maxima import selectors

    return {"publickey": selectors.gateway_identity_key(), "address": selectors.gateway_address()}


def entry_points_config() -> dict | None:
    """Where the on-chain entry-point list is and whose it is (script, address, tokenid, owner), once set up."""
    from entrypoints import selectors

    return selectors.chain_config()


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return json_error("csrf_failed", "The request was refused: its CSRF check failed.", 403)
