"""The directory's Merkle tree (mns_client/protocol/transparency.py): roots, inclusion proofs and what a client
checks, held against RFC 9162's recursive definitions written out here independently."""

import hashlib
import random

import pytest

from mns_client.protocol import transparency as t
from mns_client.protocol.codecs import public_key_hex
from mns_client.protocol.crypto import generate_maxima_keypair
from mns_client.protocol.statements import NameStatement

OWNER = public_key_hex(generate_maxima_keypair()[1])


def rfc_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + rfc_mth(leaves[:k]) + rfc_mth(leaves[k:])).digest()


def rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1, recursively (leaf first)."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*rfc_path(m, leaves[:k]), rfc_mth(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), rfc_mth(leaves[:k])]


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 9, 16, 17, 100])
def test_the_bucket_tree_and_its_paths_are_rfc_9162s(size: int) -> None:
    leaves = [digest(f"leaf {i}") for i in range(size)]
    assert t.merkle_root(leaves) == rfc_mth(leaves)
    for index in range(size):
        path = t.audit_path(index, leaves)
        assert path == rfc_path(index, leaves)
        assert t.root_from_path(index, size, leaves[index], path) == rfc_mth(leaves)


def test_an_empty_bucket_hashes_to_the_hash_of_nothing() -> None:
    assert t.merkle_root([]) == hashlib.sha256(b"").digest()


def test_a_path_of_the_wrong_length_or_index_is_refused() -> None:
    leaves = [digest(f"leaf {i}") for i in range(5)]
    path = t.audit_path(2, leaves)
    with pytest.raises(t.ProofInvalid) as short:
        t.root_from_path(2, 5, leaves[2], path[:-1])
    assert short.value.code == "path_invalid"
    with pytest.raises(t.ProofInvalid) as long:
        t.root_from_path(2, 5, leaves[2], [*path, leaves[0]])
    assert long.value.code == "path_invalid"
    with pytest.raises(t.ProofInvalid) as outside:
        t.root_from_path(5, 5, leaves[2], path)
    assert outside.value.code == "index_invalid"


def test_every_name_of_a_directory_proves_its_own_value_and_no_other() -> None:
    rng = random.Random(7)
    entries = {f"name{i}": digest(f"statement {i} {rng.random()}") for i in range(3000)}
    directory = t.Directory(entries.items())
    assert directory.size == 3000
    for name in rng.sample(sorted(entries), 50):
        proof = t.Proof.from_dict(directory.proof(name).to_dict())  # through the wire form
        t.verify_inclusion(root=directory.root, name=name, value=entries[name], proof=proof)
        with pytest.raises(t.ProofInvalid) as other_value:
            t.verify_inclusion(root=directory.root, name=name, value=digest("another owner"), proof=proof)
        assert other_value.value.code == "root_mismatch"


def test_the_root_changes_with_any_one_value_and_not_with_the_order_given() -> None:
    entries = [(f"n{i}", digest(str(i))) for i in range(200)]
    root = t.Directory(entries).root
    assert t.Directory(reversed(entries)).root == root
    changed = [*entries[:-1], (entries[-1][0], digest("changed"))]
    assert t.Directory(changed).root != root
    assert t.Directory(entries[:-1]).root != root


def test_a_proof_of_another_bucket_is_refused() -> None:
    entries = [(f"n{i}", digest(str(i))) for i in range(50)]
    directory = t.Directory(entries)
    proof = directory.proof("n1")
    other = next(name for name, _ in entries if t.bucket_of(name) != proof.bucket)
    with pytest.raises(t.ProofInvalid) as wrong:
        t.verify_inclusion(root=directory.root, name=other, value=digest("1"), proof=proof)
    assert wrong.value.code == "bucket_wrong"


def test_a_name_not_in_the_directory_has_no_proof() -> None:
    with pytest.raises(t.ProofInvalid) as missing:
        t.Directory([("alice", digest("a"))]).proof("bob")
    assert missing.value.code == "not_in_directory"


