"""The directory's Merkle tree: what lets a client check that the gateway it asked tells everyone the same thing
(``docs/protocol.md``, "Transparency"). Django-free, so a third implementation can follow the page and these
functions; the vectors are ``docs/vectors/transparency.json``.

The directory at a cut-off is every name with a statement issued at or before it, mapped to the hash of the
latest such statement (by ``seq``): a released name stays in it, with its release. The tree has two levels:

- a name falls in one of ``BUCKETS`` buckets by the first 12 bits of SHA-256 of its UTF-8 bytes;
- a bucket's root is the RFC 9162 Merkle tree hash of its leaves in the byte order of their names, with
  ``leaf = SHA-256(0x00 ‖ len(name) ‖ name ‖ statement hash)`` and ``node = SHA-256(0x01 ‖ left ‖ right)``; an
  empty bucket's root is SHA-256 of nothing;
- the root is the perfect binary tree of the 4096 bucket roots (``node`` again, 12 levels).

A gateway builds a proof for one name from one bucket's leaves, so it never holds the whole tree to answer a
lookup, and a change re-hashes one bucket. A root is announced as ``{"v":1,"cutoff","size","root"}`` and signed
by each gateway with its Maxima key (``maxsign`` over the canonical JSON of that object).
"""

import hashlib
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mns_client.protocol import fields
from mns_client.protocol.codecs import canonical_json, canonical_public_key, from_hex, to_hex
from mns_client.protocol.crypto import signed_by
from mns_client.protocol.errors import CodecError, Refusal
from mns_client.protocol.statements import NameStatement

VERSION = 1
BUCKET_BITS = 12
BUCKETS = 1 << BUCKET_BITS
HASH_BYTES = 32
EMPTY = hashlib.sha256(b"").digest()
SIGNATURE_BYTES = 128  # maxsign: RSA-1024
MAX_PATH = 64  # a bucket's path: 2^64 leaves is more than the directory will ever hold


class ProofInvalid(Refusal):
    """A root or an inclusion proof that does not check out; ``code`` says which part."""


def statement_hash(statement: NameStatement) -> bytes:
    """The directory's value for a name: SHA-256 of the statement's canonical bytes (what the owner signed)."""
    return hashlib.sha256(statement.canonical()).digest()


def bucket_of(name: str) -> int:
    """The bucket of a name (in its normal form): the first 12 bits of SHA-256 of its UTF-8 bytes."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:2], "big") >> (16 - BUCKET_BITS)


def leaf_hash(name: str, value: bytes) -> bytes:
    encoded = name.encode()
    if not 0 < len(encoded) < 256 or len(value) != HASH_BYTES:
        raise ProofInvalid("leaf_invalid", "a leaf is a name of 1 to 255 bytes and a 32-byte statement hash")
    return hashlib.sha256(b"\x00" + bytes([len(encoded)]) + encoded + value).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than ``size`` (RFC 9162 §2.1.1's k)."""
    return 1 << ((size - 1).bit_length() - 1)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162's Merkle tree hash over already-hashed leaves (SHA-256 of nothing for none)."""
    if not leaves:
        return EMPTY
    level = list(leaves)
    # Bottom-up, pairing left to right and carrying an odd last node up: the same tree as the recursive definition.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def audit_path(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """RFC 9162's inclusion path of leaf ``index`` in the tree of ``leaves``, from the leaf up."""
    if not 0 <= index < len(leaves):
        raise ProofInvalid("index_invalid", "no such leaf")
    path: list[bytes] = []
    start, size = 0, len(leaves)
    while size > 1:
        k = _split(size)
        if index - start < k:
            path.append(merkle_root(leaves[start + k : start + size]))
            size = k
        else:
            path.append(merkle_root(leaves[start : start + k]))
            start, size = start + k, size - k
    path.reverse()
    return path


