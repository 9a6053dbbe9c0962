"""Shortcuts for the handshake tests: issue a challenge, answer it as a node would, and snapshot what is stored."""

import itertools
import json
from dataclasses import dataclass
from typing import Any

from django.test import Client

from handshake import services
from handshake.models import Answer, Challenge, Session
from maxima.models import OutboundMessage
from maxima.routing import InboundMessage
from mns_client.protocol.handshake import Answer as AnswerMessage
from mns_client.protocol.handshake import new_verifier, verifier_hash
from registry.models import NameRecord
from registry.tests.support import Owner

__all__ = ["Client", "Started", "answer", "body", "error", "receive", "snapshot", "start", "statements"]

_msgids = itertools.count(1)


@dataclass(frozen=True)
class Started:
    """A challenge as the client holds it: the id, the code to show, and the verifier it keeps to itself."""

    id: str
    code: str
    verifier: str


def start(name: str = "alice", purpose: str = "read") -> Started:
    verifier = new_verifier()
    issued = services.challenge_issue(name=name, purpose=purpose, verifier_hash=verifier_hash(verifier))
    return Started(id=issued.challenge.id, code=issued.code, verifier=verifier)


def answer(
    sender: Owner | str,
    challenge: str,
    code: str,
    *,
    msgid: str | None = None,
    reply_to: str | None = None,
) -> InboundMessage:
    """The message the sender's node delivers: ``sender`` is the key Maxima verified."""
    data = AnswerMessage(challenge=challenge, code=code, reply_to=reply_to).to_bytes()
    return InboundMessage(
        event_id=0,
        msgid=msgid or "0x" + f"{next(_msgids):064X}",
        sender=sender.key if isinstance(sender, Owner) else sender,
        application="mns",
        data=data,
        timemilli=0,
    )


def receive(message: InboundMessage) -> str:
    """What the inbound task does with it (minus the routing): the verdict."""
    return services.answer_receive(message=message, body=json.loads(message.data))


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Everything the handshake can change, to show that a refusal changed nothing."""
    return {
        "challenges": list(Challenge.objects.order_by("id").values()),
        "answers": list(Answer.objects.order_by("id").values()),
        "sessions": list(Session.objects.order_by("id").values()),
        "outbox": list(OutboundMessage.objects.order_by("id").values("idempotency_key", "destination", "status")),
        "records": list(NameRecord.objects.order_by("id").values()),
    }


def body(response: Any) -> Any:
    return json.loads(response.content)


def error(response: Any) -> tuple[int, str]:
    return response.status_code, body(response)["error"]


_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT", "PREPARE")


def statements(queries: Any) -> list[str]:
    """The statements a ``CaptureQueriesContext`` saw, without the transactions' control and the preparing of a
    statement kept prepared (once per connection): what the code under test asked the database to do."""
    return [query["sql"] for query in queries if not query["sql"].startswith(_CONTROL)]
