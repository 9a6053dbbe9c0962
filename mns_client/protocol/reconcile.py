"""Set reconciliation between two gateways (``docs/protocol.md``, "Federation: reconciliation and snapshots").

Django-free. A *set* is a collection of ``(key, item hash)`` pairs (the names and their current statements, the
messages of a mailbox); two gateways find which items one holds that the other lacks, or holds differently, with
bytes in proportion to the difference, not to the size of the set.

The set is laid out as a 16-way trie over the hex digits of SHA-256(key). A node is a hex prefix; its
*fingerprint* is ``(count, xor)``: how many items lie under it and the XOR of their item hashes (the first 8 bytes,
as 16 hex digits, travel). The asker starts at the root (prefix ``""``) and asks the holder about the prefixes where
the two fingerprints differ; the holder answers each with its 16 children's fingerprints, or with its items once a
node holds at most ``LEAF_ITEMS``. The asker descends only into the children that differ, and a subtree of which
it holds nothing, or less than half of more than ``LEAF_ITEMS``, it asks for whole (a new peer asks for everything,
in chunks, without descending; one half way through a catch-up does not walk down to every leaf it still lacks).

A ``Tree`` is built once from the pairs (sorted by key digest, with a running XOR), after which any node's
fingerprint costs two binary searches: a gateway keeps a built tree for a short while and answers from it.
"""

import hashlib
import json
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mns_client.protocol.codecs import canonical_json
from mns_client.protocol.errors import Refusal

HEX = "0123456789abcdef"
LEAF_ITEMS = 16
FINGERPRINT_HEX = 16  # 64 bits of the XOR travel: a false match needs a 2**-64 accident
MAX_PREFIXES = 256  # per request
MAX_PREFIX_CHARS = 64
MAX_KEY_CHARS = 64


class ReconcileInvalid(Refusal):
    code = "reconcile_invalid"


def key_digest(key: str) -> str:
    """Where a key sits in the trie: the hex of SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(key.encode()).hexdigest()


def item_hash(*parts: bytes | str) -> bytes:
    """An item hash over several fields: SHA-256 of each field's length and bytes, so no two splits collide."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(4, "big"))
        digest.update(data)
    return digest.digest()


def short(value: int) -> str:
    """The travelling part of a hash or an XOR: its first ``FINGERPRINT_HEX`` hex digits."""
    return f"{value:064x}"[:FINGERPRINT_HEX]


@dataclass(frozen=True)
class Fingerprint:
    count: int
    xor: str  # FINGERPRINT_HEX hex digits

    def wire(self) -> list[Any]:
        return [self.count, self.xor]


EMPTY = Fingerprint(0, "0" * FINGERPRINT_HEX)