def same_bucket(count: int, bucket: int) -> list[str]:
    """The first ``count`` names ``n<i>`` of ``bucket``."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        if t.bucket_of(f"n{i}") == bucket:
            found.append(f"n{i}")
        i += 1
    return found


def crowded() -> tuple[t.Directory, list[str], str]:
    """A directory with a bucket of 8 names among 500 others, and a 9th name of that bucket that is not in it."""
    names = same_bucket(9, 7)
    entries = [(f"other{i}", digest(f"o{i}")) for i in range(500)] + [(n, digest(n)) for n in names[:8]]
    return t.Directory(entries), names[:8], names[8]


def test_every_name_not_in_a_directory_is_proven_absent_through_the_wire_form() -> None:
    directory = t.Directory((f"name{i}", digest(str(i))) for i in range(3000))
    root = t.Root(cutoff=1, size=directory.size, root=directory.root)
    sizes = set()
    for i in range(200):
        name = f"absent{i}"
        absence = t.absence_for(name, directory.buckets[t.bucket_of(name)], directory.levels).to_dict()
        sizes.add(len(absence["entries"]))
        t.check_absent(root=root, name=name, absence=absence)
    assert 0 in sizes  # an empty bucket
    assert max(sizes) >= 2  # and crowded ones


def test_a_name_that_is_in_the_directory_has_no_proof_of_absence() -> None:
    directory, names, _absent = crowded()
    with pytest.raises(t.ProofInvalid) as present:
        t.absence_for(names[3], directory.buckets[7], directory.levels)
    assert present.value.code == "name_in_bucket"


def test_a_gateway_hiding_a_name_is_caught_whether_it_leaves_the_name_out_or_shows_it() -> None:
    directory, names, _absent = crowded()
    root = t.Root(cutoff=1, size=directory.size, root=directory.root)
    hidden = names[3]
    whole = t.Absence(
        entries=tuple(sorted(directory.buckets[7], key=lambda e: e[0].encode())),
        top=tuple(t.top_path(7, directory.levels)),
    )
    left_out = t.Absence(entries=tuple(e for e in whole.entries if e[0] != hidden), top=whole.top)

    with pytest.raises(t.ProofInvalid) as missing:
        t.check_absent(root=root, name=hidden, absence=left_out.to_dict())
    with pytest.raises(t.ProofInvalid) as shown:
        t.check_absent(root=root, name=hidden, absence=whole.to_dict())

    assert (missing.value.code, shown.value.code) == ("root_mismatch", "name_in_bucket")


def test_a_stray_entry_a_changed_top_a_changed_value_or_entries_out_of_order_are_refused() -> None:
    directory, _names, absent = crowded()
    root = t.Root(cutoff=1, size=directory.size, root=directory.root)
    honest = t.absence_for(absent, directory.buckets[7], directory.levels)
    t.check_absent(root=root, name=absent, absence=honest)
    stray = next((n, v) for n, v in directory.buckets[t.bucket_of("other0")] if n == "other0")
    cases = {
        "bucket_wrong": {"entries": sorted([*honest.entries, stray], key=lambda e: e[0].encode())},
        "root_mismatch": {"top": (*honest.top[:-1], digest("top"))},
        "entries_unordered": {"entries": tuple(reversed(honest.entries))},
        "path_invalid": {"top": honest.top[:-1]},
    }
    for code, change in cases.items():
        forged = t.Absence(**{"entries": honest.entries, "top": honest.top, **change})
        with pytest.raises(t.ProofInvalid) as refused:
            t.check_absent(root=root, name=absent, absence=forged.to_dict())
        assert refused.value.code == code
    changed = t.Absence(entries=((honest.entries[0][0], digest("x")), *honest.entries[1:]), top=honest.top)
    with pytest.raises(t.ProofInvalid) as value:
        t.check_absent(root=root, name=absent, absence=changed)
    assert value.value.code == "root_mismatch"


@pytest.mark.parametrize(
    "change",
    [
        {"entries": "n1"},
        {"entries": [["n1"]]},
        {"entries": [["n1", "0x00"]]},
        {"entries": [[1, "0x" + "00" * 32]]},
        {"entries": [["\ud800", "0x" + "00" * 32]]},
        {"entries": [["n1", "0x" + "00" * 32]] * (t.MAX_BUCKET_ENTRIES + 1)},
        {"top": ["0x" + "00" * 32] * 13},
        {"extra": 1},
    ],
)
def test_a_malformed_bucket_is_refused_as_such(change: dict) -> None:
    directory = t.Directory([("alice", digest("a"))])
    absence = {**t.absence_for("bob", directory.buckets[t.bucket_of("bob")], directory.levels).to_dict(), **change}
    with pytest.raises(t.ProofInvalid) as refused:
        t.check_absent(root=t.Root(cutoff=1, size=1, root=directory.root), name="bob", absence=absence)
    assert refused.value.code == "proof_invalid"


@pytest.mark.parametrize(
    "change",
    [
        {"bucket": 4096},
        {"index": 5, "size": 5},
        {"path": ["0x00"]},
        {"top": ["0x" + "00" * 32] * 13},
        {"extra": 1},
    ],
)
def test_a_malformed_proof_is_refused_as_such(change: dict) -> None:
    proof = {**t.Directory([("alice", digest("a"))]).proof("alice").to_dict(), **change}
    with pytest.raises(t.ProofInvalid) as refused:
        t.Proof.from_dict(proof)
    assert refused.value.code == "proof_invalid"


def test_a_root_reads_back_from_its_wire_form_and_refuses_garbage() -> None:
    root = t.Root(cutoff=1_764_000_000_000, size=3, root=digest("r"))
    assert t.Root.from_dict(root.to_dict()) == root
    assert root.canonical() == (
        b'{"cutoff":1764000000000,"root":"' + root.to_dict()["root"].encode() + b'","size":3,"v":1}'
    )
    for bad in ({**root.to_dict(), "root": "0x00"}, {**root.to_dict(), "v": 2}, {**root.to_dict(), "size": -1}):
        with pytest.raises(t.ProofInvalid) as refused:
            t.Root.from_dict(bad)
        assert refused.value.code == "root_invalid"


def statement(name: str, seq: int, issued_at: int) -> NameStatement:
    return NameStatement(
        v=1,
        op="register",
        name=name,
        owner=OWNER,
        seq=seq,
        issued_at=issued_at,
        gateway=OWNER,
        box_key="0x" + "11" * 32,
    )


def test_a_client_accepts_the_statement_the_root_holds_and_nothing_issued_after_its_cutoff() -> None:
    held = statement("alice", 1, 1000)
    directory = t.Directory([("alice", t.statement_hash(held)), ("bob", digest("b"))])
    root = t.Root(cutoff=2000, size=directory.size, root=directory.root)
    proof = directory.proof("alice").to_dict()
    t.check_in_directory(root=root, name="alice", statement=held, proof=proof)
    with pytest.raises(t.ProofInvalid) as newer:
        t.check_in_directory(root=root, name="alice", statement=statement("alice", 2, 3000), proof=proof)
    assert newer.value.code == "after_cutoff"
    with pytest.raises(t.ProofInvalid) as forged:
        t.check_in_directory(root=root, name="alice", statement=statement("alice", 2, 1500), proof=proof)
    assert forged.value.code == "root_mismatch"


def test_a_signed_root_rides_in_the_bulletin_and_only_good_signatures_count() -> None:
    from mns_client.protocol.crypto import maxsign
    from mns_client.protocol.entrypoints import Bulletin, parse_bulletin

    private, public = generate_maxima_keypair()
    other_private, other_public = generate_maxima_keypair()
    root = t.Root(cutoff=5000, size=2, root=digest("r"))
    signed = t.SignedRoot(
        root=root,
        signers=(
            t.Signer(key=public_key_hex(public), signature=maxsign(private, root.canonical())),
            t.Signer(key=public_key_hex(other_public), signature=maxsign(other_private, b"another root")),
        ),
    )
    bulletin = Bulletin(seq=3, issued_at=6000, entries=(), root=signed)
    read = parse_bulletin(bulletin.encode())
    assert read == bulletin
    assert read.root is not None
    assert read.root.verified_signers() == [public_key_hex(public)]
    assert parse_bulletin(Bulletin(seq=3, issued_at=6000, entries=()).encode()).root is None


def test_a_bulletin_with_a_malformed_root_is_refused() -> None:
    from mns_client.protocol.codecs import canonical_json
    from mns_client.protocol.entrypoints import BulletinInvalid, parse_bulletin

    body = {"v": 1, "seq": 1, "issued_at": 1, "entries": [], "root": {"v": 1, "cutoff": 1, "size": 1, "root": "0x00"}}
    with pytest.raises(BulletinInvalid) as refused:
        parse_bulletin(canonical_json(body))
    assert refused.value.code == "unparsable"
