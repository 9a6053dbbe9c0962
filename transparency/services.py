"""The directory's roots (docs/protocol.md, "Transparency"): computing and signing this gateway's root at each
cut-off, telling the peers, keeping what they and the chain signed, and the proof a lookup carries.

The directory at cut-off C is every name with a statement issued at or before C, mapped to the hash of its latest
such statement by ``seq`` (``registry.selectors.statements_at``). Cut-offs are aligned (``cutoff_now``), so every
gateway computes the same ones; a late statement issued before a cut-off that arrives after its root was computed
does not change that root (the row is never rewritten): ``MNS_TRANSPARENCY_SETTLE`` leaves replication the time
to bring them all first. One that comes later still (after a partition) is in the next root, and until then the
proofs against the signed root are built from the bucket entries that root was made of (``BucketEntries``), not
from the history as it is now, so they keep checking out at the clients.

A root is computed from the previous one when it can (``tree_from``): only the buckets whose statements at the
cut-off changed since are read and hashed again, so its cost follows the changes, not the directory's size.
"""

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from federation.models import Peer
from federation.selectors import peers_active
from federation.services import invalid_count
from maxima.services import outbound_enqueue
from mns_client.protocol import sync
from mns_client.protocol.codecs import canonical_json, from_hex, to_hex
from mns_client.protocol.crypto import signed_by
from mns_client.protocol.transparency import (
    BUCKETS,
    EMPTY,
    HASH_BYTES,
    Directory,
    Root,
    SignedRoot,
    absence_for,
    bucket_leaves,
    bucket_of,
    merkle_root,
    proof_for,
    top_levels,
)
from registry import published
from registry.selectors import statement_of, statements_at, statements_at_by_bucket
from transparency import selectors
from transparency.models import BucketEntries, ChainRoot, DirectoryRoot, PeerRoot

logger = logging.getLogger(__name__)

BUCKET_CACHE_SECONDS = 3600


def cutoff_now(*, now_ms: int | None = None) -> int:
    """The newest cut-off every gateway agrees on: ``floor((now - settle) / every) * every``, in ms."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    every = settings.MNS_TRANSPARENCY_EVERY * 1000
    return (now - settings.MNS_TRANSPARENCY_SETTLE * 1000) // every * every


def statement_digest(statement: dict[str, Any]) -> bytes:
    """``transparency.statement_hash`` of a stored statement: the registry keeps each exactly as signed (its
    ``to_dict``), so its canonical JSON is the bytes the owner signed; no need to parse it again."""
    return hashlib.sha256(canonical_json(statement)).digest()


def directory_at(*, cutoff: int) -> Directory:
    """The whole tree at ``cutoff``, from the registry's statement history."""
    return Directory((name, statement_digest(statement)) for name, _seq, statement in statements_at(cutoff=cutoff))


def root_compute(*, cutoff: int, sign: Callable[[bytes], bytes], signer_key: str) -> DirectoryRoot:
    """This gateway's root at ``cutoff``, computed (from the previous root when it can: ``tree_at``), signed
    (``sign``: the node's ``maxsign``) and stored once with the entries of the buckets it hashed, then sent to every
    active peer (after the commit). Safe to run twice: a cut-off already computed is returned."""
    done = DirectoryRoot.objects.filter(cutoff=cutoff).first()
    if done is not None:
        return done
    started = time.perf_counter()
    tree = tree_at(cutoff=cutoff)
    root = Root(cutoff=cutoff, size=tree.size, root=tree.root)
    signature = sign(root.canonical())
    elapsed = int((time.perf_counter() - started) * 1000)
    try:
        with transaction.atomic():
            row = DirectoryRoot.objects.create(
                cutoff=cutoff,
                size=tree.size,
                root=root.root,
                bucket_roots=b"".join(tree.bucket_roots),
                bucket_stamps=tree.stamps,
                rehashed=tree.rehashed,
                signer_key=signer_key,
                signature=signature,
                compute_ms=elapsed,
            )
            # A bucket unchanged since a kept root is already there (same bucket, same root): one row for both.
            BucketEntries.objects.bulk_create(
                (
                    BucketEntries(
                        bucket=bucket,
                        root=tree.bucket_roots[bucket],
                        size=len(entries),
                        entries=pack(entries),
                        made_at=cutoff,
                    )
                    for bucket, entries in tree.hashed.items()
                    if entries
                ),
                batch_size=500,
                ignore_conflicts=True,
            )
            transaction.on_commit(lambda: root_announce(root_id=row.pk))
            transaction.on_commit(epoch_refresh)
    except IntegrityError:  # another worker stored it first
        return DirectoryRoot.objects.get(cutoff=cutoff)
    logger.info(
        "transparency: root at %s: %s names, %s buckets hashed, %s ms, %s",
        cutoff,
        tree.size,
        tree.rehashed,
        elapsed,
        to_hex(root.root),
    )
    return row


