"""A gateway's root of the directory at a cut-off, and the proof a lookup carries against the root on chain."""

import json
from typing import Any

import pytest
from django.test import Client

from mns_client.protocol import lookup_proof
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.crypto import maxsigner
from mns_client.protocol.statements import NameStatement, SignedStatement
from mns_client.protocol.transparency import (
    Directory,
    ProofInvalid,
    Root,
    SignedRoot,
    Signer,
    bucket_of,
    check_absent,
    check_in_directory,
    statement_hash,
)
from registry import services as registry
from registry.models import NameRecord, StatementRecord
from registry.tests.support import Owner, register
from transparency import services
from transparency.models import DirectoryRoot

pytestmark = pytest.mark.django_db(transaction=True)


def newest_issued() -> int:
    return max(row.statement["issued_at"] for row in StatementRecord.objects.all())


def compute(me: Owner, cutoff: int) -> DirectoryRoot:
    return services.root_compute(cutoff=cutoff, sign=maxsigner(me.private_key), signer_key=me.key)


def publish(me: Owner, row: DirectoryRoot, seq: int) -> None:
    """A bulletin on chain carrying this root (what entrypoints tells the app when it reads one)."""
    root = Root(cutoff=row.cutoff, size=row.size, root=bytes(row.root))
    signed = SignedRoot(root=root, signers=(Signer(key=me.key, signature=bytes(row.signature)),))
    services.chain_root_seen(bulletin_seq=seq, signed=signed)


def lookup(name: str) -> dict[str, Any]:
    response = Client().get(f"/api/v1/names/{name}")
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def expected_directory(cutoff: int) -> Directory:
    """What the protocol core makes of each name's latest statement issued at or before ``cutoff``."""
    latest: dict[str, tuple[int, NameStatement]] = {}
    for row in StatementRecord.objects.select_related("record"):
        statement = NameStatement.from_dict(row.statement)
        if statement.issued_at <= cutoff and row.seq > latest.get(row.record.name, (0, None))[0]:
            latest[row.record.name] = (row.seq, statement)
    return Directory((name, statement_hash(statement)) for name, (_seq, statement) in latest.items())


def test_the_root_computed_equals_the_directory_of_the_protocol_core_over_the_same_names(
    me: Owner, alice: Owner, bob: Owner
) -> None:
    register(alice, "alice")
    register(bob, "bob")
    register(bob, "bobby")
    registry.statement_apply(signed=bob.sign("release", "bobby", 2), source="api")
    registry.statement_apply(signed=alice.sign("update", "alice", 2), source="api")
    cutoff = newest_issued()

    row = compute(me, cutoff)

    expected = expected_directory(cutoff)
    assert (row.size, bytes(row.root)) == (3, expected.root)
    assert bytes(row.bucket_roots) == b"".join(expected.levels[0])
    assert Root(cutoff, row.size, bytes(row.root)) == Root(cutoff, expected.size, expected.root)


def test_a_statement_issued_after_the_cutoff_does_not_change_that_cutoffs_root(me: Owner, alice: Owner) -> None:
    register(alice, "alice")
    cutoff = newest_issued()
    before = services.directory_at(cutoff=cutoff).root
    row = compute(me, cutoff)

    registry.statement_apply(signed=alice.sign("update", "alice", 2), source="api")
    register(alice, "alicia")

    assert services.directory_at(cutoff=cutoff).root == before == bytes(row.root)
    assert compute(me, cutoff).pk == row.pk
    assert services.directory_at(cutoff=newest_issued()).root != before


def test_a_lookup_carries_a_proof_that_check_in_directory_accepts_against_the_root_on_chain(
    me: Owner, alice: Owner, bob: Owner
) -> None:
    register(alice, "alice")
    register(bob, "bob")
    row = compute(me, newest_issued())
    publish(me, row, seq=1)

    answer = lookup("alice")["transparency"]

    root = Root.from_dict(answer["root"])
    assert root == Root(row.cutoff, row.size, bytes(row.root))
    statement = NameStatement.from_dict(answer["statement"]["statement"])
    check_in_directory(root=root, name="alice", statement=statement, proof=answer["proof"])
    assert answer["current"] is True
    assert answer["statement"]["signature"] == NameRecord.objects.get(name="alice").signature
    bob_statement = NameStatement.from_dict(lookup("bob")["transparency"]["statement"]["statement"])
    with pytest.raises(ProofInvalid):  # the same proof does not show bob's statement for alice
        check_in_directory(root=root, name="alice", statement=bob_statement, proof=answer["proof"])


