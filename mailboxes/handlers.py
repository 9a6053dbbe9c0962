"""Maxima message handlers and the outbox callback: the Maxima counterpart of ``views.py``, registered in
``apps.py``. Each calls one service and is idempotent (an event may be processed again after a crash)."""

from typing import Any

from mailboxes import services
from maxima.models import OutboundMessage
from maxima.routing import InboundMessage


def deliver_received(message: InboundMessage, body: dict[str, Any]) -> None:
    """``{"v":1,"type":"deliver",…}`` from any sender: store or refuse it, and queue the receipt."""
    services.deliver_received(message=message, body=body)


def deliveries_received(items: list[tuple[InboundMessage, dict[str, Any]]]) -> list[Exception | None]:
    """A run of ``deliver`` messages of one inbound batch, stored together (``maxima.routing.register_batch``)."""
    return services.deliveries_received(items)


def forward_sent(outbound: OutboundMessage) -> None:
    """The outbox sent a ``forward:<message id>`` message (``delivered:true``)."""
    services.message_forwarded(outbound_id=outbound.id)