Entry = tuple[str, int, bytes]  # (name, seq, statement hash) of one name in the directory


@dataclass(frozen=True)
class Tree:
    """The directory's tree at a cut-off as this gateway stores it: the bucket roots, each bucket's stamp, and the
    entries (in tree order) of the buckets hashed from the history for it (all of them when computed whole)."""

    size: int
    bucket_roots: list[bytes]
    stamps: bytes
    hashed: dict[int, list[Entry]]
    rehashed: int

    @property
    def root(self) -> bytes:
        return top_levels(self.bucket_roots)[-1][0]


STAMP_BYTES = 8
NO_STATEMENTS = bytes(STAMP_BYTES)


def tree_at(*, cutoff: int) -> Tree:
    """The tree at ``cutoff``: from the newest earlier root when it has what it takes (``tree_from``), else whole
    (``tree_whole``). Both give the same bytes."""
    previous = selectors.root_to_follow(cutoff)
    tree = tree_from(previous, cutoff=cutoff) if previous is not None else None
    return tree if tree is not None else tree_whole(cutoff=cutoff)


def tree_whole(*, cutoff: int) -> Tree:
    """The tree at ``cutoff`` from every statement of the history (the stamps first: a statement stored between
    the two reads then moves its bucket's stamp for the next root, which hashes that bucket again)."""
    stamps, _ = bucket_stamps(cutoff=cutoff)
    hashed = _hashed(statements_at(cutoff=cutoff))
    roots = [_bucket_root(hashed.get(bucket, [])) for bucket in range(BUCKETS)]
    size = sum(len(entries) for entries in hashed.values())
    return Tree(size=size, bucket_roots=roots, stamps=stamps, hashed=hashed, rehashed=BUCKETS)


def tree_from(previous: DirectoryRoot, *, cutoff: int) -> Tree | None:
    """The tree at ``cutoff`` from ``previous``'s: the buckets whose stamp moved since (a statement issued between
    the two cut-offs, one that arrived late for an earlier cut-off, one deleted: a freed hold, an undone statement)
    are read and hashed again, the others are kept as they were. ``None`` (compute it whole) when something does
    not fit: records without a bucket yet, a previous root whose bucket roots do not make it, a kept bucket whose
    entries are gone, or a bucket read that brings another bucket's names."""
    stamps, complete = bucket_stamps(cutoff=cutoff)
    if not complete:  # only the whole computation places a name by its hash rather than by its bucket column
        return None
    stored, old_stamps = bytes(previous.bucket_roots), bytes(previous.bucket_stamps)
    roots = [stored[i * HASH_BYTES : (i + 1) * HASH_BYTES] for i in range(BUCKETS)]
    if top_levels(roots)[-1][0] != bytes(previous.root):
        logger.warning("transparency: the bucket roots at %s do not make its root: computed whole", previous.cutoff)
        return None
    changed = [bucket for bucket in range(BUCKETS) if _stamp_of(stamps, bucket) != _stamp_of(old_stamps, bucket)]
    if len(changed) > BUCKETS // 2:  # reading half the history bucket by bucket costs more than reading it once
        return None
    was = {bucket: roots[bucket] for bucket in changed if roots[bucket] != EMPTY}
    old_sizes = selectors.bucket_sizes(was)
    if len(old_sizes) != len(was):
        return None
    hashed = _hashed(statements_at(cutoff=cutoff, buckets=changed))
    if not set(hashed) <= set(changed):
        return None
    for bucket in changed:
        hashed.setdefault(bucket, [])
        roots[bucket] = _bucket_root(hashed[bucket])
    size = previous.size - sum(old_sizes.values()) + sum(len(entries) for entries in hashed.values())
    return Tree(size=size, bucket_roots=roots, stamps=stamps, hashed=hashed, rehashed=len(changed))