class Tree:
    """The trie of one set, built once: ``fingerprint(prefix)``, ``node(prefix)`` and the items under a prefix."""

    def __init__(self, pairs: Iterable[tuple[str, bytes]]) -> None:
        rows = sorted((key_digest(key), key, int.from_bytes(hashed[:32], "big")) for key, hashed in pairs)
        self.digests = [row[0] for row in rows]
        self.keys = [row[1] for row in rows]
        self.hashes = [row[2] for row in rows]
        running, self._xors = 0, [0]
        for value in self.hashes:
            running ^= value
            self._xors.append(running)
        self._by_key = {key: index for index, key in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    def span(self, prefix: str) -> tuple[int, int]:
        """The items under ``prefix``: indexes ``[low, high)`` of the sorted digests."""
        return bisect_left(self.digests, prefix), bisect_left(self.digests, prefix + "g")  # "g" follows "f"

    def fingerprint(self, prefix: str) -> Fingerprint:
        low, high = self.span(prefix)
        if low == high:
            return EMPTY
        return Fingerprint(high - low, short(self._xors[high] ^ self._xors[low]))

    def hash_of(self, key: str) -> str | None:
        index = self._by_key.get(key)
        return None if index is None else short(self.hashes[index])

    def node(self, prefix: str) -> dict[str, Any]:
        """What a holder answers about ``prefix``: ``{"n", "items": [[key, hash], …]}`` when the node holds at most
        ``LEAF_ITEMS`` (or cannot be split further), else ``{"n", "children": 16 x [count, xor]}``."""
        low, high = self.span(prefix)
        if high - low <= LEAF_ITEMS or len(prefix) >= MAX_PREFIX_CHARS:
            return {"n": high - low, "items": [[self.keys[i], short(self.hashes[i])] for i in range(low, high)]}
        return {"n": high - low, "children": [self.fingerprint(prefix + digit).wire() for digit in HEX]}

    def keys_under(self, prefix: str, *, after: str = "", limit: int) -> tuple[list[str], str | None]:
        """Up to ``limit`` keys under ``prefix`` whose digest follows ``after``, and the digest to continue after
        (``None``: no more)."""
        low, high = self.span(prefix)
        if after:
            low = max(low, bisect_left(self.digests, after + "0"))  # strictly after: ``after`` + anything
        end = min(high, low + limit)
        keys = self.keys[low:end]
        return keys, (self.digests[end - 1] if end < high and keys else None)


def answer(tree: Tree, prefixes: list[str]) -> dict[str, dict[str, Any]]:
    """The holder's answer to a request for ``prefixes`` (checked first with ``check_prefixes``)."""
    return {prefix: tree.node(prefix) for prefix in prefixes}


def answer_fitting(tree: Tree, prefixes: list[str], *, max_bytes: int) -> dict[str, dict[str, Any]]:
    """``answer`` cut to the first prefixes whose nodes fit ``max_bytes`` as JSON (always the first: a node is at
    most a leaf's 16 items); the asker asks the others again (``walk``)."""
    nodes: dict[str, dict[str, Any]] = {}
    size = 2
    for prefix in prefixes:
        node = tree.node(prefix)
        size += len(json.dumps({prefix: node}, separators=(",", ":"), ensure_ascii=False).encode())
        if nodes and size > max_bytes:
            break
        nodes[prefix] = node
    return nodes


# The questions a gateway may ask a peer over Maxima (``ask``; over HTTPS they are the federation endpoints): each
# ``q`` with its required and optional fields. The holder checks their values as its endpoints do.
QUESTIONS: dict[str, tuple[set[str], set[str]]] = {
    "position": (set(), set()),
    "roots": ({"sets"}, set()),
    "nodes": ({"set", "prefixes"}, set()),
    "items": ({"set"}, {"keys", "prefix", "after"}),
}


def check_prefixes(prefixes: Any) -> list[str]:
    if not isinstance(prefixes, list) or not 0 < len(prefixes) <= MAX_PREFIXES:
        raise ReconcileInvalid("reconcile_invalid", f"prefixes: a list of 1 to {MAX_PREFIXES}", field="prefixes")
    for prefix in prefixes:
        if not isinstance(prefix, str) or len(prefix) > MAX_PREFIX_CHARS or prefix.strip(HEX):
            raise ReconcileInvalid("reconcile_invalid", "prefixes: lower-case hex strings", field="prefixes")
    return prefixes


def check_keys(keys: Any, *, limit: int) -> list[str]:
    if not isinstance(keys, list) or len(keys) > limit:
        raise ReconcileInvalid("reconcile_invalid", f"keys: a list of at most {limit}", field="keys")
    if not all(isinstance(key, str) and 0 < len(key) <= MAX_KEY_CHARS for key in keys):
        raise ReconcileInvalid("reconcile_invalid", f"keys: strings of 1 to {MAX_KEY_CHARS}", field="keys")
    return keys


@dataclass
class Difference:
    """What the asker lacks or holds differently: single ``keys``, and whole subtrees (``prefixes``) of which it
    holds less than half; with the requests and prefixes it took to find them. ``frontier``: the prefixes still to
    ask about (``[""]`` before the walk, empty once it is done). Plain data (``asdict`` keeps it between rounds):
    a walk or a fetch cut short goes on from it instead of from the root."""

    keys: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    rounds: int = 0
    asked: int = 0
    remote_count: int = 0
    frontier: list[str] = field(default_factory=lambda: [""])

    @property
    def empty(self) -> bool:
        return not self.keys and not self.prefixes

    @property
    def walked(self) -> bool:
        return not self.frontier


Ask = Callable[[list[str]], dict[str, Any]]


def find_missing(local: Tree, ask: Ask, *, per_request: int = MAX_PREFIXES) -> Difference:
    """Walk the holder's trie through ``ask`` (a list of prefixes → the holder's ``answer``) and find what the
    local set lacks or holds differently. Items only the local set holds are not looked for: the holder finds
    them when it reconciles with this gateway."""
    return walk(local, ask, Difference(), per_request=per_request)


def walk(
    local: Tree,
    ask: Ask,
    difference: Difference,
    *,
    per_request: int = MAX_PREFIXES,
    stop: Callable[[], bool] | None = None,
) -> Difference:
    """Carry ``difference``'s walk on (breadth first, ``per_request`` prefixes a request) until its frontier is
    empty, or until ``stop()`` says so after a request: the frontier then holds what is still to ask, and a later
    call goes on from there (the local tree may have grown meanwhile: a node is compared when its answer comes)."""
    while difference.frontier:
        chunk = difference.frontier[:per_request]
        nodes = ask(chunk)
        # A holder may answer fewer prefixes than asked (over Maxima, as many as fit its message): the others are
        # asked again next. An answer of none is malformed (a walk that never moves on).
        answered = [prefix for prefix in chunk if isinstance(nodes, dict) and prefix in nodes]
        if not answered:
            raise ReconcileInvalid("reconcile_invalid", f"no answer for the prefix {chunk[0]!r}", field="nodes")
        difference.rounds += 1
        difference.asked += len(answered)
        following: list[str] = []
        for prefix in answered:
            node = nodes[prefix]
            if prefix == "" and isinstance(node, dict):
                difference.remote_count = _count(node.get("n"))
            following.extend(_compare(local, prefix, node, difference))
        unanswered = [prefix for prefix in chunk if prefix not in nodes]
        difference.frontier = unanswered + difference.frontier[len(chunk) :] + following
        if stop is not None and difference.frontier and stop():
            break
    return difference


def _compare(local: Tree, prefix: str, node: Any, difference: Difference) -> list[str]:
    """The children of ``prefix`` to ask about next; found items and whole subtrees go into ``difference``."""
    if not isinstance(node, dict):
        raise ReconcileInvalid("reconcile_invalid", f"no answer for the prefix {prefix!r}", field="nodes")
    if isinstance(node.get("items"), list):
        for item in node["items"]:
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)):
                raise ReconcileInvalid("reconcile_invalid", "items: [key, hash] pairs", field="items")
            key, hashed = item
            if local.hash_of(key) != hashed:
                difference.keys.append(key)
        return []
    children = node.get("children")
    if not isinstance(children, list) or len(children) != len(HEX):
        raise ReconcileInvalid("reconcile_invalid", "children: 16 [count, xor] pairs", field="children")
    following = []
    for digit, child in zip(HEX, children, strict=True):
        if not (isinstance(child, list) and len(child) == 2 and isinstance(child[1], str)):
            raise ReconcileInvalid("reconcile_invalid", "children: 16 [count, xor] pairs", field="children")
        remote = Fingerprint(_count(child[0]), child[1])
        if remote.count == 0:
            continue  # the holder has nothing there: nothing to fetch
        mine = local.fingerprint(prefix + digit)
        if mine == remote:
            continue
        if mine.count == 0 or (mine.count * 2 < remote.count and remote.count > LEAF_ITEMS):
            # Mostly missing here: fetched whole, not walked down (a small node's items come with its answer, and
            # only what differs of them is fetched).
            difference.prefixes.append(prefix + digit)
        else:
            following.append(prefix + digit)
    return following


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReconcileInvalid("reconcile_invalid", "a count is a non-negative integer", field="n")
    return value