def test_a_name_changed_after_the_cutoff_is_proved_with_its_statement_at_the_cutoff_not_current(
    me: Owner, alice: Owner
) -> None:
    register(alice, "alice")
    row = compute(me, newest_issued())
    publish(me, row, seq=1)
    registry.statement_apply(signed=alice.sign("update", "alice", 2), source="api")

    answer = lookup("alice")["transparency"]

    statement = NameStatement.from_dict(answer["statement"]["statement"])
    assert (statement.seq, answer["current"]) == (1, False)
    check_in_directory(root=Root.from_dict(answer["root"]), name="alice", statement=statement, proof=answer["proof"])


def test_without_a_root_on_chain_or_a_root_of_its_own_for_its_cutoff_a_lookup_says_no_root(
    me: Owner, alice: Owner
) -> None:
    register(alice, "alice")
    assert lookup("alice")["transparency"] == {"status": "no_root"}
    row = compute(me, newest_issued())
    publish(me, row, seq=1)
    services.chain_root_seen(
        bulletin_seq=2, signed=SignedRoot(root=Root(row.cutoff + 1000, 1, b"\x01" * 32), signers=())
    )
    assert lookup("alice")["transparency"] == {"status": "no_root"}


def test_a_name_first_registered_after_the_cutoff_is_not_in_the_directory(me: Owner, alice: Owner) -> None:
    register(alice, "alice")
    row = compute(me, newest_issued())
    publish(me, row, seq=1)
    register(alice, "alicia")

    answer = lookup("alicia")["transparency"]

    root = Root(row.cutoff, row.size, bytes(row.root))
    assert {key: answer[key] for key in ("status", "root")} == {"status": "not_in_directory", "root": root.to_dict()}
    check_absent(root=root, name="alicia", absence=answer["bucket"])


def test_a_name_not_in_the_directory_carries_its_whole_bucket_which_proves_it_absent(
    me: Owner, alice: Owner, bob: Owner
) -> None:
    # Two names of one bucket in the directory, and a third of that bucket registered after the cut-off.
    first, second, late = same_bucket(3)
    register(alice, first)
    register(bob, second)
    register(alice, "alice")
    row = compute(me, newest_issued())
    publish(me, row, seq=1)
    register(bob, late)

    answer = lookup(late)["transparency"]

    root = Root(row.cutoff, row.size, bytes(row.root))
    assert answer["status"] == "not_in_directory"
    assert [name for name, _value in answer["bucket"]["entries"]] == sorted([first, second], key=str.encode)
    values = {name: to_hex(statement_hash(NameStatement.from_dict(s))) for name, s in statements_now()}
    assert answer["bucket"]["entries"] == [[name, values[name]] for name in sorted([first, second], key=str.encode)]
    check_absent(root=root, name=late, absence=answer["bucket"])
    hidden = {**answer["bucket"], "entries": answer["bucket"]["entries"][1:]}
    with pytest.raises(ProofInvalid) as refused:  # what a client sees of a gateway that leaves a name out
        check_absent(root=root, name=late, absence=hidden)
    assert refused.value.code == "root_mismatch"


def same_bucket(count: int) -> list[str]:
    """The first ``count`` names ``n<i>`` that share a bucket."""
    seen: dict[int, list[str]] = {}
    i = 0
    while True:
        names = seen.setdefault(bucket_of(f"n{i}"), [])
        names.append(f"n{i}")
        if len(names) == count:
            return names
        i += 1


def statements_now() -> list[tuple[str, dict[str, Any]]]:
    return [(row.record.name, row.statement) for row in StatementRecord.objects.select_related("record")]


