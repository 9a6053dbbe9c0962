"""Relaying: a gateway passes the owner-signed ops it verified on to its other peers, so the network converges when
the membership graph is connected, not only when it is complete (``docs/protocol.md``, "Relaying").

A relay is an op of the relaying gateway's own log whose payload names the op's ``origin`` (the gateway whose log it
first appeared in) and its ``hops``. So it travels like any op of that log (in order, at most once per position,
within the relaying peer's rate limit) and every check of the kind applies again at each gateway. Only kinds
registered with ``relay=True`` are relayed (owner-signed statements); mailbox contents, which are trusted by
Maxima's ``from`` of their origin, never are. Loops and duplicates end where an op changes nothing: only an op that
was ``applied`` here (not one already held) is relayed on, never back to its origin or to the peer it came from
alone, and at most ``MNS_FEDERATION_RELAY_HOPS`` times in a row.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings

from federation import selectors
from federation.services.oplog import op_append
from federation.services.peers import self_key
from mns_client.protocol import sync

logger = logging.getLogger(__name__)

_relayed_by: ContextVar[str | None] = ContextVar("federation_relayed_by", default=None)


def relayed_by() -> str | None:
    """While a relayed op is applied: the identity key of the peer that relayed it (else ``None``)."""
    return _relayed_by.get()


@contextmanager
def relaying(peer_key: str | None) -> Iterator[None]:
    """Around the apply of a relayed op, the peer that relayed it (``None``: an op of the sender's own)."""
    token = _relayed_by.set(peer_key)
    try:
        yield
    finally:
        _relayed_by.reset(token)


def relay_onward(*, kind: str, payload: dict[str, Any], origin: str, hops: int, sender: str) -> bool:
    """After this gateway applied a relayable op (in the apply's transaction): log it again, naming its
    ``origin``, for the peers other than the origin and the ``sender``; returns whether it was logged.

    ``hops`` is the count the relay will carry (1 for an op of the sender's own log). Nothing is logged past
    ``MNS_FEDERATION_RELAY_HOPS``, for this gateway's own op coming back, or when no other active peer would get it.
    """
    me = self_key()
    if hops > settings.MNS_FEDERATION_RELAY_HOPS or origin == me:
        return False
    if not selectors.peers_active().exclude(identity_key__in=[origin, sender]).exists():
        return False
    op_append(kind=kind, payload=sync.relayed(payload, origin=origin, hops=hops))
    return True
