"""A root computed from the previous one (only the buckets whose statements changed are read again) is the root
computed whole, byte for byte: on random histories with late arrivals, freed holds and cut-offs out of order."""

import contextlib

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mns_client.protocol.crypto import maxsigner
from mns_client.protocol.errors import MNSError
from mns_client.protocol.transparency import BUCKETS, bucket_of
from registry import services as registry
from registry.models import NameRecord, StatementRecord
from registry.tests.support import GATEWAY, ISSUED_AT, Owner, register
from transparency import services
from transparency.models import BucketEntries, DirectoryRoot
from transparency.tests.test_roots import expected_directory, same_bucket

pytestmark = pytest.mark.django_db

BASE = ISSUED_AT - 100_000  # before every other test's statements: this file's cut-offs are its own
NAMES = [*same_bucket(3), "alice", "bob", "carol", "dave"]  # three of one bucket, so a bucket changes often

STATEMENT = st.tuples(
    st.sampled_from(["register", "update", "hold", "refuse"]), st.integers(0, len(NAMES) - 1), st.integers(0, 12)
)
# Rounds of a few statements (each issued at a tick: before a cut-off already computed is a late arrival), then a
# root at a tick (an earlier one than the last is computed too, as a gateway that missed the chain's cut-off does).
ROUNDS = st.lists(st.tuples(st.lists(STATEMENT, max_size=4), st.integers(0, 12)), min_size=2, max_size=6)


def compute(me: Owner, cutoff: int) -> DirectoryRoot:
    return services.root_compute(cutoff=cutoff, sign=maxsigner(me.private_key), signer_key=me.key)


def assert_whole(row: DirectoryRoot) -> None:
    """The root stored is what the protocol core makes of the history at its cut-off, bucket roots included."""
    expected = expected_directory(row.cutoff)
    assert (row.size, bytes(row.root)) == (expected.size, expected.root)
    assert bytes(row.bucket_roots) == b"".join(expected.levels[0])
    whole = services.tree_whole(cutoff=row.cutoff)
    assert bytes(row.bucket_stamps) == whole.stamps


def _step(owner: Owner, op: str, name: str, at: int) -> None:
    record = NameRecord.objects.filter(name=name).first()
    seq = (record.seq or 0) + 1 if record is not None else 1
    if op == "refuse":
        registry.name_hold_refuse(name=name, owner_key=owner.key)  # the hold's statement is deleted
        return
    if op == "update":
        registry.statement_apply(signed=owner.sign("update", name, seq, issued_at=at), source="replication")
        return
    registry.name_hold(signed=owner.sign("register", name, seq, issued_at=at), gateway_key=GATEWAY, source="api")
    if op == "register":
        registry.name_activate(name=name)


