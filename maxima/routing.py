"""Where an incoming Maxima message goes: a handler per ``application``, and for MNS's own ``mns`` and
``mns-sync`` applications a handler per message ``type``.

Apps register their handlers in ``AppConfig.ready()``; the inbound task looks them up. A handler receives an
``InboundMessage`` whose ``sender`` was verified by the Minima node (the ``from`` of a Maxima message is checked
against its signature), must be idempotent (an event may be processed more than once after a crash), and raises
an exception to mark the event failed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mns_client.protocol import fields
from mns_client.protocol.errors import MNSError


@dataclass(frozen=True)
class InboundMessage:
    event_id: int
    msgid: str
    sender: str  # the sender's Maxima identity key, "0x" + upper-case hex of the DER
    application: str
    data: bytes
    timemilli: int


class Ignored(MNSError):
    """The message is well-formed Maxima but not for us (no handler, unknown type): recorded, not retried."""

    code = "ignored"


ApplicationHandler = Callable[[InboundMessage], None]
TypeHandler = Callable[[InboundMessage, dict[str, Any]], None]

_applications: dict[str, ApplicationHandler] = {}
_types: dict[tuple[str, str], TypeHandler] = {}
PROTOCOL_APPLICATIONS = ("mns", "mns-sync")
MAX_JSON_BYTES = 512 * 1024


def register_application(application: str, handler: ApplicationHandler) -> None:
    if application in PROTOCOL_APPLICATIONS:
        raise ValueError(f"{application} is dispatched by type: use register_type")
    _applications[application] = handler


def register_type(application: str, message_type: str, handler: TypeHandler) -> None:
    """Handle ``{"v": 1, "type": message_type, ...}`` messages of one MNS application."""
    if application not in PROTOCOL_APPLICATIONS:
        raise ValueError(f"{application} is not an MNS protocol application")
    _types[(application, message_type)] = handler


def dispatch(message: InboundMessage) -> None:
    if message.application in PROTOCOL_APPLICATIONS:
        body = decode_protocol_message(message.data)
        handler = _types.get((message.application, body["type"]))
        if handler is None:
            raise Ignored(f"no handler for {message.application} type {body['type']!r}")
        handler(message, body)
        return
    app_handler = _applications.get(message.application)
    if app_handler is None:
        raise Ignored(f"no handler for application {message.application!r}")
    app_handler(message)


def decode_protocol_message(data: bytes) -> dict[str, Any]:
    """The JSON object of an ``mns``/``mns-sync`` message; ``Ignored`` when it is not one we can read."""
    if len(data) > MAX_JSON_BYTES:
        raise Ignored("message too large")
    body = fields.loads(data, invalid=_ignored, what="data")  # a key written twice is not one spelling
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise Ignored('data is not a JSON object with a "type"')
    if not fields.is_integer(body.get("v")) or body["v"] != fields.VERSION:  # true is not 1
        raise Ignored(f"unsupported protocol version {str(body.get('v'))[:20]!r}")
    return body


def _ignored(field: str, problem: str) -> Ignored:
    return Ignored(f"{field}: {problem}")
