"""Write ``docs/vectors/transparency.json``: a small directory, its tree, a signed root, proofs, broken proofs and
lookup answers with the outcome a client must reach (docs/protocol.md, "Transparency").

Run from the repository root: ``.venv/bin/python docs/vectors/make_transparency_vectors.py``. The output is
committed; ``mns_client/tests/test_transparency_vectors.py`` checks that this script reproduces it byte for byte
(SHA-256 and PKCS#1 v1.5 signatures are deterministic) and that every vector holds, and
``dapp/test/transparency.test.mjs`` checks every vector in JavaScript.

Keys: every name is owned by the pair of ``maxima/30-maxcreate-keypair.json``; the root is signed by the pairs of
``55-`` and ``56-`` (two gateways), and lists a third signer (the ``30-`` key) whose signature is over another
message, so it must not count. The forged statements are signed by the ``55-`` key: valid signatures by a key that
does not hold the name. The twelve names are the first ``user<i>`` that fill buckets with 5, 3, 2, 1 and 1 leaves;
the names proven absent are the first ``absent<i>`` of the bucket of five and of an empty bucket.
"""

import copy
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "docs" / "vectors" / "transparency.json"
ISSUED_AT = 1795660441638  # node A's clock in fixture 61 (2026-11-26), as in statements.json
CUTOFF = ISSUED_AT + 3_600_000  # an hour after the first registration
SIZES = (5, 3, 2, 1, 1)


def _names() -> list[list[str]]:
    """Names grouped by bucket, one group per size of ``SIZES``: the first ``user<i>`` that fill them."""
    from mns_client.protocol.transparency import bucket_of

    seen: dict[int, list[str]] = {}
    i = 0
    while not any(len(names) >= max(SIZES) for names in seen.values()):
        seen.setdefault(bucket_of(f"user{i}"), []).append(f"user{i}")
        i += 1
    groups: list[list[str]] = []
    used: set[int] = set()
    for size in SIZES:
        bucket = next(b for b, names in seen.items() if len(names) >= size and b not in used)
        used.add(bucket)
        groups.append(seen[bucket][:size])
    return groups


def _absent_in(bucket: int, taken: set[str]) -> str:
    """The first ``absent<i>`` of ``bucket`` (a name that is not in the directory)."""
    from mns_client.protocol.transparency import bucket_of

    return next(
        f"absent{i}" for i in range(1_000_000) if bucket_of(f"absent{i}") == bucket and f"absent{i}" not in taken
    )


def _refusal(t: Any, root: Any, name: str, statement: Any, proof: Any) -> str | None:
    """The code ``check_in_directory`` refuses a broken proof with (None: accepted)."""
    try:
        t.check_in_directory(root=root, name=name, statement=statement.statement, proof=proof)
    except t.ProofInvalid as refused:
        return refused.code
    return None


