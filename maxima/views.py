import hashlib
import hmac
import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core import ratelimit
from core.errors import DomainError, json_error
from core.middleware import limit_for
from maxima import services

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, secret: str) -> JsonResponse:
    """The node's webhook: check, store, answer. No other work here — the node waits for this answer before
    it posts any later event, and it neither retries nor queues."""
    if not hmac.compare_digest(secret.encode(), settings.MAXIMA_HOOK_SECRET.encode()):
        return json_error("not_found", "Nothing is here.", 404)
    limit = limit_for(request.path)
    body = request.read(limit + 1)  # the real node says x-www-form-urlencoded but sends JSON: read the raw body
    if len(body) > limit:
        return json_error("request_too_large", f"The body may be at most {limit} bytes.", 413)
    try:
        event = services.hook_parse(body)
    except DomainError as exc:
        return json_error(exc.code, exc.detail, exc.status)
    if event is None:
        return JsonResponse({"stored": False, "reason": "not a Maxima message"})
    if _over_rate(event.sender):
        response = json_error("throttled", "Too many Maxima messages from this sender; slow down.", 429)
        response["Retry-After"] = "60"
        return response
    try:
        row, created = services.inbound_store(event=event, timeout_ms=settings.MNS_HOOK_DB_TIMEOUT_MS)
    except (OperationalError, InterfaceError) as exc:  # down, restarting, or slower than the node may wait
        logger.warning("the hook could not store a Maxima message: %s", type(exc).__name__)
        response = json_error("unavailable", "The gateway cannot store messages right now; try again.", 503)
        response["Retry-After"] = "5"
        return response
    return JsonResponse({"stored": created, "id": row.id, "status": row.status})


def _over_rate(sender: str) -> bool:
    """Per sender key (one noisy node must not silence the others), under a global ceiling; shared by every web
    process through the cache, and never in the way when the cache is down. One round trip: the global
    ceiling is counted only when the sender's own limit is not exceeded."""
    sender_id = hashlib.sha256(sender.encode()).hexdigest()[:32]
    return ratelimit.over_any(
        [
            (f"maxima-hook:{sender_id}", 60, settings.MNS_HOOK_RATE_PER_SENDER_PER_MINUTE),
            ("maxima-hook", 60, settings.MNS_HOOK_RATE_PER_MINUTE),
        ]
    )
