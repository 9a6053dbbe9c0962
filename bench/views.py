"""Baseline views for the benchmarks, mounted only when MNS_BENCH=true: what the hot paths are measured against."""

import contextlib
import json

from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from mns_client.protocol.codecs import from_hex


def bare_json(request: HttpRequest) -> JsonResponse:
    """The cheapest Django answer: no database, a small JSON body."""
    return JsonResponse({"ok": True, "name": "alice"})


# --- Mailboxes: a delivery stored per request, against one durable INSERT of the same bytes ----------------------
BENCH_NAME = "bench"


@csrf_exempt
@require_POST
def bare_insert(request: HttpRequest) -> JsonResponse:
    """The baseline of the delivery scenarios: read the same JSON body, decode the same ciphertext, and store it
    with one INSERT in its own (durable) commit. No validation, no quota, no dedup, no receipt."""
    body = json.loads(request.body)
    _bench_ready()
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_blob (body) VALUES (%s)", [from_hex(body["ciphertext"])])
    return JsonResponse({"stored": True}, status=201)


_ready: list[bool] = []


def _bench_ready() -> None:
    """Once per process: the ``bench_blob`` table (the bench's own, outside the migrations), and the ``bench``
    mailbox the delivery scenarios write to (this view is their baseline, so it is always served first)."""
    if _ready:
        return
    postgres = connection.vendor == "postgresql"
    key = "bigserial PRIMARY KEY" if postgres else "integer PRIMARY KEY AUTOINCREMENT"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS bench_blob (id {key}, body {'bytea' if postgres else 'blob'} NOT NULL)"
        )
    with contextlib.suppress(IntegrityError):  # another gunicorn worker made it at the same moment
        _bench_mailbox()
    _ready.append(True)


def _bench_mailbox(name: str = BENCH_NAME) -> None:
    from django.utils import timezone

    from mailboxes.models import Mailbox
    from mns_client.protocol.codecs import public_key_hex, to_hex
    from mns_client.protocol.crypto import box_keypair, generate_maxima_keypair
    from registry.models import NameRecord

    with transaction.atomic():
        record = NameRecord.objects.filter(name=name).first()
        if record is None:
            record = NameRecord.objects.create(
                name=name,
                skeleton=name,
                status="active",
                owner_key=public_key_hex(generate_maxima_keypair()[1]),
                box_key=to_hex(box_keypair()[1]),
                status_changed_at=timezone.now(),
            )
        Mailbox.objects.get_or_create(
            record=record, defaults={"owner_key": record.owner_key, "max_messages": 2**31 - 1, "max_bytes": 2**60}
        )


@csrf_exempt
@require_POST
def maxima_hook_processed(request: HttpRequest, secret: str) -> HttpResponse:
    """The real webhook view, then what the worker does with the event it stored (``inbound_process``: the
    ``deliver`` handler stores the message and queues the receipt), back to back in one request, so that a
    delivery stored over Maxima is measured end to end, served the way the REST path and the baseline are."""
    from maxima import services
    from maxima.views import webhook

    response = webhook(request, secret)
    event_id = json.loads(response.content).get("id") if response.status_code == 200 else None
    if event_id is None:
        return response
    status = services.inbound_process(event_id=event_id, claim="bench")
    return JsonResponse({"id": event_id, "status": status}, status=200 if status == "done" else 500)
