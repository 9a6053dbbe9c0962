"""docs/vectors/transparency.json: its script reproduces it byte for byte, and every vector holds in Python (the
Dapp's dapp/test/transparency.test.mjs checks the same file in JavaScript)."""

import importlib.util
import json

import pytest

from mns_client.protocol import lookup_proof
from mns_client.protocol import transparency as t
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.statements import SignedStatement
from testsupport import REPO

VECTORS = REPO / "docs" / "vectors" / "transparency.json"
DATA = json.loads(VECTORS.read_text(encoding="utf-8"))
ROOT = t.Root.from_dict(DATA["root"])
SIGNED_ROOT = t.SignedRoot.from_dict(DATA["signed_root"])


def test_the_script_reproduces_the_vectors_byte_for_byte() -> None:
    path = REPO / "docs" / "vectors" / "make_transparency_vectors.py"
    spec = importlib.util.spec_from_file_location("make_transparency_vectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.build() == VECTORS.read_text(encoding="utf-8")


def test_the_directory_has_buckets_of_one_two_three_and_five_leaves() -> None:
    sizes = sorted(sum(1 for e in DATA["entries"] if e["bucket"] == int(b)) for b in DATA["bucket_roots"])
    assert sizes == [1, 1, 2, 3, 5]
    assert DATA["empty_bucket_root"] == to_hex(t.EMPTY)


@pytest.mark.parametrize("entry", DATA["entries"], ids=lambda e: e["name"])
def test_each_entry_hashes_and_proves_as_written(entry: dict) -> None:
    signed = SignedStatement.from_dict(entry["signed"])
    signed.verify()
    value = t.statement_hash(signed.statement)

    assert to_hex(value) == entry["statement_hash"]
    assert to_hex(t.leaf_hash(entry["name"], value)) == entry["leaf"]
    assert t.bucket_of(entry["name"]) == entry["bucket"] == entry["proof"]["bucket"]
    t.check_in_directory(root=ROOT, name=entry["name"], statement=signed.statement, proof=entry["proof"])


def test_the_bucket_roots_and_the_root_are_the_entries_tree() -> None:
    entries = [(e["name"], from_hex(e["statement_hash"])) for e in DATA["entries"]]
    directory = t.Directory(entries)

    assert {str(b): to_hex(directory.levels[0][int(b)]) for b in DATA["bucket_roots"]} == DATA["bucket_roots"]
    assert (directory.root, directory.size) == (ROOT.root, ROOT.size)
    assert ROOT.canonical().decode() == DATA["root_canonical"]


def test_only_the_two_gateways_signatures_over_the_root_count() -> None:
    assert len(SIGNED_ROOT.signers) == 3
    assert SIGNED_ROOT.verified_signers() == DATA["verified_signers"]
    assert len(DATA["verified_signers"]) == 2


@pytest.mark.parametrize("vector", DATA["invalid"], ids=lambda v: v["description"])
def test_each_broken_proof_is_refused_with_its_code(vector: dict) -> None:
    statement = SignedStatement.from_dict(vector["signed"]).statement

    with pytest.raises(t.ProofInvalid) as refused:
        t.check_in_directory(root=ROOT, name=vector["name"], statement=statement, proof=vector["proof"])

    assert refused.value.code == vector["error"]


@pytest.mark.parametrize("vector", DATA["absent"], ids=lambda v: v["description"])
def test_each_proof_of_absence_holds_or_is_refused_with_its_code(vector: dict) -> None:
    if vector["error"] is None:
        t.check_absent(root=ROOT, name=vector["name"], absence=vector["bucket"])
        return
    with pytest.raises(t.ProofInvalid) as refused:
        t.check_absent(root=ROOT, name=vector["name"], absence=vector["bucket"])

    assert refused.value.code == vector["error"]


def test_the_absence_vectors_hold_honest_absences_hidden_names_a_stray_entry_and_a_tampered_top() -> None:
    errors = {vector["error"] for vector in DATA["absent"]}
    assert {None, "root_mismatch", "name_in_bucket", "bucket_wrong"} <= errors
    assert any(vector["bucket"]["entries"] == [] and vector["error"] is None for vector in DATA["absent"])


@pytest.mark.parametrize("vector", DATA["answers"], ids=lambda v: v["description"])
def test_each_lookup_answer_reaches_its_outcome(vector: dict) -> None:
    current = SignedStatement.from_dict(vector["current"])
    current.verify()

    outcome = lookup_proof.check_lookup(
        name=vector["name"],
        current=current,
        answer=vector["transparency"],
        chain_root=SIGNED_ROOT if vector["root_on_chain"] else None,
        between=lambda: [SignedStatement.from_dict(entry) for entry in vector["history"]],
    )

    assert (outcome.status, outcome.reason, outcome.failed) == (vector["status"], vector["reason"], vector["failed"])
    if vector["root_on_chain"]:
        assert outcome.to_dict()["signers"] == DATA["verified_signers"]
