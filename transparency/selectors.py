"""Reads of the directory's roots: the one a lookup proves against, the agreed one the publisher puts on chain,
and which gateways' signed roots disagree with the majority's or with the chain's."""

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import Subquery

from federation.models import Peer
from maxima.selectors import gateway_identity_key
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.transparency import Root, SignedRoot, Signer
from transparency.models import BucketEntries, ChainRoot, DirectoryRoot, PeerRoot

RECENT_CUTOFFS = 3  # a gateway stays flagged until its roots agree again for this many agreed cut-offs


def chain_root() -> ChainRoot | None:
    """The root of the newest bulletin this gateway read (or confirmed) on chain."""
    return ChainRoot.objects.order_by("-bulletin_seq").first()


def served_root() -> DirectoryRoot | None:
    """This gateway's own root at the cut-off of the newest root on chain: what lookups prove against (one query;
    its bucket roots are left unread: ``bucket_roots_of`` has them)."""
    newest = ChainRoot.objects.order_by("-bulletin_seq").values("cutoff")[:1]
    return DirectoryRoot.objects.filter(cutoff=Subquery(newest)).defer("bucket_roots").first()


def bucket_roots_of(cutoff: int) -> bytes:
    return bytes(DirectoryRoot.objects.filter(cutoff=cutoff).values_list("bucket_roots", flat=True).get())


def root_to_follow(cutoff: int) -> DirectoryRoot | None:
    """The newest root of this gateway before ``cutoff`` that still has its bucket roots and stamps: the one the
    root at ``cutoff`` is computed from."""
    return (
        DirectoryRoot.objects.filter(cutoff__lt=cutoff)
        .exclude(bucket_roots=b"")
        .exclude(bucket_stamps=b"")
        .order_by("-cutoff")
        .first()
    )


def bucket_entries_of(*, bucket: int, root: bytes) -> bytes | None:
    """The packed entries of ``bucket`` whose root is ``root`` (``transparency.services.unpack``), or None."""
    found = BucketEntries.objects.filter(bucket=bucket, root=root).values_list("entries", flat=True).first()
    return None if found is None else bytes(found)


def bucket_sizes(roots: dict[int, bytes]) -> dict[int, int]:
    """The number of names of each bucket with the given root, for those kept (bucket -> size)."""
    rows = BucketEntries.objects.filter(bucket__in=list(roots)).values_list("bucket", "root", "size")
    return {bucket: size for bucket, root, size in rows if bytes(root) == roots[bucket]}


def bucket_roots_kept() -> Iterator[bytes]:
    """The bucket roots of each root of this gateway that still has them."""
    for stored in DirectoryRoot.objects.exclude(bucket_roots=b"").values_list("bucket_roots", flat=True).iterator():
        yield bytes(stored)


def bucket_entries_kept() -> Iterator[tuple[int, int, bytes]]:
    """(id, bucket, root) of every kept bucket's entries (not the entries themselves)."""
    for pk, bucket, root in BucketEntries.objects.values_list("id", "bucket", "root").iterator():
        yield pk, bucket, bytes(root)


def served_epoch() -> str:
    """Changes whenever ``served_root`` may: a new bulletin's root, or this gateway's root for its cut-off."""
    chain = chain_root()
    if chain is None:
        return "none"
    return f"{chain.bulletin_seq}:{int(DirectoryRoot.objects.filter(cutoff=chain.cutoff).exists())}"


def own_root(*, cutoff: int) -> DirectoryRoot:
    return DirectoryRoot.objects.defer("bucket_roots").get(cutoff=cutoff)


def has_roots() -> bool:
    return DirectoryRoot.objects.exists()


# ------------------------------------------------------------------------------------------------ agreement


@dataclass(frozen=True)
class Member:
    name: str
    key: str


def members() -> list[Member]:
    """The membership: this gateway and its enabled peers (paused ones too: they are still members)."""
    me = gateway_identity_key()
    found = [Member(name="this gateway", key=me)] if me else []
    found += [Member(name=p.name, key=p.identity_key) for p in Peer.objects.filter(enabled=True).order_by("name")]
    return found


def majority() -> int:
    return len(members()) // 2 + 1


@dataclass(frozen=True)
class Signed:
    """One member's signed root at a cut-off (its own row, or a peer's message kept as evidence)."""

    member: Member
    root: Root
    signature: bytes
    evidence_id: int | None  # the PeerRoot row (None for this gateway's own)


