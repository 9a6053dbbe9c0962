"""The sets two gateways reconcile, each registered by the app that owns its rows (as the op kinds are).

Federation walks the trie and moves items (``mns_client.protocol.reconcile``); it does not know names or
mailboxes. The registry registers ``names`` (every name's current owner-signed statement), the mailboxes register
``mailboxes`` (the announcements of the mailboxes a home gateway keeps, with their replicas) and ``messages`` (the
contents of one mailbox, one set per mailbox both gateways keep: ``messages:<name>``).

A set is defined relative to its *home*: the gateway whose copy is asked for. The holder builds it with
``home`` = its own key; the asker builds its own copy of the same set with ``home`` = the holder's key, so both
sides list the same items when they agree (the mailboxes a home announced, as the asker learnt them).
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from federation.services.kinds import Invalid, Skip, Wait
from mns_client.protocol.errors import MNSError
from mns_client.protocol.reconcile import Tree

Items = Callable[[str, str], Iterable[tuple[str, bytes]]]  # (argument, home key) -> (key, item hash) pairs
Serve = Callable[[str, list[str]], list[dict[str, Any]]]  # (argument, keys) -> the items, verifiable one by one
Apply = Callable[[str, dict[str, Any]], str]  # (the holder's key, an item) -> outcome; raises Invalid, Skip, Wait
Allowed = Callable[[str, str], bool]  # (argument, the asking peer's key) -> whether it may read the set
Shared = Callable[[str], list[str]]  # (a peer's key) -> the arguments of the sets this gateway shares with it
# (the holder's key, a chunk of items) -> an outcome per item, as ``apply`` would say it ("wait" for Wait,
# "invalid:<why>" for Invalid, the reason for Skip): for a set that can apply many items faster than one by one
ApplyMany = Callable[[str, list[Any]], list[str]]


def outcome(apply: Apply, holder: str, item: Any) -> str:
    """One item through ``apply`` in a savepoint, as the outcome ``ApplyMany`` gives for it: ``apply``'s own, "wait"
    for Wait, the reason for Skip, "invalid:<why>" for Invalid and for any refusal the branches did not map."""
    try:
        if not isinstance(item, dict):
            raise Invalid("item_invalid")
        with transaction.atomic():
            return apply(holder, item)
    except Wait:
        return "wait"
    except Skip as skip:
        return str(skip)[:32] or "skipped"
    except Invalid as invalid:
        return f"invalid:{invalid}"[:32]
    except MNSError as refused:
        return f"invalid:{getattr(refused, 'code', 'refused')}"[:32]


@dataclass(frozen=True)
class SetKind:
    items: Items
    serve: Serve
    apply: Apply
    allowed: Allowed | None = None  # None: public (the names); else only an authenticated peer it allows
    shared: Shared | None = None  # None: one set, no argument
    apply_many: ApplyMany | None = None


_sets: dict[str, SetKind] = {}
ORDER: list[str] = []  # the order a round reconciles them in: names before the mailboxes they hold


def register(
    family: str,
    *,
    items: Items,
    serve: Serve,
    apply: Apply,
    allowed: Allowed | None = None,
    shared: Shared | None = None,
    after: str | None = None,
    apply_many: ApplyMany | None = None,
) -> None:
    _sets[family] = SetKind(
        items=items, serve=serve, apply=apply, allowed=allowed, shared=shared, apply_many=apply_many
    )
    if family in ORDER:
        ORDER.remove(family)
    ORDER.insert(ORDER.index(after) + 1 if after in ORDER else len(ORDER), family)


class UnknownSet(LookupError):
    pass


def parse(set_id: str) -> tuple[SetKind, str]:
    """``names`` → (its kind, ""); ``messages:alice`` → (the messages kind, "alice")."""
    family, _, argument = set_id.partition(":")
    kind = _sets.get(family)
    if kind is None or bool(argument) != (kind.shared is not None) or len(set_id) > 100:
        raise UnknownSet(set_id)
    return kind, argument


def set_ids_shared_with(peer_key: str) -> list[str]:
    """Every set this gateway reconciles with a peer, in order."""
    answer = []
    for family in ORDER:
        kind = _sets[family]
        if kind.shared is None:
            answer.append(family)
        else:
            answer.extend(f"{family}:{argument}" for argument in kind.shared(peer_key))
    return answer


_trees: dict[str, tuple[float, Tree]] = {}


def tree_of(set_id: str, *, home: str, fresh: bool = False) -> Tree:
    """The set's trie. The holder's own (``home`` = its key) is kept ``MNS_FEDERATION_TREE_SECONDS`` in this
    process, so a peer's walk of it (a request per level) builds it once; ``fresh`` builds it anew (the asker's
    copy, which changes as the round applies items)."""
    kind, argument = parse(set_id)
    cache_key = f"{set_id}\n{home}"
    now = time.monotonic()
    kept = _trees.get(cache_key)
    if not fresh and kept is not None and now - kept[0] < settings.MNS_FEDERATION_TREE_SECONDS:
        return kept[1]
    tree = Tree(kind.items(argument, home))
    if not fresh:
        if len(_trees) > 1000:
            _trees.clear()
        _trees[cache_key] = (now, tree)
    return tree


def trees_forget() -> None:
    _trees.clear()