def bucket_stamps(*, cutoff: int) -> tuple[bytes, bool]:
    """Each bucket's stamp at ``cutoff`` (8 bytes of SHA-256 of what ``statements_at_by_bucket`` counts of its
    statements issued by then; ``NO_STATEMENTS`` for none), in bucket order, and whether every record has its
    bucket set."""
    counted = statements_at_by_bucket(cutoff=cutoff)
    stamps = b"".join(
        hashlib.sha256(":".join(map(str, counted[bucket])).encode()).digest()[:STAMP_BYTES]
        if bucket in counted
        else NO_STATEMENTS
        for bucket in range(BUCKETS)
    )
    return stamps, None not in counted


def _stamp_of(stamps: bytes, bucket: int) -> bytes:
    return stamps[bucket * STAMP_BYTES : (bucket + 1) * STAMP_BYTES]


def _hashed(statements: Iterable[tuple[str, int, dict[str, Any]]]) -> dict[int, list[Entry]]:
    """(name, seq, statement hash) of each name, by bucket (``bucket_of`` its name), each bucket in tree order."""
    buckets: dict[int, list[Entry]] = defaultdict(list)
    for name, seq, statement in statements:
        buckets[bucket_of(name)].append((name, seq, statement_digest(statement)))
    return {bucket: sorted(entries, key=lambda entry: entry[0].encode()) for bucket, entries in buckets.items()}


def _bucket_root(entries: list[Entry]) -> bytes:
    return merkle_root([leaf for _name, leaf in bucket_leaves((name, value) for name, _seq, value in entries)])


def pack(entries: list[Entry]) -> bytes:
    """A bucket's entries as ``BucketEntries`` keeps them: per name, its length (1 byte), its UTF-8 bytes, its seq
    (8 bytes) and its statement hash (32)."""
    packed = bytearray()
    for name, seq, value in entries:
        encoded = name.encode()
        packed += bytes([len(encoded)]) + encoded + seq.to_bytes(8, "big") + value
    return bytes(packed)


def unpack(packed: bytes) -> list[Entry]:
    entries: list[Entry] = []
    at = 0
    while at < len(packed):
        end = at + 1 + packed[at]
        name = packed[at + 1 : end].decode()
        seq = int.from_bytes(packed[end : end + 8], "big")
        entries.append((name, seq, bytes(packed[end + 8 : end + 8 + HASH_BYTES])))
        at = end + 8 + HASH_BYTES
    return entries


def roots_compute_due(*, sign: Callable[[bytes], bytes], signer_key: str, now_ms: int | None = None) -> list[int]:
    """The beat's work: this gateway's root at the newest cut-off, and at the cut-off of the newest root on chain
    when it has none there (it was down, or its beat skipped that cut-off): lookups prove against that one.
    Returns the cut-offs computed or found."""
    newest = cutoff_now(now_ms=now_ms)
    if newest <= 0:
        return []
    done = [root_compute(cutoff=newest, sign=sign, signer_key=signer_key).cutoff]
    chain = selectors.chain_root()
    if chain is not None and chain.cutoff < newest and not DirectoryRoot.objects.filter(cutoff=chain.cutoff).exists():
        done.append(root_compute(cutoff=chain.cutoff, sign=sign, signer_key=signer_key).cutoff)
    return done


def root_announce(*, root_id: int) -> int:
    """Send this gateway's signed root to every active peer (mns-sync ``root``); returns how many were queued."""
    row = DirectoryRoot.objects.get(pk=root_id)
    body = sync.message(
        "root", cutoff=row.cutoff, size=row.size, root=to_hex(bytes(row.root)), signature=to_hex(bytes(row.signature))
    )
    payload = sync.encode(body)
    sent = 0
    for peer in peers_active():
        tag = hashlib.sha256(peer.identity_key.encode()).hexdigest()[:16]
        outbound_enqueue(
            destination=peer.address,
            application=sync.APPLICATION,
            payload=payload,
            idempotency_key=f"root:{row.cutoff}:{tag}",
        )
        sent += 1
    return sent


