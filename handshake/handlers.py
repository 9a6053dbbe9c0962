"""Maxima message handlers: the Maxima counterpart of ``views.py``, registered in ``apps.py``."""

from typing import Any

from handshake import services
from maxima.routing import InboundMessage


def answer_received(message: InboundMessage, body: dict[str, Any]) -> None:
    """``{"v":1,"type":"handshake","challenge":…,"code":…,"reply_to":…}`` from the owner's node.

    The verdict is recorded and sent back; a refusal is an outcome, not an error, so it does not raise (raising
    would roll the attempt count back). ``Ignored`` marks what is not an answer at all.
    """
    services.answer_receive(message=message, body=body)