@pytest.mark.usefixtures("redis_cache")
def test_a_kept_lookup_is_never_served_with_the_old_proof_once_a_new_root_is_adopted(
    me: Owner, alice: Owner, bob: Owner
) -> None:
    register(alice, "alice")
    first = compute(me, newest_issued())
    publish(me, first, seq=1)
    assert lookup("alice")["transparency"]["root"]["cutoff"] == first.cutoff
    assert lookup("alice")["transparency"]["root"]["cutoff"] == first.cutoff  # from Redis now
    register(bob, "bob")  # alice's record does not change: only the root does
    second = compute(me, newest_issued())

    publish(me, second, seq=2)
    answer = lookup("alice")["transparency"]

    assert Root.from_dict(answer["root"]) == Root(second.cutoff, second.size, bytes(second.root))
    statement = NameStatement.from_dict(answer["statement"]["statement"])
    check_in_directory(root=Root.from_dict(answer["root"]), name="alice", statement=statement, proof=answer["proof"])


def test_the_cutoff_is_aligned_so_every_gateway_computes_the_same_one(settings: Any) -> None:
    settings.MNS_TRANSPARENCY_EVERY, settings.MNS_TRANSPARENCY_SETTLE = 3600, 300
    assert services.cutoff_now(now_ms=7_200_000 + 299_999) == 3_600_000
    assert services.cutoff_now(now_ms=7_200_000 + 300_000) == 7_200_000


def test_old_roots_lose_their_bucket_roots_but_the_served_one_and_every_signature_stay(me: Owner, alice: Owner) -> None:
    register(alice, "alice")
    rows = [compute(me, newest_issued() + step) for step in range(4)]
    publish(me, rows[0], seq=1)

    assert services.roots_prune(keep=2) == 1

    emptied = [bytes(row.bucket_roots) == b"" for row in DirectoryRoot.objects.order_by("cutoff")]
    assert emptied == [False, True, False, False]
    assert all(bytes(row.signature) for row in DirectoryRoot.objects.all())
    assert lookup("alice")["transparency"]["root"]["cutoff"] == rows[0].cutoff


def test_a_name_loaded_without_its_bucket_gets_it_and_is_proved(me: Owner, alice: Owner) -> None:
    register(alice, "alice")
    NameRecord.objects.filter(name="alice").update(bucket=None)  # as a bulk load (COPY) leaves it

    assert registry.buckets_fill() == 1

    assert NameRecord.objects.get(name="alice").bucket == bucket_of("alice")
    publish(me, compute(me, newest_issued()), seq=1)
    assert lookup("alice")["transparency"]["current"] is True


