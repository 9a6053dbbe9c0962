"""Reconciliation and snapshots over Maxima, for a peer without an HTTPS API (``docs/protocol.md``, "Over Maxima").

A question cannot hold a worker for the seconds a Maxima answer takes (a real node sends 60 KB in about half a
second, 245 KB in 8.5-10 s, and answers come back through the peer's outbox and worker). So the asker's
``MaximaTransport`` is a ``snapshots.Transport`` that answers a question from what the peer already told, and
otherwise sends it once as an ``ask`` (its id: a hash of the question and of the catch-up it belongs to, the
*session*) and raises ``snapshots.Unanswered``: the round stops there and keeps its place, and the ``told`` that
answers it starts the next round, which finds it answered and goes on to the next question. The round's logic is
the one of the HTTPS API; only the waiting differs.

The holder answers an ``ask`` from the same serving functions as its API (``snapshots.position``, ``roots_answer``,
``nodes_answer``, ``items_answer``), each answer bounded by ``MNS_FEDERATION_BATCH_BYTES`` (as many nodes or items as
fit; the asker asks the rest next), a mailbox's contents only to a peer that keeps it (the asker is the peer Maxima
verified as the message's sender, as for every ``mns-sync`` message), at most ``MNS_FEDERATION_ASKS_PER_MINUTE``
questions a peer a minute. A question it cannot answer is refused in its ``told`` (``error``, ``detail``) and
changes nothing.
"""

import hashlib
import logging
import secrets
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

from core import ratelimit
from core.errors import DomainError
from core.queue import enqueue_on_commit
from federation.models import Peer
from federation.services import snapshots
from federation.services.oplog import _answer_waiting
from federation.services.peers import _send, _short
from maxima.routing import Ignored, InboundMessage
from maxima.timing import MAXIMA_MAX_DATA_BYTES
from mns_client.protocol import sync
from mns_client.protocol.codecs import canonical_json
from mns_client.protocol.errors import MNSError

logger = logging.getLogger(__name__)

ASK_AGAIN_SECONDS = 120  # an ask not answered by then is sent again (lost, or its answer was): the next round does
ANSWER_SECONDS = snapshots.STATE_SECONDS  # an answer is kept this long for the round it resumes, at most
AHEAD = 8  # questions asked ahead of the round (``ask_ahead``): their answers, unread, are kept at most
HEADER_BYTES = 1024  # of a told's budget, for what is not nodes or items (its id, the set's name, next, served)


# --- The asking side ------------------------------------------------------------------------------------------
def session(peer: Peer) -> str:
    """The current catch-up with ``peer`` over Maxima: kept while its rounds keep their place, ended by the round
    that finishes (``snapshots.reconcile_with_peer``), so the next round asks its questions afresh."""
    key = snapshots.session_key(peer)
    current = cache.get(key) or secrets.token_hex(8)
    cache.set(key, current, timeout=snapshots.STATE_SECONDS)  # one round with the peer at a time: no race
    return current


def question_id(session_id: str, question: dict[str, Any]) -> str:
    """The id an ``ask`` carries: a hash of the question in its session (the same question in one catch-up is
    asked and answered once; the holder does not read it, it only sends it back)."""
    return hashlib.sha256(canonical_json({"session": session_id, **question})).hexdigest()[:32]


def _asked_key(peer: Peer, ask_id: str) -> str:
    return f"fed-asked:{peer.id}:{ask_id}"


def _told_key(peer: Peer, ask_id: str) -> str:
    return f"fed-told:{peer.id}:{ask_id}"


class MaximaTransport:
    """A peer's answers over Maxima, for ``snapshots.reconcile_with_peer``. An answer read is taken from the cache
    (the round records what it learnt in its state before it asks the next), but the position's, which every round
    of the catch-up reads first."""

    def __init__(self, peer: Peer, *, session_id: str | None = None) -> None:
        self.peer = peer
        self.session = session_id or session(peer)
        self.bytes_used = 0

    def _ask(self, question: dict[str, Any]) -> dict[str, Any]:
        ask_id = question_id(self.session, question)
        told_key = _told_key(self.peer, ask_id)
        told = cache.get(told_key)
        if isinstance(told, dict) and told.get("error") != "throttled":
            if question["q"] != "position":
                cache.delete(told_key)
            self.bytes_used += told.get("bytes", 0)
            if "error" in told:
                raise snapshots.TransportFailed(f"{question['q']}: {told['error']}: {told.get('detail', '')}"[:200])
            return told["answer"]
        if told is not None:  # throttled: asked again once ASK_AGAIN_SECONDS have passed
            cache.delete(told_key)
        self._send(ask_id, question)
        what = question["q"] + (f" of {question['set']}" if "set" in question else "")
        raise snapshots.Unanswered(what, ready=lambda: cache.get(told_key) is not None)

    def _send(self, ask_id: str, question: dict[str, Any]) -> None:
        """The ``ask``, unless it went less than ``ASK_AGAIN_SECONDS`` ago (a round woken by something else, the
        beat, finds its question still on its way)."""
        asked_key, now = _asked_key(self.peer, ask_id), time.time()
        asked_at = cache.get(asked_key)
        if isinstance(asked_at, float) and now - asked_at < ASK_AGAIN_SECONDS:
            return
        body = sync.message("ask", ask=ask_id, question=question)
        _send(self.peer, body, f"fed-ask:{_short(self.peer.identity_key)}:{ask_id}:{int(now * 1000)}")
        cache.set(asked_key, now, timeout=ANSWER_SECONDS)
        self.bytes_used += len(sync.encode(body))

    def ask_ahead(self, set_id: str, queries: list[dict[str, Any]]) -> None:
        """Ask now the first ``AHEAD`` of the items questions the round will ask next (the first chunks of the
        subtrees after the one it fetches), so that their answers travel while it waits for the current one, rather
        than one round trip after another. A question answered already or on its way is not asked again."""
        for query in queries[:AHEAD]:
            question = {"q": "items", "set": set_id, **query}
            ask_id = question_id(self.session, question)
            if cache.get(_told_key(self.peer, ask_id)) is None:
                self._send(ask_id, question)

    def position(self) -> dict[str, Any]:
        return self._ask({"q": "position"})

    def roots(self, set_ids: list[str]) -> dict[str, Any]:
        return self._ask({"q": "roots", "sets": set_ids}).get("roots", {})

    def nodes(self, set_id: str, prefixes: list[str]) -> dict[str, Any]:
        return self._ask({"q": "nodes", "set": set_id, "prefixes": prefixes}).get("nodes", {})

    def items(self, set_id: str, **query: Any) -> dict[str, Any]:
        return self._ask({"q": "items", "set": set_id, **query})