def root_from_path(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root that ``leaf`` at ``index`` of a tree of ``size`` leaves and its ``path`` lead to (RFC 9162
    §2.1.3.2); ``ProofInvalid`` when the path's length does not fit the index and size."""
    if not 0 <= index < size:
        raise ProofInvalid("index_invalid", "the leaf's index is outside the bucket")
    fn, sn, node = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise ProofInvalid("path_invalid", "the path is longer than the bucket's tree")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid("path_invalid", "the path is shorter than the bucket's tree")
    return node


def top_levels(bucket_roots: Sequence[bytes]) -> list[list[bytes]]:
    """The levels of the perfect tree over the 4096 bucket roots, the buckets first and the root last."""
    if len(bucket_roots) != BUCKETS:
        raise ProofInvalid("buckets_invalid", f"the top of the tree has {BUCKETS} bucket roots")
    levels = [list(bucket_roots)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below), 2)])
    return levels


def top_path(bucket: int, levels: Sequence[Sequence[bytes]]) -> list[bytes]:
    """The 12 siblings from a bucket's root up to the root."""
    return [levels[depth][(bucket >> depth) ^ 1] for depth in range(BUCKET_BITS)]


def root_from_top_path(bucket: int, bucket_root: bytes, path: Sequence[bytes]) -> bytes:
    if len(path) != BUCKET_BITS:
        raise ProofInvalid("path_invalid", f"the top path has {BUCKET_BITS} hashes")
    node = bucket_root
    for depth, sibling in enumerate(path):
        node = node_hash(sibling, node) if (bucket >> depth) & 1 else node_hash(node, sibling)
    return node