def test_a_gateway_without_a_root_at_the_chains_cutoff_computes_it_at_its_next_round_and_proves_against_it(
    me: Owner, alice: Owner, settings: Any
) -> None:
    settings.MNS_TRANSPARENCY_EVERY, settings.MNS_TRANSPARENCY_SETTLE = 1, 0
    register(alice, "alice")
    missed = newest_issued()  # a cut-off this gateway's beat skipped, which the others agreed on
    services.chain_root_seen(
        bulletin_seq=1, signed=SignedRoot(root=Root(missed, 1, services.directory_at(cutoff=missed).root), signers=())
    )
    assert lookup("alice")["transparency"] == {"status": "no_root"}

    done = services.roots_compute_due(sign=maxsigner(me.private_key), signer_key=me.key, now_ms=missed + 5000)

    assert done == [(missed + 5000) // 1000 * 1000, missed]
    assert lookup("alice")["transparency"]["root"]["cutoff"] == missed


def test_a_history_changed_under_the_signed_root_gives_a_proof_that_fails_the_clients_check(
    me: Owner, alice: Owner, bob: Owner
) -> None:
    register(alice, "alice")
    row = compute(me, newest_issued())
    publish(me, row, seq=1)
    signed = bob.sign("register", "alice", 1, issued_at=NameRecord.objects.get(name="alice").statement["issued_at"])
    StatementRecord.objects.filter(record__name="alice").update(
        owner_key=bob.key, statement=signed.statement.to_dict(), signature="0x" + signed.signature.hex().upper()
    )  # what a lying operator could do to its own database

    answer = lookup("alice")["transparency"]

    statement = NameStatement.from_dict(answer["statement"]["statement"])
    assert statement.owner == bob.key
    with pytest.raises(ProofInvalid) as caught:
        check_in_directory(
            root=Root.from_dict(answer["root"]), name="alice", statement=statement, proof=answer["proof"]
        )
    assert caught.value.code == "root_mismatch"


def chain_of(row: DirectoryRoot, me: Owner) -> SignedRoot:
    root = Root(cutoff=row.cutoff, size=row.size, root=bytes(row.root))
    return SignedRoot(root=root, signers=(Signer(key=me.key, signature=bytes(row.signature)),))


def client_check(name: str, chain: SignedRoot) -> lookup_proof.DirectoryCheck:
    """What ``mns whois`` makes of the gateway's lookup of ``name`` against the root it read on chain."""
    answer = lookup(name)
    record = NameRecord.objects.get(name=name)
    current = SignedStatement.from_dict({"statement": record.statement, "signature": record.signature})
    return lookup_proof.check_lookup(name=name, current=current, answer=answer["transparency"], chain_root=chain)


def test_a_statement_that_arrives_after_the_root_leaves_the_roots_proofs_checking_out_and_is_in_the_next_root(
    me: Owner, alice: Owner, bob: Owner
) -> None:
    first, late, third = same_bucket(3)
    register(alice, first)
    register(bob, third)
    register(bob, "bob")
    cutoff = newest_issued()
    row = compute(me, cutoff)
    publish(me, row, seq=1)
    chain = chain_of(row, me)
    assert client_check("bob", chain).status == lookup_proof.IN_DIRECTORY  # another bucket: none of theirs is cached

    # Issued before the cut-off, replicated here only now (after a partition): the bucket's history changed.
    register(alice, late, issued_at=cutoff - 1)
    assert services.directory_at(cutoff=cutoff).root != bytes(row.root)

    for name in (first, third):  # proved from the bucket as the root was made of it
        check = client_check(name, chain)
        assert (check.status, check.failed) == (lookup_proof.IN_DIRECTORY, False), check.detail
    check = client_check(late, chain)  # its bucket at the cut-off shows it absent, which is true of the root
    assert (check.status, check.failed) == (lookup_proof.NOT_IN_DIRECTORY, False), check.detail
    assert [name for name, _value in lookup(late)["transparency"]["bucket"]["entries"]] == sorted(
        [first, third], key=str.encode
    )
    # A late update of a name in the root: the proof shows the statement the root holds, and says it is not current.
    registry.statement_apply(signed=bob.sign("update", third, 2, issued_at=cutoff - 1), source="replication")
    answer = lookup(third)["transparency"]
    held = NameStatement.from_dict(answer["statement"]["statement"])
    assert (held.seq, answer["current"]) == (1, False)
    check_in_directory(root=chain.root, name=third, statement=held, proof=answer["proof"])
    check = client_check(third, chain)  # a later statement of its holder, dated before the cut-off: not a lie
    assert (check.status, check.failed) == (lookup_proof.CHANGED_SINCE, False), check.detail
    assert "reached the network after the root was made" in check.detail

    following = compute(me, cutoff + 1000)
    expected = expected_directory(cutoff + 1000)
    assert (following.size, bytes(following.root)) == (expected.size, expected.root) == (4, expected.root)
    entries = services.bucket_entries(root_row=following, bucket=bucket_of(third))
    assert [(name, seq) for name, seq, _value in entries] == sorted(
        [(first, 1), (late, 1), (third, 2)], key=lambda entry: entry[0].encode()
    )
    assert following.rehashed == 1  # only the late statement's bucket was read again
    publish(me, following, seq=2)
    for name in (first, late, third):
        assert client_check(name, chain_of(following, me)).status == lookup_proof.IN_DIRECTORY