def root_received(*, peer: Peer, body: dict[str, Any]) -> PeerRoot | None:
    """Keep a peer's signed root (checked by ``sync.check``) if it is at a cut-off that has come and its signature
    verifies with the peer's identity key (else it counts as an invalid operation of the peer); a second, different
    root of the same peer for one cut-off is kept too (evidence). Idempotent."""
    root = Root(cutoff=body["cutoff"], size=body["size"], root=from_hex(body["root"]))
    signature = from_hex(body["signature"])
    if root.cutoff % (settings.MNS_TRANSPARENCY_EVERY * 1000) or root.cutoff > cutoff_now():
        invalid_count(peer=peer, count=1, why=f"a root at {root.cutoff}: not a cut-off, or one still to come")
        return None
    if not signed_by(from_hex(peer.identity_key), root.canonical(), signature):
        invalid_count(peer=peer, count=1, why=f"a root at {root.cutoff} whose signature does not verify")
        return None
    row, created = PeerRoot.objects.get_or_create(
        peer_key=peer.identity_key,
        cutoff=root.cutoff,
        root=root.root,
        defaults={"peer_name": peer.name, "size": root.size, "signature": signature, "message": body},
    )
    if created and PeerRoot.objects.filter(peer_key=peer.identity_key, cutoff=root.cutoff).count() > 1:
        logger.warning("transparency: peer %s signed two different roots at %s", peer.name, root.cutoff)
    return row


def chain_root_seen(*, bulletin_seq: int, signed: SignedRoot) -> ChainRoot:
    """Keep the signed root a bulletin on chain carried (``entrypoints`` calls it for each bulletin it confirms or
    reads); lookups then prove against this gateway's own root at that cut-off."""
    row, created = ChainRoot.objects.get_or_create(
        bulletin_seq=bulletin_seq,
        defaults={
            "cutoff": signed.root.cutoff,
            "size": signed.root.size,
            "root": signed.root.root,
            "signers": [signer.to_dict() for signer in signed.signers],
        },
    )
    if created:
        transaction.on_commit(epoch_refresh)
        logger.info("transparency: bulletin #%s carries the root at %s", bulletin_seq, signed.root.cutoff)
    return row


def roots_prune(*, keep: int = 48) -> int:
    """Drop the bucket roots (128 KiB each) of this gateway's roots older than the newest ``keep``, except the one
    lookups prove against, and the bucket entries no root left holds: only proofs (and the next root) need them.
    The roots, sizes and signatures stay, as evidence. Returns how many roots lost their bucket roots."""
    newest = list(DirectoryRoot.objects.values_list("cutoff", flat=True)[:keep])
    served = selectors.served_root()
    kept = [*newest, *([served.cutoff] if served else [])]
    dropped = (
        DirectoryRoot.objects.exclude(cutoff__in=kept)
        .exclude(bucket_roots=b"")
        .update(bucket_roots=b"", bucket_stamps=b"")
    )
    if not dropped:  # the beat runs this every minute: the entries are looked at only when a root let some go
        return 0
    held: set[tuple[int, bytes]] = set()
    for stored in selectors.bucket_roots_kept():
        held.update((bucket, stored[bucket * HASH_BYTES : (bucket + 1) * HASH_BYTES]) for bucket in range(BUCKETS))
    unheld = [pk for pk, bucket, root in selectors.bucket_entries_kept() if (bucket, root) not in held]
    for start in range(0, len(unheld), 1000):
        BucketEntries.objects.filter(pk__in=unheld[start : start + 1000]).delete()
    return dropped


def epoch_refresh() -> None:
    """Tell the registry's kept lookups which root they prove against (``published.epoch_set``)."""
    published.epoch_set(selectors.served_epoch())


# ------------------------------------------------------------------------------------------------ lookups


