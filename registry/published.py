"""A name's published form: the lookup's answer (body and ETag) kept in Redis, next to the rate-limit counters.

A lookup reads it in the same ``EVALSHA`` that counts its rate limits (``core.api`` ``cache_keys``), so a lookup
of a cached name is one round trip in all. Only an active name's answer is kept; every refusal is read from the
database. Without Redis (the embedded default) nothing is kept and every lookup reads the database.

Never stale once a change has committed. Every write of a ``NameRecord`` goes through ``changing`` (the model's
``save``/``delete`` and its queryset's ``update``/``delete`` call it: the one hook, so a new kind of statement
or status is covered by writing the record as usual). Three keys per name:

- ``published:<name>``: the entry (ETag, newline, body), with a TTL;
- ``published-dirty:<name>``: how many changes of the name are under way (marked before the write, finished
  after the commit);
- ``published-gen:<name>``: bumped at both ends of every change.

``changing`` deletes the entry and marks the name dirty *before* the write, and after the commit (``on_commit``)
unmarks it, bumps the generation and deletes the entry again. A lookup that missed stores what it read from the
database only if, at the moment it stores, no change is under way and the generation is the one it saw before
reading (one Lua script, so atomic in Redis). So an entry can only have been read from the database either
before a change was marked (and the mark deletes it) or after the change committed and finished (so it is the
new record): between the commit and the finish, no entry exists and none can be stored, and a lookup reads the
database, which already answers with the change.

What a higher app adds to the answer (``register_annotation``: the directory's inclusion proof, from
``transparency``) may change without any record changing, when that app adopts a new state (a new root): it then
calls ``epoch_set``. Every entry is tagged with the epoch it was read under (``published-epoch``, fetched with the
entry), is served only under that same epoch and stored only if the epoch did not move since the lookup fetched
it, so no entry read before an adoption is served after it.

The dirty counter has a TTL (``DIRTY_SECONDS``), for a change that never finishes (rolled back, or its process
died between commit and finish): the name is then only read from the database until it expires. If the mark
cannot be written (Redis down) the change is refused before anything is written (``cache_unavailable``, 503):
writing it anyway could leave the old entry served once Redis is back.
"""

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from rest_framework.renderers import JSONRenderer

from core.errors import DomainError

ENTRY, DIRTY, GEN = "published:", "published-dirty:", "published-gen:"
EPOCH = "published-epoch"
# Longer than any request may take (gunicorn's timeout): a lookup stalled between reading the database and
# storing cannot outlive it.
DIRTY_SECONDS = 120
GEN_SECONDS = 86_400

# KEYS entry, dirty, gen, epoch; ARGV the entry, the generation the lookup saw, the entry's TTL, the epoch it saw.
_STORE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local gen = redis.call('GET', KEYS[3]) or '0'
if gen ~= ARGV[2] then return 0 end
local epoch = redis.call('GET', KEYS[4]) or ''
if epoch ~= ARGV[4] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
"""
# KEYS: (entry, dirty, gen) of each name; ARGV[1] +1 (a change starts) or -1 (it finished), then the TTLs.
_CHANGE = """
for i = 1, #KEYS, 3 do
  redis.call('DEL', KEYS[i])
  local dirty = redis.call('INCRBY', KEYS[i + 1], ARGV[1])
  if dirty <= 0 then redis.call('DEL', KEYS[i + 1]) else redis.call('EXPIRE', KEYS[i + 1], ARGV[2]) end
  redis.call('INCR', KEYS[i + 2])
  redis.call('EXPIRE', KEYS[i + 2], ARGV[3])
