"""Snapshots and set reconciliation: a gateway finds what a peer holds that it lacks (``reconcile``), fetches those
items in chunks, verifies and applies each one through its kind's own path, and then moves the peer's cursor to
the log position the snapshot corresponds to, so the log carries on from there instead of from seq 1.

The serving side (``position``, ``roots_answer``, ``nodes_answer``, ``items_answer``) answers over the HTTPS API
(``federation.views``), and over Maxima to a peer without one (``federation.services.questions``, whose answers are
bounded in bytes: ``max_bytes``); the asking side (``reconcile_with_peer``) talks to it through a ``Transport``:
``HttpTransport``, or ``questions.MaximaTransport``, which answers a question from what the peer told and otherwise
asks it and raises ``Unanswered``: the round then stops and keeps its place, and the answer's arrival resumes it.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import requests
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.errors import DomainError
from federation import selectors
from federation.models import Peer
from federation.services import sets
from federation.services.peers import invalid_count, self_key
from mns_client.protocol import reconcile
from mns_client.protocol.codecs import parse_public_key
from mns_client.protocol.crypto import maxverify
from mns_client.protocol.errors import MNSError

logger = logging.getLogger(__name__)

MAX_KEYS_PER_REQUEST = 200
MAX_ROOTS = 256
APPLY_CHUNK = 100  # items a transaction: short enough to end well within a task's time limit
HTTP_TIMEOUT = 120  # seconds: the first question of a round may wait for the holder to build a large set's tree
FAILED_COOLS_OFF = 300  # seconds after a failed round before a far-behind peer is reconciled again, not pulled


# --- The serving side -----------------------------------------------------------------------------------------
def position() -> dict[str, Any]:
    """The log position a snapshot served now corresponds to: this gateway's own head (every op up to it was
    committed before anything served after this call was read), and its cursors of the other origins."""
    origin = self_key()
    cursors = dict(Peer.objects.filter(enabled=True).values_list("identity_key", "cursor"))
    return {"origin": origin or "", "head": selectors.log_head(origin=origin) if origin else 0, "cursors": cursors}


def _readable(set_id: str, peer: Peer | None) -> sets.SetKind:
    try:
        kind, argument = sets.parse(set_id)
    except sets.UnknownSet:
        raise DomainError("set_unknown", f"no set {set_id[:100]!r} here", status=404) from None
    if kind.allowed is not None and (peer is None or not kind.allowed(argument, peer.identity_key)):
        raise DomainError("set_forbidden", "only a peer that keeps this mailbox may read it", status=403)
    return kind


def nodes_answer(*, set_id: str, prefixes: Any, peer: Peer | None, max_bytes: int | None = None) -> dict[str, Any]:
    """The nodes of ``prefixes``; with ``max_bytes``, only the first ones that fit (the asker asks the rest again)."""
    _readable(set_id, peer)
    prefixes = reconcile.check_prefixes(prefixes)
    tree = sets.tree_of(set_id, home=self_key() or "")
    if max_bytes is not None:
        return {"set": set_id, "nodes": reconcile.answer_fitting(tree, prefixes, max_bytes=max_bytes)}
    return {"set": set_id, "nodes": reconcile.answer(tree, prefixes)}


def roots_answer(*, set_ids: Any, peer: Peer | None) -> dict[str, Any]:
    """The root fingerprints of several sets at once (a round compares them first, and walks only the sets that
    differ: a gateway keeping many mailboxes with a peer pays one request for all the equal ones)."""
    if not isinstance(set_ids, list) or len(set_ids) > MAX_ROOTS or not all(isinstance(s, str) for s in set_ids):
        raise DomainError("reconcile_invalid", f"sets: at most {MAX_ROOTS} set names")
    for set_id in set_ids:
        _readable(set_id, peer)
    me = self_key() or ""
    return {"roots": {set_id: sets.tree_of(set_id, home=me).fingerprint("").wire() for set_id in set_ids}}


def items_answer(
    *,
    set_id: str,
    keys: Any = None,
    prefix: Any = None,
    after: Any = "",
    peer: Peer | None,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """The items of ``keys``, or of a whole subtree (``prefix``, continuing ``after`` a digest), at most
    ``MNS_FEDERATION_SNAPSHOT_CHUNK`` of them; ``next``: where the subtree continues (``None``: done).

    With ``max_bytes`` (over Maxima), only the items of the first keys that fit (at least one key's: an item alone
    may not fit, as an op alone may not fit a batch), and ``served``: how many of the keys asked the answer covers
    (the asker asks the others again; a subtree's ``next`` says where it goes on)."""
    kind = _readable(set_id, peer)
    _, argument = sets.parse(set_id)
    chunk = settings.MNS_FEDERATION_SNAPSHOT_CHUNK
    following = None
    if (prefix is None) == (keys is None):
        raise DomainError("snapshot_invalid", "either keys or prefix")
    if prefix is not None:
        reconcile.check_prefixes([prefix])
        if not isinstance(after, str) or len(after) > 64 or after.strip(reconcile.HEX):
            raise DomainError("snapshot_invalid", "after: a digest in hex")
        tree = sets.tree_of(set_id, home=self_key() or "")
        keys, following = tree.keys_under(prefix, after=after, limit=chunk)
    else:
        keys = reconcile.check_keys(keys, limit=chunk)
    if max_bytes is None:
        return {"set": set_id, "items": kind.serve(argument, keys), "next": following}
    items, served = _items_fitting(kind, argument, keys, max_bytes)
    if served < len(keys) and prefix is not None:
        following = reconcile.key_digest(keys[served - 1])
    answer = {"set": set_id, "items": items, "next": following}
    return answer if prefix is not None else {**answer, "served": served}


def _items_fitting(kind: sets.SetKind, argument: str, keys: list[str], max_bytes: int) -> tuple[list[Any], int]:
    """The items of the first keys whose items fit ``max_bytes`` as JSON, and how many keys that is (at least one,
    when there is any). Read a few keys at a time, twice as many after each that fits, and after one that does not
    half as many, never more again: what is read stays within a few times what is sent (a mailbox's letters may
    be 64 KiB each, and reading a whole chunk of them to send one batch's worth let a peer's questions make this
    gateway read gigabytes a minute)."""
    items: list[Any] = []
    size, served, step, growing = 2, 0, 4, True  # "[]"
    while served < len(keys):
        chunk = keys[served : served + step]
        found = kind.serve(argument, chunk)
        more = sum(len(json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()) + 1 for item in found)
        if size + more <= max_bytes or (served == 0 and len(chunk) == 1):
            items += found
            size, served, step = size + more, served + len(chunk), step * 2 if growing else step
        elif len(chunk) == 1:
            break
        else:
            step, growing = len(chunk) // 2, False
    return items, served


def peer_of_token(header: str) -> Peer:
    """The enabled, unpaused peer that signed this ``Authorization`` header for this gateway."""
    me = self_key()
    if me is None:
        raise DomainError("peer_token_invalid", "this gateway does not know its own key yet", status=503)
    try:
        issuer, body, signature = reconcile.peer_token_read(header, audience=me, now_ms=int(time.time() * 1000))
    except reconcile.ReconcileInvalid as invalid:
        raise DomainError("peer_token_invalid", invalid.message, status=403) from None
    peer = selectors.peers_active().filter(identity_key=issuer).first()
    if peer is None or not maxverify(parse_public_key(peer.identity_key), body, signature):
        raise DomainError("peer_token_invalid", "not signed by an active peer", status=403)
    return peer


# --- The asking side ------------------------------------------------------------------------------------------
class Transport(Protocol):
    bytes_used: int

    def position(self) -> dict[str, Any]: ...

    def roots(self, set_ids: list[str]) -> dict[str, Any]: ...

    def nodes(self, set_id: str, prefixes: list[str]) -> dict[str, Any]: ...

    def items(self, set_id: str, **query: Any) -> dict[str, Any]: ...


class TransportFailed(Exception):
    pass


class Unanswered(Exception):
    """The transport asked a question that is not answered yet (over Maxima): the round stops and keeps its place,
    as out of time, and the answer's arrival starts the next round (``questions.told_received``)."""

    def __init__(self, question: str, ready: Callable[[], bool]) -> None:
        super().__init__(question)
        self.question, self.ready = question, ready


class HttpTransport:
    """A peer's ``/api/v1/federation/…`` endpoints; every request carries this gateway's signed token (made once
    per round with its node's ``maxsign``). The channel need not be trusted: every item is verified on arrival."""

    def __init__(self, peer: Peer, *, token: str, session: requests.Session | None = None) -> None:
        base = peer.api_url.rstrip("/")
        self.base = (base if base.endswith("/api/v1") else base + "/api/v1") + "/federation/"
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = token
        self.bytes_used = 0

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self.session.request(method, self.base + path, json=body, timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            raise TransportFailed(type(exc).__name__) from None
        self.bytes_used += len(response.content) + len(response.request.body or b"")
        if response.status_code != 200:
            raise TransportFailed(f"{path}: HTTP {response.status_code} {response.text[:200]}")
        return response.json()

    def position(self) -> dict[str, Any]:
        return self._call("GET", "position")

    def roots(self, set_ids: list[str]) -> dict[str, Any]:
        return self._call("POST", "roots", {"sets": set_ids}).get("roots", {})

    def nodes(self, set_id: str, prefixes: list[str]) -> dict[str, Any]:
        return self._call("POST", "reconcile", {"set": set_id, "prefixes": prefixes}).get("nodes", {})

    def items(self, set_id: str, **query: Any) -> dict[str, Any]:
        return self._call("POST", "snapshot", {"set": set_id, **query})


def token_for(peer: Peer) -> str:
    """This gateway's token for asking ``peer``, signed by its node (``maxsign`` with the identity key)."""
    from maxima.node import node_client

    expires = int(time.time() * 1000) + reconcile.TOKEN_MAX_SECONDS * 1000 - 60_000
    body = reconcile.peer_token_body(issuer=self_key() or "", audience=peer.identity_key, expires_ms=expires)
    return reconcile.peer_token(body, node_client().maxsign(body))


@dataclass
class RoundReport:
    sets: int = 0
    differing: int = 0
    fetched: int = 0
    applied: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    bytes_used: int = 0
    head: int = 0
    jumped_to: int | None = None
    unfinished: bool = False  # out of time: the task continues with another round at once
    waiting: bool = False  # a question asked over Maxima is not answered yet: its answer starts the next round
    note: str = ""


class _OutOfTime(Exception):
    pass


class _Budget:
    """A round's time: over once ``deadline`` has passed, but only after the round moved something on (a request
    of the walk answered, a chunk applied), so every round makes progress however short its budget."""

    def __init__(self, deadline: float) -> None:
        self.deadline, self.moved = deadline, False

    def over(self) -> bool:
        return self.moved and time.monotonic() > self.deadline

    def check(self) -> None:
        if self.over():
            raise _OutOfTime()


STATE_SECONDS = 3600  # a round's found difference is kept this long for the next round to carry on


def _state_key(peer: Peer) -> str:
    return f"fed-reconcile-state:{peer.id}:{peer.identity_key[:16]}"


@dataclass
class _State:
    """What a round found and has not finished, kept (in the cache) for the next round with the same peer: the
    head of the position the walks started from, the sets done, the roots answered, and each started set's
    ``Difference`` (what is still to ask, to fetch, and after which digest the first subtree's fetch goes on)."""

    head: int
    done: list[str] = field(default_factory=list)
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    roots: dict[str, Any] = field(default_factory=dict)  # the root fingerprints answered, asked once for all


def _state_load(peer: Peer, head: int) -> _State:
    kept = cache.get(_state_key(peer))
    try:
        state = _State(**kept) if isinstance(kept, dict) else None
    except TypeError:
        state = None
    # A peer whose head went back (restored from a backup) starts anew: its difference may no longer hold.
    return state if state is not None and state.head <= head else _State(head=head)


def reconcile_with_peer(
    *, peer_id: int, transport: Transport | None = None, seconds: float | None = None
) -> RoundReport | None:
    """One reconciliation round with a peer: every set the two share, the differing items fetched, verified and
    applied; then, if nothing was left waiting or refused, the peer's cursor moves up to the head its snapshot
    corresponds to (``position``, asked before the walks).

    A round stops after ``seconds`` (a task's time limit): it is then ``unfinished``, moves no cursor, and keeps
    what it found and where it got to (``_State``); the next round (enqueued at once by the task) carries on from
    there, without walking the trees again, and the round that finishes moves the cursor to the position the
    first one asked for, so nothing the log said up to there is missed.

    Without a transport given, a peer with an API is asked over HTTPS, one without over Maxima
    (``questions.MaximaTransport``): a round there stops at the first question not answered yet (``waiting``) and
    keeps its place as one out of time does; the answer's arrival starts the next, which finds it answered.

    One round per peer at a time (a cache lock); ``None`` when another runs or the peer is not active."""
    peer = selectors.peers_active().filter(id=peer_id).first()
    if peer is None:
        return None
    lock = f"fed-reconcile:{peer.id}"
    if not cache.add(lock, 1, timeout=settings.MNS_FEDERATION_RECONCILE_SECONDS):
        return None
    report = RoundReport()
    budget = _Budget(time.monotonic() + (seconds if seconds is not None else settings.CELERY_TASK_SOFT_TIME_LIMIT - 8))
    holder: list[_State] = []  # the round's state, once the position is known; kept unless finished or refused
    keep, waiting = True, None
    try:
        transport = transport or _transport_for(peer)
        _round(peer, transport, report, budget, holder)
        keep = False
    except _OutOfTime:
        report.unfinished = True
        report.note = f"unfinished: {report.fetched} fetched, continuing"
    except Unanswered as unanswered:
        waiting, report.waiting = unanswered, True
        report.note = f"waiting for the answer to {unanswered.question}: {report.fetched} fetched"
    except TransportFailed as failed:
        report.note = f"failed: {failed}"[:200]
        logger.warning("reconciliation with %s failed: %s", peer.name, failed)
    except (reconcile.ReconcileInvalid, ValueError, MNSError) as failed:
        keep = False  # a malformed answer: what it led to is not kept
        report.note = f"failed: {failed}"[:200]
        logger.warning("reconciliation with %s failed: %s", peer.name, failed)
    finally:
        if keep and holder:
            cache.set(_state_key(peer), asdict(holder[0]), timeout=STATE_SECONDS)
        else:
            cache.delete(_state_key(peer))
        if not keep:  # the next round over Maxima asks its questions anew (``questions.session``)
            cache.delete(session_key(peer))
        cache.delete(lock)
        report.bytes_used = getattr(transport, "bytes_used", 0)
        _report_keep(peer, report)
    if waiting is not None and waiting.ready():
        # Answered while this round held the lock (the round its arrival started found it held): the next, now.
        report.waiting, report.unfinished = False, True
    return report


def session_key(peer: Peer) -> str:
    """Where the id of the current catch-up with a peer over Maxima is kept (``questions.session``): its questions
    are asked once in it, and a finished round ends it, so the next asks afresh."""
    return f"fed-ask-session:{peer.id}:{peer.identity_key[:16]}"


def _transport_for(peer: Peer) -> Transport:
    if peer.api_url:
        return HttpTransport(peer, token=token_for(peer))
    from federation.services.questions import MaximaTransport  # which imports this module

    return MaximaTransport(peer)


def _round(peer: Peer, transport: Transport, report: RoundReport, budget: _Budget, holder: list[_State]) -> None:
    where = transport.position()
    if where.get("origin") != peer.identity_key or not isinstance(where.get("head"), int):
        raise TransportFailed("the peer answered for another log")
    state = _state_load(peer, where["head"])
    holder.append(state)
    report.head = state.head
    shared = [set_id for set_id in sets.set_ids_shared_with(peer.identity_key) if set_id not in state.done]
    while shared:
        # The roots are asked once for the sets not begun (the others carry on from their difference), and kept: a
        # round resumed over Maxima asks again only what it has no answer to. A root not answered is walked.
        fresh = [set_id for set_id in shared if set_id not in state.sets and set_id not in state.roots]
        for start in range(0, len(fresh), MAX_ROOTS):
            asked = fresh[start : start + MAX_ROOTS]
            answered = transport.roots(asked)
            answered = answered if isinstance(answered, dict) else {}
            state.roots.update({set_id: answered.get(set_id) for set_id in asked})
        for set_id in shared:
            _set_reconcile(peer, transport, set_id, state.roots.get(set_id), report, budget, state)
            state.done.append(set_id)
            state.sets.pop(set_id, None)
            state.after.pop(set_id, None)
            state.roots.pop(set_id, None)
        # Sets shared only since the round began (a mailbox its ``mailboxes`` set made this gateway keep): their ops
        # are behind the cursor the round moves, so the round reconciles them too.
        shared = [set_id for set_id in sets.set_ids_shared_with(peer.identity_key) if set_id not in state.done]
    invalid = sum(count for outcome, count in report.outcomes.items() if outcome.startswith("invalid"))
    if invalid:
        invalid_count(peer=peer, count=invalid, why="items of a snapshot that did not verify")
    if report.outcomes.get("wait") or invalid:
        report.note = f"{report.outcomes.get('wait', 0)} item(s) wait, {invalid} invalid: the cursor stays"
    else:
        report.jumped_to = _cursor_jump(peer, report.head)
    logger.info(
        "reconciled with %s: %s sets, %s differing, %s items fetched (%s applied), %s bytes",
        peer.name,
        report.sets,
        report.differing,
        report.fetched,
        report.applied,
        getattr(transport, "bytes_used", 0),
    )


def _set_reconcile(
    peer: Peer, transport: Transport, set_id: str, root: Any, report: RoundReport, budget: _Budget, state: _State
) -> None:
    """One set: nothing more when its root fingerprint equals ours; else the walk, the fetch and the apply, each
    carried on from where an earlier round stopped (``state``), and recorded there as they go."""
    report.sets += 1
    kept = state.sets.get(set_id)
    difference = reconcile.Difference() if kept is None else reconcile.Difference(**kept)
    if not difference.walked:  # a fetch carried on needs no local tree (a large set's costs seconds to build)
        local = sets.tree_of(set_id, home=peer.identity_key, fresh=True)
        equal = isinstance(root, list) and len(root) == 2 and reconcile.Fingerprint(*root) == local.fingerprint("")
        if kept is None and equal:
            return
        state.sets[set_id] = asdict(difference)
        _walk(local, transport, set_id, difference, budget, state)
    if difference.empty:
        return
    report.differing += 1
    kind, _ = sets.parse(set_id)
    while difference.keys:
        budget.check()
        batch = difference.keys[:MAX_KEYS_PER_REQUEST]
        answer = transport.items(set_id, keys=batch)
        served = answer.get("served", len(batch)) if isinstance(answer, dict) else len(batch)
        if not isinstance(served, int) or isinstance(served, bool) or not 0 < served <= len(batch):
            raise TransportFailed("a snapshot answer that serves none of the keys asked")
        _apply_all(peer, kind, _items(answer), report, budget)
        del difference.keys[:served]  # over Maxima, the keys that did not fit the answer are asked next
        state.sets[set_id] = asdict(difference)
    ask_ahead = getattr(transport, "ask_ahead", None)  # a transport that waits for its answers (over Maxima)
    while difference.prefixes:
        after = state.after.get(set_id, "")
        budget.check()
        if ask_ahead is not None:  # the next subtrees' first chunks travel while this one's are fetched
            ask_ahead(set_id, [{"prefix": prefix, "after": ""} for prefix in difference.prefixes[1:]])
        answer = transport.items(set_id, prefix=difference.prefixes[0], after=after)
        _apply_all(peer, kind, _items(answer), report, budget)
        following = answer.get("next")
        if following is not None and (not isinstance(following, str) or following <= after):
            raise TransportFailed("a snapshot chunk that does not move on")
        if following is None:
            difference.prefixes.pop(0)
            state.after.pop(set_id, None)
        else:
            state.after[set_id] = following
        state.sets[set_id] = asdict(difference)


def _walk(
    local: reconcile.Tree,
    transport: Transport,
    set_id: str,
    difference: reconcile.Difference,
    budget: _Budget,
    state: _State,
) -> None:
    """The walk of one set's trie, recorded in ``state`` after every request; out of time, it stops there."""

    def stop() -> bool:
        budget.moved = True
        state.sets[set_id] = asdict(difference)
        return budget.over()

    reconcile.walk(local, lambda prefixes: transport.nodes(set_id, prefixes), difference, stop=stop)
    state.sets[set_id] = asdict(difference)
    if not difference.walked:
        raise _OutOfTime()


def _apply_all(peer: Peer, kind: sets.SetKind, fetched: list[Any], report: RoundReport, budget: _Budget) -> None:
    """A fetched chunk (at most ``MNS_FEDERATION_SNAPSHOT_CHUNK`` items, a few seconds), ``APPLY_CHUNK`` items a
    transaction, applied whole even past the budget: a chunk cut short would be fetched again whole next round,
    and a round that cannot finish one would never move on."""
    for start in range(0, len(fetched), APPLY_CHUNK):
        _chunk_apply(peer, kind, fetched[start : start + APPLY_CHUNK], report)
    budget.moved = True


def _chunk_apply(peer: Peer, kind: sets.SetKind, chunk: list[Any], report: RoundReport) -> None:
    """A chunk's items in one transaction (one commit, not one per item), each in its own savepoint (or as the
    set applies many at once)."""
    from federation.services.replication import batch_context  # which imports this module

    with transaction.atomic(), batch_context(peer):
        if kind.apply_many is not None:
            outcomes = kind.apply_many(peer.identity_key, chunk)
        else:
            outcomes = [_apply(peer, kind, item) for item in chunk]
        for outcome in outcomes:
            report.fetched += 1
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
            report.applied += outcome == "applied"


def _items(answer: Any) -> list[Any]:
    items = answer.get("items") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise TransportFailed("a snapshot answer without items")
    return items


def _apply(peer: Peer, kind: sets.SetKind, item: Any) -> str:
    """One item, in a savepoint, through its set's ``apply`` (which verifies it as the matching op kind would)."""
    return sets.outcome(kind.apply, peer.identity_key, item)


def _cursor_jump(peer: Peer, head: int) -> int | None:
    """The peer's cursor moves up to ``head`` (never down): its ops up to there were in effect in the snapshot,
    so they are not replayed; the ones after come by the log. Under the peer row's lock, which a batch of its
    ops holds while it applies (and then reads the moved cursor)."""
    with transaction.atomic():
        locked = Peer.objects.select_for_update().get(id=peer.id)
        if locked.cursor >= head:
            return None
        changes: dict[str, Any] = {"cursor": head, "remote_head": max(locked.remote_head, head)}
        if locked.remote_floor > head:  # its log was restored from below the floor it told: no longer below it
            changes["remote_floor"] = head
        if head >= locked.remote_head:
            changes["caught_up_at"] = timezone.now()
        if locked.waiting_seq is not None and locked.waiting_seq <= head:
            changes.update(waiting_seq=None, waiting_since=None)
        Peer.objects.filter(id=peer.id).update(**changes)
    logger.info("the cursor of %s moved from %s to %s by a snapshot", peer.name, locked.cursor, head)
    return head


def _report_keep(peer: Peer, report: RoundReport) -> None:
    note = report.note or (
        f"{report.sets} sets, {report.differing} differing, {report.fetched} fetched, {report.applied} applied"
        + (f", cursor to {report.jumped_to}" if report.jumped_to is not None else "")
    )
    Peer.objects.filter(id=peer.id).update(
        reconciled_at=timezone.now(),
        reconcile_fetched=report.fetched,
        reconcile_bytes=report.bytes_used,
        reconcile_fetched_total=F("reconcile_fetched_total") + report.fetched,
        reconcile_bytes_total=F("reconcile_bytes_total") + report.bytes_used,
        reconcile_note=note[:200],
    )


def snapshot_wanted(peer: Peer, *, head: int) -> bool:
    """Whether the peer lags so far behind its log (a new peer, a long outage) that a snapshot beats the replay:
    more than ``MNS_FEDERATION_SNAPSHOT_LAG`` ops, and the last round with it did not fail in the last
    ``FAILED_COOLS_OFF`` seconds (meanwhile the log is the way). The snapshot comes over the peer's API, or over
    Maxima when it has none: in answers of ``MNS_FEDERATION_BATCH_BYTES``, as the log's batches would, but of the
    items as they are now rather than of every op since seq 1."""
    return head - peer.cursor > settings.MNS_FEDERATION_SNAPSHOT_LAG and not _failed_lately(peer)


def _failed_lately(peer: Peer) -> bool:
    return (
        peer.reconcile_note.startswith("failed")
        and peer.reconciled_at is not None
        and (timezone.now() - peer.reconciled_at).total_seconds() < FAILED_COOLS_OFF
    )