def bucket_leaves(entries: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """One bucket's (name, leaf hash) pairs in tree order, from its (name, statement hash) pairs."""
    return [(name, leaf_hash(name, value)) for name, value in sorted(entries, key=lambda entry: entry[0].encode())]


@dataclass(frozen=True)
class Proof:
    """A name's inclusion proof: its bucket, its index among the bucket's ``size`` leaves, the bucket path and
    the top path."""

    bucket: int
    index: int
    size: int
    path: tuple[bytes, ...]
    top: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "index": self.index,
            "size": self.size,
            "path": [to_hex(node) for node in self.path],
            "top": [to_hex(node) for node in self.top],
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Proof":
        fields.check_keys(data, required={"bucket", "index", "size", "path", "top"}, invalid=_unparsable, what="proof")
        bucket = fields.integer(data["bucket"], "bucket", invalid=_unparsable, high=BUCKETS - 1)
        size = fields.integer(data["size"], "size", invalid=_unparsable, low=1)
        index = fields.integer(data["index"], "index", invalid=_unparsable, high=size - 1)
        path = fields.json_list(data["path"], "path", invalid=_unparsable, max_items=MAX_PATH)
        top = fields.json_list(data["top"], "top", invalid=_unparsable, max_items=BUCKET_BITS)
        return cls(bucket=bucket, index=index, size=size, path=_hashes(path, "path"), top=_hashes(top, "top"))


def _unparsable(field: str, problem: str) -> ProofInvalid:
    return ProofInvalid("proof_invalid", f"{field}: {problem}"[:200])


def _hashes(values: list[Any], field: str) -> tuple[bytes, ...]:
    try:
        nodes = tuple(from_hex(value) if isinstance(value, str) else b"" for value in values)
    except CodecError:
        raise _unparsable(field, "not 0x… hex") from None
    if any(len(node) != HASH_BYTES for node in nodes):
        raise _unparsable(field, "each hash is 32 bytes")
    return nodes


def proof_for(name: str, entries: Iterable[tuple[str, bytes]], levels: Sequence[Sequence[bytes]]) -> Proof:
    """The proof for ``name`` from its bucket's (name, statement hash) pairs and the top levels of the tree."""
    leaves = bucket_leaves(entries)
    names = [entry_name for entry_name, _leaf in leaves]
    if name not in names:
        raise ProofInvalid("not_in_directory", f"{name!r} is not in the directory at this cut-off")
    index = names.index(name)
    hashes = [leaf for _name, leaf in leaves]
    bucket = bucket_of(name)
    return Proof(bucket, index, len(hashes), tuple(audit_path(index, hashes)), tuple(top_path(bucket, levels)))


def verify_inclusion(*, root: bytes, name: str, value: bytes, proof: Proof) -> None:
    """Raise ``ProofInvalid`` unless ``proof`` shows ``name`` → ``value`` (a statement hash) under ``root``."""
    if proof.bucket != bucket_of(name):
        raise ProofInvalid("bucket_wrong", "the proof is for another bucket than the name's")
    bucket_root = root_from_path(proof.index, proof.size, leaf_hash(name, value), proof.path)
    if root_from_top_path(proof.bucket, bucket_root, proof.top) != root:
        raise ProofInvalid("root_mismatch", "the proof does not lead to the root")


class Directory:
    """The whole tree, built in memory from every (name, statement hash) pair: for a gateway's periodic root and
    for tests and vectors. A lookup's proof needs only ``proof_for`` and the stored top levels."""

    def __init__(self, entries: Iterable[tuple[str, bytes]]) -> None:
        self.buckets: list[list[tuple[str, bytes]]] = [[] for _ in range(BUCKETS)]
        for name, value in entries:
            self.buckets[bucket_of(name)].append((name, value))
        self.size = sum(len(bucket) for bucket in self.buckets)
        bucket_roots = [merkle_root([leaf for _name, leaf in bucket_leaves(bucket)]) for bucket in self.buckets]
        self.levels = top_levels(bucket_roots)
        self.root = self.levels[-1][0]

    def proof(self, name: str) -> Proof:
        return proof_for(name, self.buckets[bucket_of(name)], self.levels)


@dataclass(frozen=True)
class Root:
    """A directory root as gateways sign it and the chain carries it."""

    cutoff: int  # ms since the epoch: statements issued at or before it are in
    size: int  # names in the directory
    root: bytes

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "cutoff": self.cutoff, "size": self.size, "root": to_hex(self.root)}

    def canonical(self) -> bytes:
        """The bytes each gateway signs with its Maxima key."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> "Root":
        fields.check_header(data, None, required={"cutoff", "size", "root"}, invalid=_bad_root)
        cutoff = fields.integer(data["cutoff"], "cutoff", invalid=_bad_root)
        size = fields.integer(data["size"], "size", invalid=_bad_root)
        try:
            root = from_hex(data["root"]) if isinstance(data["root"], str) else b""
        except CodecError:
            root = b""
        if len(root) != HASH_BYTES:
            raise _bad_root("root", "a 32-byte hash as 0x… hex")
        return cls(cutoff=cutoff, size=size, root=root)


def _bad_root(field: str, problem: str) -> ProofInvalid:
    return ProofInvalid("root_invalid", f"{field}: {problem}"[:200])


def check_in_directory(*, root: Root, name: str, statement: NameStatement, proof: Mapping[str, Any] | Proof) -> None:
    """What a client checks of a lookup's answer against the root it read itself (from the chain): the proof
    shows this very statement for this name under that root. Raises ``ProofInvalid``."""
    parsed = proof if isinstance(proof, Proof) else Proof.from_dict(proof)
    if statement.name != name:
        raise ProofInvalid("name_wrong", "the statement is for another name")
    if statement.issued_at > root.cutoff:
        raise ProofInvalid("after_cutoff", "the statement was issued after the root's cut-off")
    verify_inclusion(root=root.root, name=name, value=statement_hash(statement), proof=parsed)


# A proof of absence carries the name's whole bucket: about n/4096 entries (244 at a million names, 2 441 at ten
# million); a client reads at most this many, far above what an honest gateway's directory will hold.
MAX_BUCKET_ENTRIES = 16_384


@dataclass(frozen=True)
class Absence:
    """A name's proof of absence: every (name, statement hash) of its bucket at the cut-off, in tree order, and the
    bucket's top path (the 12 siblings up to the root)."""

    entries: tuple[tuple[str, bytes], ...]
    top: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": [[name, to_hex(value)] for name, value in self.entries],
            "top": [to_hex(n) for n in self.top],
        }

    @classmethod
    def from_dict(cls, data: Any) -> "Absence":
        fields.check_keys(data, required={"entries", "top"}, invalid=_unparsable, what="bucket")
        raw = fields.json_list(data["entries"], "entries", invalid=_unparsable, max_items=MAX_BUCKET_ENTRIES)
        top = fields.json_list(data["top"], "top", invalid=_unparsable, max_items=BUCKET_BITS)
        if any(not (isinstance(item, list) and len(item) == 2 and _text(item[0])) for item in raw):
            raise _unparsable("entries", "each entry is [name, statement hash]")
        values = _hashes([value for _name, value in raw], "entries")
        entries = tuple((name, value) for (name, _raw), value in zip(raw, values, strict=True))
        return cls(entries=entries, top=_hashes(top, "top"))