def told_received(*, peer: Peer, message: InboundMessage, body: dict[str, Any]) -> None:
    """A peer's answer to one of our questions: kept for the round it resumes, which is started after the commit.
    An answer to nothing asked (or asked more than ``ANSWER_SECONDS`` ago) is ignored."""
    ask_id = body["ask"]
    if cache.get(_asked_key(peer, ask_id)) is None:
        raise Ignored("a told that answers no question this gateway asked")
    told = {key: body[key] for key in ("answer", "error", "detail") if key in body}
    cache.set(_told_key(peer, ask_id), {**told, "bytes": len(message.data)}, timeout=ANSWER_SECONDS)
    if "error" in told:
        logger.warning("peer %s refused a question: %s %s", peer.name, told["error"], told.get("detail", ""))
    from federation import tasks  # the app's own tasks, which call back into these services

    enqueue_on_commit(tasks.reconcile_peer, peer.id)


# --- The serving side -----------------------------------------------------------------------------------------
def ask_received(*, peer: Peer, message: InboundMessage, body: dict[str, Any]) -> None:
    """Answer a peer's question with a ``told``: the answer, bounded by ``MNS_FEDERATION_BATCH_BYTES``, or a
    refusal (a bad question, a set it may not read, too many questions this minute). Nothing else is written.

    An answer to the same question still waiting in the outbox (a large one takes the node seconds) is not
    queued again: the asker asks again only after ``ASK_AGAIN_SECONDS``."""
    tag = f"{_short(peer.identity_key)}:{body['ask']}"
    if _answer_waiting(f"fed-told:{tag}:"):
        return
    if _over_rate(peer):
        told = {"error": "throttled", "detail": f"at most {settings.MNS_FEDERATION_ASKS_PER_MINUTE} a minute"}
    else:
        told = _answer_or_refusal(peer, body["question"])
    reply = sync.message("told", ask=body["ask"], **told)
    if len(sync.encode(reply)) > MAXIMA_MAX_DATA_BYTES:
        reply = sync.message("told", ask=body["ask"], error="answer_too_large", detail="larger than Maxima carries")
    _send(peer, reply, f"fed-told:{tag}:{message.msgid[2:26]}")


def _over_rate(peer: Peer) -> bool:
    counted = ratelimit.hit(f"fed-asks:{peer.id}", window=60)
    return counted is not None and counted[0] > settings.MNS_FEDERATION_ASKS_PER_MINUTE


def _answer_or_refusal(peer: Peer, question: dict[str, Any]) -> dict[str, Any]:
    budget = settings.MNS_FEDERATION_BATCH_BYTES - HEADER_BYTES
    try:
        if question["q"] == "position":
            answer = snapshots.position()
        elif question["q"] == "roots":
            answer = snapshots.roots_answer(set_ids=question["sets"], peer=peer)
        elif question["q"] == "nodes":
            answer = snapshots.nodes_answer(
                set_id=_set_name(question["set"]), prefixes=question["prefixes"], peer=peer, max_bytes=budget
            )
        else:
            answer = snapshots.items_answer(
                set_id=_set_name(question["set"]),
                keys=question.get("keys"),
                prefix=question.get("prefix"),
                after=question.get("after", ""),
                peer=peer,
                max_bytes=budget,
            )
    except (DomainError, MNSError) as refused:
        code = getattr(refused, "code", "refused")
        detail = getattr(refused, "detail", None) or getattr(refused, "message", None) or str(refused)
        return {"error": code, "detail": str(detail)[:200]}
    return {"answer": answer}


def _set_name(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 100:
        raise DomainError("set_unknown", "set: a set's name of at most 100 characters", status=404)
    return value
