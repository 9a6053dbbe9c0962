"""Maxima message handlers of the registration flow, registered in ``apps.py``."""

from typing import Any

from maxima.routing import InboundMessage
from registration import services


def register_received(message: InboundMessage, body: dict[str, Any]) -> None:
    """``{"v":1,"type":"register",…}`` from the owner's node: hold the name, answer with the challenge."""
    services.register_received(message=message, body=body)