def signed_roots(cutoff: int) -> list[Signed]:
    """Every member's signed root at ``cutoff`` known here (an equivocating peer has more than one)."""
    by_key = {member.key: member for member in members()}
    found = []
    own = DirectoryRoot.objects.filter(cutoff=cutoff).defer("bucket_roots").first()
    me = gateway_identity_key()
    if own is not None and me in by_key:
        found.append(Signed(by_key[me], Root(cutoff, own.size, bytes(own.root)), bytes(own.signature), None))
    for row in PeerRoot.objects.filter(cutoff=cutoff, peer_key__in=list(by_key)).order_by("peer_name", "id"):
        found.append(
            Signed(by_key[row.peer_key], Root(cutoff, row.size, bytes(row.root)), bytes(row.signature), row.id)
        )
    return found


def agreed_at(cutoff: int) -> SignedRoot | None:
    """The root a majority of the membership signed at ``cutoff``, with those signers, or None."""
    groups: dict[tuple[int, bytes], list[Signed]] = defaultdict(list)
    for signed in signed_roots(cutoff):
        groups[(signed.root.size, signed.root.root)].append(signed)
    needed = majority()
    for (size, root), signers in groups.items():
        keys = {signed.member.key for signed in signers}
        if len(keys) >= needed:
            # A majority's signatures prove the agreement; more would only grow the bulletin (16 KiB at most).
            unique = list({signed.member.key: signed for signed in signers}.values())[:needed]
            return SignedRoot(
                root=Root(cutoff=cutoff, size=size, root=root),
                signers=tuple(Signer(key=signed.member.key, signature=signed.signature) for signed in unique),
            )
    return None


def _cutoffs(limit: int = 12) -> list[int]:
    own = DirectoryRoot.objects.values_list("cutoff", flat=True)[:limit]
    peers = PeerRoot.objects.order_by("-cutoff").values_list("cutoff", flat=True).distinct()[:limit]
    return sorted(set(own) | set(peers), reverse=True)[:limit]


def agreed_root() -> SignedRoot | None:
    """The newest cut-off whose root a majority of the membership signed: what the publisher puts on chain."""
    for cutoff in _cutoffs():
        agreed = agreed_at(cutoff)
        if agreed is not None:
            return agreed
    return None


@dataclass(frozen=True)
class Disagreement:
    gateway: str  # a peer's name, or "this gateway"
    key: str
    cutoff: int
    why: str  # "majority" or "chain"
    root: str  # what it signed (0x…)
    expected: str  # what the majority or the chain has (0x…)
    evidence_id: int | None  # the PeerRoot row kept as evidence

    def sentence(self) -> str:
        against = "the majority's" if self.why == "majority" else "the chain's"
        if self.evidence_id is None:
            return f"this gateway is in the minority: its root at {self.cutoff} differs from {against}"
        return f"{self.gateway} signed a root at {self.cutoff} that differs from {against}"


def disagreements() -> list[Disagreement]:
    """Members whose signed root differs from the majority's at one of the last ``RECENT_CUTOFFS`` agreed cut-offs,
    or from the newest root on chain."""
    found: list[Disagreement] = []
    agreed_seen = 0
    for cutoff in _cutoffs():
        agreed = agreed_at(cutoff)
        if agreed is None:
            continue
        found += _differing(cutoff, agreed.root, "majority")
        agreed_seen += 1
        if agreed_seen >= RECENT_CUTOFFS:
            break
    chain = chain_root()
    if chain is not None:
        found += _differing(chain.cutoff, Root(chain.cutoff, chain.size, bytes(chain.root)), "chain")
    return found


def _differing(cutoff: int, expected: Root, why: str) -> list[Disagreement]:
    return [
        Disagreement(
            gateway=signed.member.name,
            key=signed.member.key,
            cutoff=cutoff,
            why=why,
            root=to_hex(signed.root.root),
            expected=to_hex(expected.root),
            evidence_id=signed.evidence_id,
        )
        for signed in signed_roots(cutoff)
        if (signed.root.size, signed.root.root) != (expected.size, expected.root)
    ]


def agreement_check() -> str:
    """Health: raises naming every gateway whose signed root disagrees (this one included, when in the minority)."""
    found = disagreements()
    if found:
        names = sorted({d.gateway for d in found})
        raise RuntimeError("roots disagree: " + "; ".join(names))
    newest = DirectoryRoot.objects.first()
    return f"root at {newest.cutoff} ({newest.size} names)" if newest else "no root yet"


def agreement_report() -> dict[str, object]:
    chain = chain_root()
    return {
        "chain_cutoff": chain.cutoff if chain else None,
        "flagged": [d.__dict__ | {"detail": d.sentence()} for d in disagreements()],
    }