def _text(value: Any) -> bool:
    """A string that is UTF-8 text (JSON may carry a lone surrogate, which has no bytes to hash)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def absence_for(name: str, entries: Iterable[tuple[str, bytes]], levels: Sequence[Sequence[bytes]]) -> Absence:
    """The proof that ``name`` is not in the directory, from its bucket's (name, statement hash) pairs and the top
    levels of the tree."""
    ordered = tuple(sorted(entries, key=lambda entry: entry[0].encode()))
    if any(entry_name == name for entry_name, _value in ordered):
        raise ProofInvalid("name_in_bucket", f"{name!r} is in the directory at this cut-off")
    return Absence(entries=ordered, top=tuple(top_path(bucket_of(name), levels)))


def check_absent(*, root: Root, name: str, absence: Mapping[str, Any] | Absence) -> None:
    """What a client checks of a ``not_in_directory`` answer that carries the name's bucket: the entries are in
    tree order, each once and each of the name's bucket, the name is not among them, and they and the top path
    lead to the root. Raises ``ProofInvalid``: then the gateway hides a name that is in the directory, or lies
    about the bucket."""
    parsed = absence if isinstance(absence, Absence) else Absence.from_dict(absence)
    bucket = bucket_of(name)
    names = [entry_name.encode() for entry_name, _value in parsed.entries]
    if any(later <= earlier for earlier, later in itertools.pairwise(names)):
        raise ProofInvalid("entries_unordered", "the bucket's entries are not in tree order, each name once")
    if any(bucket_of(entry_name) != bucket for entry_name, _value in parsed.entries):
        raise ProofInvalid("bucket_wrong", "an entry is of another bucket than the name's")
    if any(entry_name == name for entry_name, _value in parsed.entries):
        raise ProofInvalid("name_in_bucket", "the name is in its bucket: it is in the directory")
    bucket_root = merkle_root([leaf for _name, leaf in bucket_leaves(parsed.entries)])
    if root_from_top_path(bucket, bucket_root, parsed.top) != root.root:
        raise ProofInvalid("root_mismatch", "the bucket does not lead to the root: an entry is missing or changed")


MAX_SIGNERS = 32


@dataclass(frozen=True)
class Signer:
    """A gateway that signed a root: its Maxima identity key (0x… hex) and its ``maxsign`` signature."""

    key: str
    signature: bytes

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "signature": to_hex(self.signature)}


@dataclass(frozen=True)
class SignedRoot:
    """A root and the gateways that signed it: what the publisher puts on chain with the entry points."""

    root: Root
    signers: tuple[Signer, ...]

    def to_dict(self) -> dict[str, Any]:
        return {**self.root.to_dict(), "signers": [signer.to_dict() for signer in self.signers]}

    @classmethod
    def from_dict(cls, data: Any) -> "SignedRoot":
        if not isinstance(data, dict):
            raise _bad_root("root", "must be a JSON object")
        root = Root.from_dict({key: value for key, value in data.items() if key != "signers"})
        raw = fields.json_list(data.get("signers"), "signers", invalid=_bad_root, max_items=MAX_SIGNERS)
        signers = []
        for item in raw:
            fields.check_keys(item, required={"key", "signature"}, invalid=_bad_root, what="signer")
            try:
                key = canonical_public_key(item["key"])
                signature = from_hex(item["signature"]) if isinstance(item["signature"], str) else b""
            except CodecError:
                raise _bad_root("signers", "a key or a signature is not 0x… hex") from None
            if len(signature) != SIGNATURE_BYTES:
                raise _bad_root("signers", f"a signature is {SIGNATURE_BYTES} bytes")
            signers.append(Signer(key=key, signature=signature))
        return cls(root=root, signers=tuple(signers))

    def verified_signers(self) -> list[str]:
        """The keys whose signature over the root verifies (each once); the others are ignored."""
        message = self.root.canonical()
        verified: list[str] = []
        for signer in self.signers:
            if signer.key not in verified and signed_by(from_hex(signer.key), message, signer.signature):
                verified.append(signer.key)
        return verified