def build() -> str:
    """The JSON text of the vectors file (with its final newline)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from nacl.public import PrivateKey

    from mns_client.protocol import lookup_proof
    from mns_client.protocol import transparency as t
    from mns_client.protocol.codecs import from_hex, to_hex
    from mns_client.protocol.crypto import maxsign
    from mns_client.protocol.statements import NameStatement, SignedStatement
    from testsupport import maxima_fixture

    def pair(prefix: str) -> tuple[str, bytes]:
        keypair = maxima_fixture(prefix)["parsed"]["response"]
        return keypair["publickey"], from_hex(keypair["privatekey"])

    owner, owner_private = pair("30-")
    (gateway_1, gateway_1_private), (gateway_2, gateway_2_private) = pair("55-"), pair("56-")
    forger, forger_private = gateway_1, gateway_1_private
    gateway = maxima_fixture("01-")["parsed"]["response"]["publickey"]
    box = to_hex(bytes(PrivateKey(bytes([1]) * 32).public_key))
    box_2 = to_hex(bytes(PrivateKey(bytes([2]) * 32).public_key))

    def signed(
        name: str, seq: int, issued_at: int, *, op: str = "register", key: str = owner, **extra: Any
    ) -> SignedStatement:
        statement = NameStatement(
            op=op,
            name=name,
            owner=key,
            box_key=box if seq == 1 else box_2,
            seq=seq,
            issued_at=issued_at,
            gateway=gateway,
            **extra,
        )
        private = owner_private if key == owner else forger_private
        return SignedStatement(statement=statement, signature=maxsign(private, statement.canonical()))

    groups = _names()
    names = [name for group in groups for name in group]
    held = {name: signed(name, 1, ISSUED_AT + 1000 * i) for i, name in enumerate(names)}
    changed = names[1]  # updated before the cut-off: seq 2 is in the directory
    held[changed] = signed(changed, 2, ISSUED_AT + 600_000, op="update")
    directory = t.Directory((name, t.statement_hash(s.statement)) for name, s in held.items())
    root = t.Root(cutoff=CUTOFF, size=directory.size, root=directory.root)
    signed_root = t.SignedRoot(
        root=root,
        signers=(
            t.Signer(key=gateway_1, signature=maxsign(gateway_1_private, root.canonical())),
            t.Signer(key=gateway_2, signature=maxsign(gateway_2_private, root.canonical())),
            t.Signer(key=owner, signature=maxsign(owner_private, b"not this root")),
        ),
    )
    assert signed_root.verified_signers() == [gateway_1, gateway_2]

    entries = []
    for name in sorted(names, key=lambda n: (t.bucket_of(n), n.encode())):
        value = t.statement_hash(held[name].statement)
        entries.append(
            {
                "name": name,
                "bucket": t.bucket_of(name),
                "signed": held[name].to_dict(),
                "statement_hash": to_hex(value),
                "leaf": to_hex(t.leaf_hash(name, value)),
                "proof": directory.proof(name).to_dict(),
            }
        )
    bucket_roots = {str(t.bucket_of(group[0])): to_hex(directory.levels[0][t.bucket_of(group[0])]) for group in groups}

    # Broken proofs, each with the code check_in_directory refuses it with.
    five = sorted(groups[0], key=str.encode)  # index 0 and 1 of the bucket of five
    first, second = five[0], five[1]
    proof = directory.proof(first).to_dict()
    other_directory = t.Directory(
        [*((n, t.statement_hash(s.statement)) for n, s in held.items()), ("user-x", b"\0" * 32)]
    )
    forged_statement = signed(first, 2, ISSUED_AT + 5000, op="register", key=forger)
    late = signed(first, 2, CUTOFF + 1, op="update")

    def tampered(change: dict[str, Any]) -> dict[str, Any]:
        return {**copy.deepcopy(proof), **change}

    flipped = list(proof["path"])
    flipped[0] = "0x" + ("%02X" % (int(flipped[0][2:4], 16) ^ 1)) + flipped[0][4:]
    single = groups[3][0]
    invalid_cases: list[tuple[str, str, SignedStatement, dict[str, Any], str]] = [
        ("a bucket path with one bit flipped", first, held[first], tampered({"path": flipped}), "root_mismatch"),
        ("a bucket path one hash short", first, held[first], tampered({"path": proof["path"][:-1]}), "path_invalid"),
        (
            "a bucket path one hash too long",
            first,
            held[first],
            tampered({"path": [*proof["path"], proof["top"][0]]}),
            "path_invalid",
        ),
        ("an index outside the bucket", first, held[first], tampered({"index": 5}), "proof_invalid"),
        ("another leaf's index in the same bucket", first, held[first], tampered({"index": 1}), "root_mismatch"),
        (
            "the proof of another name of the same bucket",
            first,
            held[first],
            directory.proof(second).to_dict(),
            "root_mismatch",
        ),
        (
            "a proof claiming another bucket",
            first,
            held[first],
            tampered({"bucket": (proof["bucket"] + 1) % t.BUCKETS}),
            "bucket_wrong",
        ),
        ("a top path of 11 hashes", first, held[first], tampered({"top": proof["top"][:-1]}), "path_invalid"),
        (
            "a top path with a hash changed",
            first,
            held[first],
            tampered({"top": [*proof["top"][:-1], to_hex(b"\1" * 32)]}),
            "root_mismatch",
        ),
        (
            "a hash that is not 32 bytes",
            first,
            held[first],
            tampered({"path": ["0x00", *proof["path"][1:]]}),
            "proof_invalid",
        ),
        ("a proof with an unknown field", first, held[first], tampered({"extra": 1}), "proof_invalid"),
        (
            "another owner's statement for the name (validly signed by that key) with the real proof",
            first,
            forged_statement,
            proof,
            "root_mismatch",
        ),
        ("a later statement of the name, issued after the cut-off", first, late, proof, "after_cutoff"),
        ("the statement of another name", first, held[second], proof, "name_wrong"),
        (
            "a proof from another directory (one more name), for the same name and statement",
            first,
            held[first],
            other_directory.proof(first).to_dict(),
            "root_mismatch",
        ),
        (
            "a bucket of one leaf claimed as the second of two, with no path",
            single,
            held[single],
            {**directory.proof(single).to_dict(), "index": 1, "size": 2},
            "path_invalid",
        ),
    ]
    invalid = []
    for description, name, statement, bad_proof, code in invalid_cases:
        if _refusal(t, root, name, statement, bad_proof) != code:
            raise AssertionError(f"{description}: not refused with {code}")
        invalid.append(
            {"description": description, "name": name, "signed": statement.to_dict(), "proof": bad_proof, "error": code}
        )

    # Proofs of absence: a name's whole bucket at the cut-off, with the code check_absent refuses it with (None:
    # the name is proven absent).
    five_bucket = t.bucket_of(first)
    absentee = _absent_in(five_bucket, set(names))
    empty_bucket = next(b for b in range(t.BUCKETS) if not directory.buckets[b])
    lonely = _absent_in(empty_bucket, set(names))
    honest_absence = t.absence_for(absentee, directory.buckets[five_bucket], directory.levels).to_dict()
    hidden = {**honest_absence, "entries": [e for e in honest_absence["entries"] if e[0] != first]}
    other_bucket_name = groups[1][0]
    stray = [other_bucket_name, to_hex(t.statement_hash(held[other_bucket_name].statement))]
    wrong_bucket = {
        **honest_absence,
        "entries": sorted([*honest_absence["entries"], stray], key=lambda e: e[0].encode()),
    }
    tampered_top = {**honest_absence, "top": [*honest_absence["top"][:-1], to_hex(b"\1" * 32)]}
    unordered = {**honest_absence, "entries": list(reversed(honest_absence["entries"]))}
    changed_value = copy.deepcopy(honest_absence)
    changed_value["entries"][0][1] = to_hex(b"\2" * 32)
    absence_cases: list[tuple[str, str, dict[str, Any], str | None]] = [
        ("a name absent from a bucket of five", absentee, honest_absence, None),
        (
            "a name absent from an empty bucket",
            lonely,
            t.absence_for(lonely, directory.buckets[empty_bucket], directory.levels).to_dict(),
            None,
        ),
        ("a hidden name: its bucket with the name left out", first, hidden, "root_mismatch"),
        ("a hidden name: its whole bucket, the name in it", first, honest_absence, "name_in_bucket"),
        ("an entry of another bucket added", absentee, wrong_bucket, "bucket_wrong"),
        ("a top path with a hash changed", absentee, tampered_top, "root_mismatch"),
        ("a top path of 11 hashes", absentee, {**honest_absence, "top": honest_absence["top"][:-1]}, "path_invalid"),
        ("an entry's statement hash changed", absentee, changed_value, "root_mismatch"),
        ("the entries out of tree order", absentee, unordered, "entries_unordered"),
        ("an entry that is not [name, hash]", absentee, {**honest_absence, "entries": [["x"]]}, "proof_invalid"),
        ("a bucket with an unknown field", absentee, {**honest_absence, "extra": 1}, "proof_invalid"),
    ]
    absent = []
    for description, name, bucket, code in absence_cases:
        try:
            t.check_absent(root=root, name=name, absence=bucket)
            refused = None
        except t.ProofInvalid as bad:
            refused = bad.code
        if refused != code:
            raise AssertionError(f"{description}: {refused} instead of {code}")
        absent.append({"description": description, "name": name, "bucket": bucket, "error": code})

    # Lookup answers: the record's current statement, the gateway's transparency object, the outcome.
    def answer(name: str, statement: SignedStatement, *, current: bool, the_root: t.Root = root, the_proof: Any = None):
        return {
            "root": the_root.to_dict(),
            "statement": statement.to_dict(),
            "proof": the_proof if the_proof is not None else directory.proof(name).to_dict(),
            "current": current,
        }

    later = signed(changed, 3, CUTOFF + 60_000, op="update")
    late = signed(changed, 3, CUTOFF - 1000, op="update")  # dated before the cut-off, reached the network after
    newcomer = signed("newcomer", 1, CUTOFF + 1)
    backdated = signed("latecomer", 1, CUTOFF - 1)
    forged_directory = t.Directory(
        [
            *((n, t.statement_hash(s.statement)) for n, s in held.items() if n != first),
            (first, t.statement_hash(forged_statement.statement)),
        ]
    )
    forged_root = t.Root(cutoff=CUTOFF, size=forged_directory.size, root=forged_directory.root)
    taken = signed(changed, 3, CUTOFF + 60_000, op="update", key=forger)
    bad_signature = SignedStatement(statement=held[first].statement, signature=held[second].signature)
    answer_cases: list[tuple[str, str, SignedStatement, Any, bool, str, str | None]] = [
        (
            "the current statement, proven",
            first,
            held[first],
            answer(first, held[first], current=True),
            True,
            "in_directory",
            None,
        ),
        (
            "seq 2, updated before the cut-off, proven",
            changed,
            held[changed],
            answer(changed, held[changed], current=True),
            True,
            "in_directory",
            None,
        ),
        (
            "changed since: seq 2 proven, seq 3 issued after the cut-off by the same owner",
            changed,
            later,
            answer(changed, held[changed], current=False),
            True,
            "changed_since",
            None,
        ),
        (
            "changed since: seq 3 dated before the cut-off, which reached the network after the root was made",
            changed,
            late,
            answer(changed, held[changed], current=False),
            True,
            "changed_since",
            None,
        ),
        (
            "registered after the cut-off: not in the directory yet",
            "newcomer",
            newcomer,
            {"status": "not_in_directory", "root": root.to_dict()},
            True,
            "not_yet",
            None,
        ),
        (
            "said not to be in the directory though dated before the cut-off: not proven",
            "latecomer",
            backdated,
            {"status": "not_in_directory", "root": root.to_dict()},
            True,
            "not_in_directory",
            None,
        ),
        (
            "registered after the cut-off, its bucket at the cut-off shows it absent",
            absentee,
            signed(absentee, 1, CUTOFF + 1),
            {"status": "not_in_directory", "root": root.to_dict(), "bucket": honest_absence},
            True,
            "not_yet",
            None,
        ),
        (
            "dated before the cut-off, but proven absent by its bucket (it reached the network late)",
            absentee,
            signed(absentee, 1, CUTOFF - 1),
            {"status": "not_in_directory", "root": root.to_dict(), "bucket": honest_absence},
            True,
            "not_in_directory",
            None,
        ),
        (
            "a hidden name: another key's later registration served as not yet, its bucket without the name",
            first,
            signed(first, 1, CUTOFF + 1, key=forger),
            {"status": "not_in_directory", "root": root.to_dict(), "bucket": hidden},
            True,
            "proof_invalid",
            "root_mismatch",
        ),
        (
            "a hidden name: another key's later registration served as not yet, its bucket showing the name",
            first,
            signed(first, 1, CUTOFF + 1, key=forger),
            {"status": "not_in_directory", "root": root.to_dict(), "bucket": honest_absence},
            True,
            "proof_invalid",
            "name_in_bucket",
        ),
        (
            "an absence whose bucket holds an entry of another bucket",
            absentee,
            signed(absentee, 1, CUTOFF + 1),
            {"status": "not_in_directory", "root": root.to_dict(), "bucket": wrong_bucket},
            True,
            "proof_invalid",
            "bucket_wrong",
        ),
        (
            "an absence with a tampered top path",
            absentee,
            signed(absentee, 1, CUTOFF + 1),
            {"status": "not_in_directory", "root": root.to_dict(), "bucket": tampered_top},
            True,
            "proof_invalid",
            "root_mismatch",
        ),
        (
            "the gateway has no root for the chain's cut-off yet",
            first,
            held[first],
            {"status": "no_root"},
            True,
            "no_proof",
            None,
        ),
        ("no transparency object at all", first, held[first], None, True, "no_proof", None),
        ("no root on chain yet", first, held[first], answer(first, held[first], current=True), False, "no_root", None),
        (
            "a lying gateway: another owner key, validly signed by that key, proven in the gateway's own directory",
            first,
            forged_statement,
            answer(
                first,
                forged_statement,
                current=True,
                the_root=forged_root,
                the_proof=forged_directory.proof(first).to_dict(),
            ),
            True,
            "root_differs",
            None,
        ),
        (
            "a root of another cut-off (the gateway, or the reader's node, has not read the newest bulletin, or lies)",
            first,
            held[first],
            answer(
                first, held[first], current=True, the_root=t.Root(cutoff=CUTOFF - 1, size=root.size, root=root.root)
            ),
            True,
            "root_differs",
            "cutoff_differs",
        ),
        (
            "a lying gateway: another owner key, validly signed by that key, with the real directory's proof",
            first,
            forged_statement,
            answer(first, forged_statement, current=True),
            True,
            "proof_invalid",
            "root_mismatch",
        ),
        (
            "a proof for another root, under the chain's root",
            first,
            held[first],
            answer(first, held[first], current=True, the_proof=other_directory.proof(first).to_dict()),
            True,
            "proof_invalid",
            "root_mismatch",
        ),
        (
            "a tampered path",
            first,
            held[first],
            answer(first, held[first], current=True, the_proof=tampered({"path": flipped})),
            True,
            "proof_invalid",
            "root_mismatch",
        ),
        (
            "the proven statement's signature is another statement's",
            first,
            held[first],
            {**answer(first, held[first], current=True), "statement": bad_signature.to_dict()},
            True,
            "statement_invalid",
            "signature_invalid",
        ),
        (
            "current, but the gateway serves another statement than the one it proves",
            changed,
            later,
            answer(changed, held[changed], current=True),
            True,
            "not_current",
            None,
        ),
        (
            "not current, but the served statement is not a later one (same seq as the proven one)",
            first,
            held[first],
            answer(first, held[first], current=False),
            True,
            "not_current",
            None,
        ),
        (
            "changed since, to another key, with no chain of statements leading there",
            changed,
            taken,
            answer(changed, held[changed], current=False),
            True,
            "not_current",
            "statement_wrong_owner",
        ),
        (
            "a transparency object without its current flag",
            first,
            held[first],
            {k: v for k, v in answer(first, held[first], current=True).items() if k != "current"},
            True,
            "answer_invalid",
            None,
        ),
    ]
    # A name that changed hands since the cut-off: the old owner's offer (seq 3), the new key's accept (seq 4). The
    # history (the gateway's GET …/history) must show the chain from the proven statement to the current one.
    offer = signed(changed, 3, CUTOFF + 1000, op="transfer", to=forger, expires_at=CUTOFF + 86_400_000)
    accept = signed(changed, 4, CUTOFF + 2000, op="accept", key=forger, accepts=3)
    histories = {
        "changed hands since: the history shows the offer and the accept": [held[changed], offer, accept],
        "changed hands since, but the history leaves the offer out": [held[changed], accept],
    }
    answer_cases += [
        (
            "changed hands since: the history shows the offer and the accept",
            changed,
            accept,
            answer(changed, held[changed], current=False),
            True,
            "changed_since",
            None,
        ),
        (
            "changed hands since, but the history leaves the offer out",
            changed,
            accept,
            answer(changed, held[changed], current=False),
            True,
            "not_current",
            "transfer_not_pending",
        ),
    ]
    answers = []
    for description, name, current, transparency, on_chain, status, reason in answer_cases:
        history = histories.get(description, [])
        outcome = lookup_proof.check_lookup(
            name=name,
            current=current,
            answer=transparency,
            chain_root=signed_root if on_chain else None,
            between=lambda history=history: history,
        )
        assert (outcome.status, outcome.reason) == (status, reason), (description, outcome)
        answers.append(
            {
                "description": description,
                "name": name,
                "current": current.to_dict(),
                "transparency": transparency,
                "history": [entry.to_dict() for entry in history],
                "root_on_chain": on_chain,
                "status": status,
                "reason": reason,
                "failed": outcome.failed,
            }
        )

    document = {
        "description": (
            "The directory's Merkle tree (docs/protocol.md, 'Transparency'): 12 names in buckets of 5, 3, 2, 1 and 1 "
            f"leaves, owned by the key of maxima/30-maxcreate-keypair.json ({changed}'s seq 2 is an update before the "
            "cut-off); the root signed by the keys of maxima/55- and 56- (a third listed signer's signature is over "
            "another message and must not count); each name's proof; broken proofs with the error code "
            "check_in_directory refuses them with; proofs of absence (a name's whole bucket) with the code "
            "check_absent refuses them with (null: proven absent); lookup answers (the record's current statement "
            "and the gateway's transparency object, and the name's history when the client must walk it) with the "
            "outcome "
            "a client must reach against the signed root, or with no root on chain when root_on_chain is false. "
            "Made by make_transparency_vectors.py."
        ),
        "buckets": t.BUCKETS,
        "empty_bucket_root": to_hex(t.EMPTY),
        "bucket_roots": bucket_roots,
        "root": root.to_dict(),
        "root_canonical": root.canonical().decode(),
        "signed_root": signed_root.to_dict(),
        "verified_signers": signed_root.verified_signers(),
        "entries": entries,
        "invalid": invalid,
        "absent": absent,
        "answers": answers,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(build(), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")
