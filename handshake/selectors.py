"""Reads of the handshake: challenges by their (secret, random) id, and what issuing one reads first."""

from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from core.errors import DomainError
from core.rows import columns, loader, no_key_lock
from handshake.models import Challenge
from maxima.models import InboundEvent, NodeState
from maxima.routing import InboundMessage
from maxima.selectors import ADDRESS_COLUMNS, address_of, gateway_address
from mns_client.protocol.handshake import CHALLENGE_ID_RE
from registry.models import NameRecord
from registry.selectors import HOLDER_COLUMNS

# What a challenge is read with: all of it, and the columns of its name's record that say who holds it (the handshake
# uses its name for the answers and the log, its id for the session; the others are deferred, read if ever touched).
_CHALLENGE = columns(Challenge)
_RECORD = HOLDER_COLUMNS
_CHALLENGE_READ = (
    f"SELECT {', '.join(f'c.{name}' for name in _CHALLENGE)}, {', '.join(f'r.{name}' for name in _RECORD)} "  # noqa: S608
    f"FROM {Challenge._meta.db_table} c JOIN {NameRecord._meta.db_table} r ON r.id = c.record_id WHERE c.id = %s"
)


def challenge_find(*, challenge_id: str) -> Challenge | None:
    """The challenge with this id and its record, or ``None``: one statement kept prepared (``execute_prepared``),
    since every poll of a handshake, its answer and its pickup read it (the ORM's query was compiled each time)."""
    # Ids come from URLs: one that cannot be an id (a NUL byte, which PostgreSQL refuses outright) finds nothing.
    if not isinstance(challenge_id, str) or not CHALLENGE_ID_RE.fullmatch(challenge_id):
        return None
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        db.execute_prepared(cursor, _CHALLENGE_READ, [challenge_id])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(_CHALLENGE)
    challenge = loader(db, Challenge, _CHALLENGE)(db, row[:split])
    challenge.record = loader(db, NameRecord, _RECORD)(db, row[split:])
    return challenge


_ISSUE_READ = (
    f"SELECT {', '.join(f'r.{name}' for name in _RECORD)}, {', '.join(f's.{name}' for name in ADDRESS_COLUMNS)} "  # noqa: S608
    f"FROM {NameRecord._meta.db_table} r LEFT JOIN {NodeState._meta.db_table} s ON s.id = 1 WHERE r.name = %s"
)


def issue_read(*, name: str) -> tuple[NameRecord | None, str | None]:
    """The record of the normalised ``name``, locked as ``registry.selectors.name_lock`` locks it (call it in a
    transaction), and the gateway's address (``maxima.selectors.gateway_address``): what issuing a challenge needs
    before it counts, in one statement kept prepared instead of two compiled by the ORM (issue #18)."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        db.execute_prepared(cursor, f"{_ISSUE_READ}{no_key_lock(db, of='r')}", [name])
        row = cursor.fetchone()
    if row is None:
        return None, gateway_address()
    split = len(_RECORD)
    record = loader(db, NameRecord, _RECORD)(db, row[:split])
    state = loader(db, NodeState, ADDRESS_COLUMNS)(db, row[split:]) if row[split] is not None else None
    return record, address_of(state)


def challenge_known(*, challenge_id: str) -> Challenge:
    """The challenge with this id; ``handshake_not_found`` (404) when there is none (or it was cleaned up)."""
    challenge = challenge_find(challenge_id=challenge_id)
    if challenge is None:
        raise DomainError("handshake_not_found", "No handshake has this id (or it expired long ago).", status=404)
    return challenge


def answer_arrived_at(*, message: InboundMessage) -> datetime:
    """When an answer reached the gateway: when the webhook stored it, not when a worker got round to it.

    A queue backlog must not make an answer that came in time late; the sender's own ``timemilli`` is not used,
    since the sender chooses it. The inbound task hands the time over with the message (read with the event, no
    query); a message without it (made by hand) reads its event's row.
    """
    now = timezone.now()
    if message.received_at is not None:
        return min(message.received_at, now)
    stored = (
        InboundEvent.objects.filter(id=message.event_id, msgid=message.msgid)
        .values_list("received_at", flat=True)
        .first()
    )
    return min(stored, now) if stored is not None else now