@given(rounds=ROUNDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_root_computed_from_the_previous_one_is_the_root_computed_whole(
    me: Owner, alice: Owner, rounds: list
) -> None:
    with transaction.atomic():
        for statements, tick in rounds:
            for op, index, issued in statements:
                with contextlib.suppress(MNSError):  # refusals (a stale seq, a name held already) are part of it
                    _step(alice, op, NAMES[index], BASE + issued * 1000)
            if not DirectoryRoot.objects.filter(cutoff=BASE + tick * 1000).exists():
                assert_whole(compute(me, BASE + tick * 1000))
        transaction.set_rollback(True)


def test_a_root_after_one_change_reads_one_bucket_and_keeps_the_others_entries(me: Owner, alice: Owner) -> None:
    register(alice, "alice", issued_at=BASE)
    register(alice, "alicia", issued_at=BASE)
    first = compute(me, BASE)
    assert first.rehashed == BUCKETS
    assert BucketEntries.objects.count() == 2

    registry.statement_apply(signed=alice.sign("update", "alice", 2, issued_at=BASE + 500), source="api")
    second = compute(me, BASE + 1000)

    assert second.rehashed == 1
    assert_whole(second)
    assert BucketEntries.objects.count() == 3  # alice's bucket at both roots; alicia's once for both


def test_a_hold_freed_after_a_root_leaves_the_next_root_as_computed_whole(me: Owner, alice: Owner) -> None:
    register(alice, "alice", issued_at=BASE)
    registry.name_hold(signed=alice.sign("register", "alicia", 1, issued_at=BASE), gateway_key=GATEWAY, source="api")
    first = compute(me, BASE)
    assert first.size == 2

    assert registry.name_hold_refuse(name="alicia", owner_key=alice.key)
    second = compute(me, BASE + 1000)

    assert (second.size, second.rehashed) == (1, 1)
    assert_whole(second)


def test_records_without_their_bucket_yet_make_the_root_computed_whole(me: Owner, alice: Owner) -> None:
    register(alice, "alice", issued_at=BASE)
    compute(me, BASE)
    register(alice, "alicia", issued_at=BASE + 500)
    NameRecord.objects.filter(name="alicia").update(bucket=None)  # as a bulk load (COPY) leaves it

    second = compute(me, BASE + 1000)

    assert second.rehashed == BUCKETS
    assert_whole(second)


def test_a_previous_root_without_stamps_or_whose_bucket_roots_do_not_make_it_is_not_followed(
    me: Owner, alice: Owner
) -> None:
    register(alice, "alice", issued_at=BASE)
    first = compute(me, BASE)
    DirectoryRoot.objects.filter(pk=first.pk).update(bucket_stamps=b"")  # a root from before the stamps
    assert compute(me, BASE + 1000).rehashed == BUCKETS
    stored = bytearray(DirectoryRoot.objects.get(cutoff=BASE + 1000).bucket_roots)
    stored[:32] = bytes(32)
    DirectoryRoot.objects.filter(cutoff=BASE + 1000).update(bucket_roots=bytes(stored))  # a damaged row

    third = compute(me, BASE + 2000)

    assert third.rehashed == BUCKETS
    assert_whole(third)


def test_pruning_keeps_the_bucket_entries_of_the_roots_that_keep_their_bucket_roots(me: Owner, alice: Owner) -> None:
    register(alice, "alice", issued_at=BASE)
    rows = [compute(me, BASE)]
    for step in (1, 2, 3):
        registry.statement_apply(
            signed=alice.sign("update", "alice", 1 + step, issued_at=BASE + step * 1000), source="api"
        )
        rows.append(compute(me, BASE + step * 1000))
    assert BucketEntries.objects.count() == 4

    assert services.roots_prune(keep=2) == 2

    kept = {bytes(row.root) for row in BucketEntries.objects.all()}
    assert kept == {bytes(row.bucket_roots)[i * 32 : i * 32 + 32] for row in rows[2:] for i in [bucket_of("alice")]}
    assert bytes(DirectoryRoot.objects.get(cutoff=BASE).bucket_stamps) == b""


def test_the_statements_counted_per_bucket_are_those_issued_by_the_cutoff(alice: Owner) -> None:
    register(alice, "alice", issued_at=BASE)
    registry.statement_apply(signed=alice.sign("update", "alice", 2, issued_at=BASE + 1000), source="api")

    stamps, complete = services.bucket_stamps(cutoff=BASE)
    later, _ = services.bucket_stamps(cutoff=BASE + 1000)

    assert complete
    assert stamps != later
    assert [i for i in range(BUCKETS) if stamps[i * 8 : i * 8 + 8] != later[i * 8 : i * 8 + 8]] == [bucket_of("alice")]
    assert StatementRecord.objects.count() == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite keeps no row versions to see it by")
def test_a_statement_changed_in_place_is_read_again_for_the_next_root(me: Owner, alice: Owner, bob: Owner) -> None:
    register(alice, "alice", issued_at=BASE)
    compute(me, BASE)
    forged = bob.sign("register", "alice", 1, issued_at=BASE)  # what a lying operator could write in its database
    StatementRecord.objects.filter(record__name="alice").update(owner_key=bob.key, statement=forged.statement.to_dict())

    second = compute(me, BASE + 1000)

    assert second.rehashed == 1
    assert_whole(second)
