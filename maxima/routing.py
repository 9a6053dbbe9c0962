"""Where an incoming Maxima message goes: a handler per ``application``, and for MNS's own ``mns`` and
``mns-sync`` applications a handler per message ``type``.

Apps register their handlers in ``AppConfig.ready()``; the inbound task looks them up. A handler receives an
``InboundMessage`` whose ``sender`` was verified by the Minima node (the ``from`` of a Maxima message is checked
against its signature), must be idempotent (an event may be processed more than once after a crash), and raises
an exception to mark the event failed.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from mns_client.protocol import fields
from mns_client.protocol.errors import MNSError
from mns_client.protocol.mailbox import reply_to_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundMessage:
    event_id: int
    msgid: str
    sender: str  # the sender's Maxima identity key, "0x" + upper-case hex of the DER
    application: str
    data: bytes
    timemilli: int
    # When the webhook stored the event (its row's ``received_at``), as the inbound task read it with the event;
    # None for a message made elsewhere (a test, a replay): a handler that needs it reads the row.
    received_at: datetime | None = None


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


# A run of messages of one type handled at once: ``handler(items)`` with (message, body) pairs in order, returning
# for each None (handled) or the exception that handling it alone would have raised (``Ignored``, an ``MNSError``).
BatchHandler = Callable[[list[tuple[InboundMessage, dict[str, Any]]]], list[Exception | None]]
_batch_types: dict[tuple[str, str], BatchHandler] = {}


def register_batch(application: str, message_type: str, handler: BatchHandler) -> None:
    """Also handle consecutive ``message_type`` messages of an inbound batch together (``maxima.services``
    ``inbound_process_batch``), in the batch's transaction: for a type whose many messages are cheaper stored at
    once. The single handler (``register_type``) stays the one for a lone message and for a run that failed."""
    if (application, message_type) not in _types:
        raise ValueError(f"register the single handler of {application} {message_type!r} first")
    _batch_types[(application, message_type)] = handler


def batch_handler_of(message: InboundMessage) -> tuple[BatchHandler, dict[str, Any]] | None:
    """The batch handler of ``message``'s type and its decoded body, or None (none, or not readable: dispatched
    alone, which says why)."""
    if message.application not in PROTOCOL_APPLICATIONS:
        return None
    try:
        body = decode_protocol_message(message.data)
    except Ignored:
        return None
    handler = _batch_types.get((message.application, body["type"]))
    return None if handler is None else (handler, body)


def dispatch_batch(handler: BatchHandler, items: list[tuple[InboundMessage, dict[str, Any]]]) -> list[Exception | None]:
    """``dispatch`` of a run of messages that share ``handler``: each one's outcome (None: handled)."""
    outcomes = handler(items)
    for (message, body), outcome in zip(items, outcomes, strict=True):
        if outcome is None and message.application == "mns":
            _reply_address_seen(message, body)
    return outcomes


def dispatch(message: InboundMessage) -> None:
    if message.application in PROTOCOL_APPLICATIONS:
        body = decode_protocol_message(message.data)
        handler = _types.get((message.application, body["type"]))
        if handler is None:
            raise Ignored(f"no handler for {message.application} type {body['type']!r}")
        handler(message, body)
        if message.application == "mns":
            _reply_address_seen(message, body)
        return
    app_handler = _applications.get(message.application)
    if app_handler is None:
        raise Ignored(f"no handler for application {message.application!r}")
    app_handler(message)


# Where the senders of ``mns`` messages say they are now: one callback, registered by the app that keeps owners'
# addresses (mailboxes), told the verified sender key and the message's valid ``reply_to`` after its handler ran.
ReplyAddressCallback = Callable[[str, str], None]
_reply_address_callbacks: list[ReplyAddressCallback] = []


def on_reply_address(callback: ReplyAddressCallback) -> None:
    """Call ``callback(sender_key, reply_to)`` for every ``mns`` message handled that names a valid ``reply_to``.

    ``sender_key`` is the key Maxima verified, so the address is the sender's own word about where it is: an owner
    whose node moved (a new port, another network, behind a host now) is answered there from then on. It runs in the
    message's transaction, in a savepoint: if it fails, its writes roll back and the message stays handled.
    """
    if callback not in _reply_address_callbacks:
        _reply_address_callbacks.append(callback)


def _reply_address_seen(message: InboundMessage, body: dict[str, Any]) -> None:
    address = reply_to_of(body)
    if address is None:
        return
    for callback in _reply_address_callbacks:
        try:
            with transaction.atomic():
                callback(message.sender, address)
        except Exception:  # keeping an address fresh must not undo the message's own handling
            logger.exception("the reply-address callback failed on inbound event %s", message.event_id)


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
