"""The directory's roots (docs/protocol.md, "Transparency"): computing and signing this gateway's root at each
cut-off, telling the peers, keeping what they and the chain signed, and the proof a lookup carries.

The directory at cut-off C is every name with a statement issued at or before C, mapped to the hash of its latest
such statement by ``seq`` (``registry.selectors.statements_at``). Cut-offs are aligned (``cutoff_now``), so every
gateway computes the same ones; a late statement issued before a cut-off that arrives after its root was computed
does not change that root (the row is never rewritten): ``MNS_TRANSPARENCY_SETTLE`` leaves replication the time
to bring them all first.
"""

import hashlib
import logging
import time
from collections.abc import Callable
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
from registry.selectors import statement_of, statements_at
from transparency import selectors
from transparency.models import ChainRoot, DirectoryRoot, PeerRoot

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
    """This gateway's root at ``cutoff``, computed, signed (``sign``: the node's ``maxsign``) and stored once, then
    sent to every active peer (after the commit). Safe to run twice: a cut-off already computed is returned."""
    done = DirectoryRoot.objects.filter(cutoff=cutoff).first()
    if done is not None:
        return done
    started = time.perf_counter()
    directory = directory_at(cutoff=cutoff)
    root = Root(cutoff=cutoff, size=directory.size, root=directory.root)
    signature = sign(root.canonical())
    elapsed = int((time.perf_counter() - started) * 1000)
    try:
        with transaction.atomic():
            row = DirectoryRoot.objects.create(
                cutoff=cutoff,
                size=directory.size,
                root=directory.root,
                bucket_roots=b"".join(directory.levels[0]),
                signer_key=signer_key,
                signature=signature,
                compute_ms=elapsed,
            )
            transaction.on_commit(lambda: root_announce(root_id=row.pk))
            transaction.on_commit(epoch_refresh)
    except IntegrityError:  # another worker stored it first
        return DirectoryRoot.objects.get(cutoff=cutoff)
    logger.info("transparency: root at %s: %s names, %s ms, %s", cutoff, directory.size, elapsed, to_hex(root.root))
    return row


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
    lookups prove against: only proofs need them. The roots, sizes and signatures stay, as evidence."""
    newest = list(DirectoryRoot.objects.values_list("cutoff", flat=True)[:keep])
    served = selectors.served_root()
    kept = [*newest, *([served.cutoff] if served else [])]
    return DirectoryRoot.objects.exclude(cutoff__in=kept).exclude(bucket_roots=b"").update(bucket_roots=b"")


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
    levels = _levels(own.cutoff)
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


def bucket_entries(*, root_row: DirectoryRoot, bucket: int) -> list[tuple[str, int, bytes]]:
    """(name, seq, statement hash) of one bucket at the root's cut-off, from the history as it is now. Kept in the
    cache per (cut-off, bucket) once they make the stored bucket root (a cut-off's directory never changes).

    When they no longer make it (the history changed under a root this gateway signed: a statement that reached it
    late, or its database was changed), they are answered all the same, never kept, and logged: the proof then
    fails a client's check against the root, which is what a client must see."""
    key = f"transparency:bucket:{root_row.cutoff}:{bucket}"
    kept = cache.get(key)
    if kept is not None:
        return kept
    entries = [
        (name, seq, statement_digest(statement))
        for name, seq, statement in statements_at(cutoff=root_row.cutoff, bucket=bucket)
    ]
    stored = _levels(root_row.cutoff)[0][bucket]
    leaves = bucket_leaves([(name, value) for name, _seq, value in entries])
    if merkle_root([leaf for _name, leaf in leaves]) != stored:
        logger.warning("transparency: bucket %s no longer makes this gateway's root at %s", bucket, root_row.cutoff)
        return entries
    cache.set(key, entries, BUCKET_CACHE_SECONDS)
    return entries


@lru_cache(maxsize=4)
def _levels(cutoff: int) -> list[list[bytes]]:
    """The top of this gateway's stored root at ``cutoff`` (4095 hashes to make: kept per process for the few
    recent cut-offs; a cut-off's root is never rewritten)."""
    stored = selectors.bucket_roots_of(cutoff)
    return top_levels([stored[i * HASH_BYTES : (i + 1) * HASH_BYTES] for i in range(BUCKETS)])