# --- Who asks: a peer's signed token (HTTPS requests for what only peers may read) ------------------------------
TOKEN_SCHEME = "MNS-Peer"  # noqa: S105 (a scheme name, not a secret)
TOKEN_MAX_SECONDS = 600


def peer_token_body(*, issuer: str, audience: str, expires_ms: int) -> bytes:
    """What a gateway signs with its Maxima key (``maxsign``) to ask a peer over HTTPS: its own key, the key of
    the gateway asked (a token for one peer is worthless at another) and an expiry (at most ten minutes ahead)."""
    return canonical_json({"aud": audience, "exp": expires_ms, "iss": issuer, "v": 1})


def peer_token(body: bytes, signature: bytes) -> str:
    """The ``Authorization`` header's value: ``MNS-Peer <hex of the body>.<hex of the signature>``."""
    return f"{TOKEN_SCHEME} {body.hex()}.{signature.hex()}"


def peer_token_read(header: str, *, audience: str, now_ms: int) -> tuple[str, bytes, bytes]:
    """The issuer's key, the signed body and the signature of a token for ``audience`` that has not expired;
    ``ReconcileInvalid`` (``peer_token_invalid``) otherwise. The caller verifies the signature with the issuer's
    key, and that the issuer is a peer it knows."""
    scheme, _, value = header.partition(" ")
    body_hex, _, signature_hex = value.partition(".")
    try:
        body, signature = bytes.fromhex(body_hex), bytes.fromhex(signature_hex)
        fields = json.loads(body)
    except ValueError:
        raise ReconcileInvalid("peer_token_invalid", "a peer token is MNS-Peer <hex>.<hex>") from None
    if scheme != TOKEN_SCHEME or not isinstance(fields, dict) or canonical_json(fields) != body:
        raise ReconcileInvalid("peer_token_invalid", "a peer token is MNS-Peer <hex>.<hex> of canonical JSON")
    expires, issuer = fields.get("exp"), fields.get("iss")
    if fields.get("aud") != audience or not isinstance(issuer, str) or not isinstance(expires, int):
        raise ReconcileInvalid("peer_token_invalid", "the token is not for this gateway")
    if not now_ms < expires <= now_ms + TOKEN_MAX_SECONDS * 1000:
        raise ReconcileInvalid("peer_token_invalid", "the token expired (or expires too far ahead)")
    return issuer, body, signature