end
return 1
"""


def enabled() -> bool:
    """Only on Redis (``core.cache.RedisCache``): a per-process cache could not be invalidated everywhere."""
    return hasattr(cache, "raw_client")


def cache_keys(name: str) -> list[str]:
    """What a lookup of the normalised ``name`` fetches with its rate limits: the entry, the generation and the
    epoch."""
    return [ENTRY + name, GEN + name, EPOCH] if enabled() else []


def entry_of(cached: list[Any] | None) -> tuple[str, bytes] | None:
    """The (ETag, body) of a fetched entry, or None (none, or kept under another epoch than the current one)."""
    if not cached or cached[0] is None:
        return None
    epoch, _, rest = cached[0].partition(b"\n")
    if epoch != (_third(cached) or b""):
        return None
    etag, _, body = rest.partition(b"\n")
    return etag.decode(), body


def _third(cached: list[Any]) -> bytes | None:
    return cached[2] if len(cached) > 2 else None


# What a higher app adds to a name's answer: field -> function of the record (registered in its ``ready``).
Annotation = Callable[[Any], Any]
_annotations: dict[str, Annotation] = {}


def register_annotation(field: str, annotate: Annotation) -> None:
    """Add ``field`` to every lookup's answer, ``annotate(record)`` (JSON-ready, ``None`` for none). When what it
    answers changes without a record changing, the app calls ``epoch_set``."""
    _annotations[field] = annotate


def epoch_set(value: str) -> None:
    """Adopt a new state of the annotations (``value``: never one used before, e.g. a root's cut-off): entries kept
    under another epoch are no longer served. Call it after the state's rows committed. Best effort: without it
    the entries expire with their TTL."""
    if not enabled():
        return
    try:
        cache.raw_client().set(cache.make_and_validate_key(EPOCH), value)
    except Exception:  # the cache is down: nothing is served from it either
        return


def render(representation: dict[str, Any]) -> bytes:
    """The body a lookup answers with: what DRF's JSON renderer makes of the record's representation."""
    return JSONRenderer().render(representation)


def store(name: str, etag: str, body: bytes, cached: list[Any] | None) -> bool:
    """Keep a lookup's answer read from the database, unless a change of the name started since ``cached`` (the
    generation fetched before the read) or is under way. Best effort: a failure only means the next lookup reads
    the database again."""
    if not enabled() or cached is None:
        return False
    seen = (cached[1] or b"0").decode()
    epoch = _third(cached) or b""
    keys = [cache.make_and_validate_key(prefix + name) for prefix in (ENTRY, DIRTY, GEN)]
    keys.append(cache.make_and_validate_key(EPOCH))
    entry = epoch + b"\n" + etag.encode() + b"\n" + body
    try:
        stored = cache.run_script(_STORE, keys, [entry, seen, _entry_seconds(), epoch])
    except Exception:  # the cache is down: nothing is kept, the database answers
        return False
    return bool(stored)


def publish_active(*, batch: int = 1000) -> int:
    """Keep the answer of every active name in Redis (before a lookup asked for it: after a restore of Redis, or
    to warm a gateway); returns how many were kept. Each batch fetches the generations before reading the
    records, as a lookup does, so a change committed meanwhile is never overwritten by what was read before it."""
    from registry.models import NameRecord  # the model module imports this one

    if not enabled():
        return 0
    kept, last = 0, 0
    while True:
        names = list(
            NameRecord.objects.filter(status=NameRecord.Status.ACTIVE, id__gt=last)
            .order_by("id")
            .values_list("id", "name")[:batch]
        )
        if not names:
            return kept
        last = names[-1][0]
        keys = [cache.make_and_validate_key(GEN + name) for _, name in names]
        *seen, epoch = cache.raw_client().mget([*keys, cache.make_and_validate_key(EPOCH)])
        gens = dict(zip((name for _, name in names), seen, strict=True))
        records = NameRecord.objects.filter(name__in=gens, status=NameRecord.Status.ACTIVE)
        for record in records:
            kept += store(record.name, *answer_of(record), [None, gens[record.name], epoch])


def answer_of(record: Any) -> tuple[str, bytes]:
    """A lookup's (ETag, body) for ``record``: its representation, with what the chain says of the name when it is
    also registered there (``onchain``; its changes go through ``changing`` too, registered in ``apps.py``)."""
    from onchain.selectors import lookup_status
    from registry.serializers import record_representation

    on_chain = lookup_status(name=record.name, owner_key=record.owner_key or None)
    representation = record_representation(record)
    if on_chain is not None:
        representation["on_chain"] = on_chain
    added = {field: value for field, annotate in _annotations.items() if (value := annotate(record)) is not None}
    representation.update(added)
    return etag_of(record, on_chain, added), render(representation)


def etag_of(record: Any, on_chain: dict[str, Any] | None = None, added: dict[str, Any] | None = None) -> str:
    """Changes with every new statement and status (and with the mailbox's gateways, which no statement pins), with
    what the chain says of the name, and with what the registered annotations add."""
    extra = [*([on_chain] if on_chain else []), *([added] if added else [])]
    state = json.dumps([record.name, record.seq, record.status, record.gateways, *extra], sort_keys=True)
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'


@contextmanager
def changing(names: Iterable[str]) -> Iterator[None]:
    """Around every write of the named records: no lookup serves the old record once the write committed.

    Marks the names before the write (raising 503 ``cache_unavailable`` if it cannot, so nothing is written),
    and finishes them when the write commits (at once in autocommit mode, or if the write failed there)."""
    names = sorted(set(names))
    if not enabled() or not names:
        yield
        return
    _change(names, +1, refuse=True)
    try:
        yield
    except BaseException:
        if not transaction.get_connection().in_atomic_block:
            _change(names, -1)  # nothing was written; in a transaction, the counter's TTL covers a rollback
        raise
    transaction.on_commit(lambda: _change(names, -1), robust=True)


def _change(names: list[str], step: int, *, refuse: bool = False) -> None:
    keys = [cache.make_and_validate_key(prefix + name) for name in names for prefix in (ENTRY, DIRTY, GEN)]
    try:
        cache.run_script(_CHANGE, keys, [step, DIRTY_SECONDS, GEN_SECONDS])
    except Exception as exc:
        if refuse:
            raise DomainError(
                "cache_unavailable", "The gateway cannot change names right now; try again shortly.", status=503
            ) from exc
        raise  # after the commit: on_commit(robust=True) logs it; the dirty mark's TTL then bounds the cost


def _entry_seconds() -> int:
    return settings.MNS_LOOKUP_CACHE_SECONDS