def lookup_proof(record: Any) -> dict[str, Any]:
    """The ``transparency`` object of a lookup's answer (docs/protocol.md, "Transparency"): this gateway's own root
    at the cut-off of the newest root on chain, the name's statement at that cut-off, its inclusion proof, and
    whether that statement is the current one; or ``{"status": "no_root"}`` / ``{"status": "not_in_directory"}``
    with the name's bucket at that cut-off (its entries and top path: the proof of absence).

    Costs one bucket's rows (cached per cut-off and bucket once they match the stored bucket root) and the
    statement's row."""
    own = selectors.served_root()
    if own is None:
        return {"status": "no_root"}
    root = Root(cutoff=own.cutoff, size=own.size, root=bytes(own.root))
    bucket = bucket_of(record.name)
    entries = bucket_entries(root_row=own, bucket=bucket)
    seq = next((seq for name, seq, _value in entries if name == record.name), None)
    statement = statement_of(record=record, seq=seq) if seq is not None else None
    levels = _levels(own.cutoff, bytes(own.root))
    if seq is None:
        # The name's whole bucket at the cut-off shows it absent (docs/protocol.md: about n/4096 entries).
        absence = absence_for(record.name, [(name, value) for name, _seq, value in entries], levels)
        return {"status": "not_in_directory", "root": root.to_dict(), "bucket": absence.to_dict()}
    if statement is None:  # in the directory, but its statement is gone from the history: nothing to prove with
        return {"status": "not_in_directory", "root": root.to_dict()}
    proof = proof_for(record.name, [(name, value) for name, _seq, value in entries], levels)
    return {
        "root": root.to_dict(),
        "statement": {"statement": statement.statement, "signature": statement.signature},
        "proof": proof.to_dict(),
        "current": seq == record.seq,
    }


def bucket_entries(*, root_row: DirectoryRoot, bucket: int) -> list[Entry]:
    """(name, seq, statement hash) of one bucket at the root's cut-off: the entries the root was made of
    (``BucketEntries``), whatever reached the history since (a statement issued before the cut-off that arrived
    late is in the next root, not in this one's proofs). Kept in the cache per bucket and bucket root."""
    stored = _levels(root_row.cutoff, bytes(root_row.root))[0][bucket]
    key = f"transparency:bucket:{bucket}:{stored.hex()}"  # by content: right whatever root or database it is of
    kept = cache.get(key)
    if kept is not None:
        return kept
    packed = b"" if stored == EMPTY else selectors.bucket_entries_of(bucket=bucket, root=stored)
    if packed is None:
        return _history_entries(root_row=root_row, bucket=bucket, stored=stored, key=key)
    entries = unpack(packed)
    cache.set(key, entries, BUCKET_CACHE_SECONDS)
    return entries


def _history_entries(*, root_row: DirectoryRoot, bucket: int, stored: bytes, key: str) -> list[Entry]:
    """A root without its bucket entries (computed before they were kept): the bucket from the history as it is
    now, kept in the cache only when it still makes the stored bucket root. When it no longer does (the history
    changed under the root), it is answered all the same and logged: the proof then fails a client's check."""
    entries = [
        (name, seq, statement_digest(statement))
        for name, seq, statement in statements_at(cutoff=root_row.cutoff, bucket=bucket)
    ]
    if _bucket_root(sorted(entries, key=lambda entry: entry[0].encode())) != stored:
        logger.warning("transparency: bucket %s no longer makes this gateway's root at %s", bucket, root_row.cutoff)
        return entries
    cache.set(key, entries, BUCKET_CACHE_SECONDS)
    return entries


@lru_cache(maxsize=4)
def _levels(cutoff: int, root: bytes) -> list[list[bytes]]:
    """The top of this gateway's stored root at ``cutoff`` (4095 hashes to make: kept per process for the few
    recent cut-offs; a cut-off's root is never rewritten, and ``root`` keys it to this database's)."""
    stored = selectors.bucket_roots_of(cutoff)
    return top_levels([stored[i * HASH_BYTES : (i + 1) * HASH_BYTES] for i in range(BUCKETS)])
