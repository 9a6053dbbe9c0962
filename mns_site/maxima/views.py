import hmac
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from mns_site.errors import DomainError, json_error
from mns_site.maxima import services
from mns_site.middleware import limit_for


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, secret: str) -> JsonResponse:
    """The node's webhook: check, store, answer. No other work here — the node waits for this answer before
    it posts any later event, and it neither retries nor queues."""
    if not hmac.compare_digest(secret.encode(), settings.MAXIMA_HOOK_SECRET.encode()):
        return json_error("not_found", "Nothing is here.", 404)
    if _over_rate():
        return json_error("throttled", "Too many webhook posts; slow down.", 429)
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
    row, created = services.inbound_store(event=event)
    return JsonResponse({"stored": created, "id": row.id, "status": row.status})


def _over_rate() -> bool:
    """A fixed one-minute window shared by all web processes (through the cache)."""
    key = f"maxima-hook-rate:{int(time.time() // 60)}"
    try:
        count = cache.incr(key)  # one round trip in the common case
    except ValueError:  # the first post of this minute
        count = 1 if cache.add(key, 1, timeout=120) else cache.incr(key)
    return count > settings.MNS_HOOK_RATE_PER_MINUTE
