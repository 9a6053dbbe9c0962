"""The node's NOTIFYCOIN (``coinnotify``) and NEWCOIN webhook for coins at the MNS address: check, keep, answer.
The node waits for this answer before it posts any later event, so the node's ``verify`` runs in a task."""

import hmac
import json
import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core import ratelimit
from core.errors import json_error
from core.middleware import limit_for
from core.queue import enqueue_on_commit
from mns_client.protocol.chainnames import is_mns_coin
from onchain import services, tasks

logger = logging.getLogger(__name__)
EVENTS = {"NOTIFYCOIN", "NEWCOIN"}


@csrf_exempt
@require_POST
def coin_hook(request: HttpRequest, secret: str) -> JsonResponse:
    if not hmac.compare_digest(secret.encode(), settings.MAXIMA_HOOK_SECRET.encode()):
        return json_error("not_found", "Nothing is here.", 404)
    limit = limit_for(request.path)
    body = request.read(limit + 1)
    if len(body) > limit:
        return json_error("request_too_large", f"The body may be at most {limit} bytes.", 413)
    counted = ratelimit.hit("onchain-hook", window=60)
    if counted is not None and counted[0] > settings.MNS_CHAIN_HOOK_PER_MINUTE:
        response = json_error("throttled", "Too many coin events; slow down.", 429)
        response["Retry-After"] = str(int(counted[1]) + 1)
        return response
    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return json_error("hook_malformed", "The body is not UTF-8 JSON.", 400)
    coin = (event.get("data") or {}).get("coin") if isinstance(event, dict) else None
    if not isinstance(event, dict) or event.get("event") not in EVENTS or not is_mns_coin(coin):
        return JsonResponse({"stored": False, "reason": "not a coin at the MNS address"})
    row = services.coin_seen(coin=coin)
    if row is None:
        return JsonResponse({"stored": False, "reason": "not an MNS record"})
    if row.valid is None:
        enqueue_on_commit(tasks.coin_check, row.id)
    return JsonResponse({"stored": True, "name": row.name})
