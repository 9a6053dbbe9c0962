"""Maxima message handlers: the Maxima counterpart of ``views.py``, registered in ``apps.py``.

A handler gets an ``InboundMessage`` whose ``sender`` the Minima node verified, calls one service and is
idempotent (an event may be processed again after a crash); raising marks the event failed.
"""

from typing import Any

from core.errors import DomainError
from maxima.routing import InboundMessage
from mns_client.protocol.codecs import canonical_public_key
from mns_client.protocol.statements import statement_message
from registry import selectors, services


def statement_received(message: InboundMessage, body: dict[str, Any]) -> None:
    """``{"v":1,"type":"statement","statement":{…},"signature":"0x…"}`` from the owner's own node.

    Accepted only when Maxima's verified sender is the statement's owner; then it is exactly the REST path's
    ``statement_apply``. A statement already in the history (a redelivered message) is not applied again.
    """
    signed = statement_message(body)
    if canonical_public_key(message.sender) != signed.statement.owner:
        raise DomainError("statement_wrong_sender", "A statement over Maxima must come from its owner's node.")
    if selectors.statement_is_recorded(signed=signed):
        return
    services.statement_apply(signed=signed, source="maxima")
