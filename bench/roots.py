"""``python -m bench.roots [--names 20000] [--change 0.01] [--repeat 3]``: a directory root computed whole against
one computed from the previous root (docs/performance.md, "Directory roots: computed from the previous one").

Run with the bench's database (``DATABASE_URL``, PostgreSQL for figures that mean anything). It seeds ``--names``
names (``x`` and four letters, real signed statements; a database seeded before is reused), makes a root at their
cut-off, then adds ``--change`` of that many names again (``w`` names: nine in ten issued after the cut-off, one
in ten before it, arriving late) and times, at the next cut-off, the tree computed whole (``tree_whole``) and from
the previous root (``tree_from``), each ``--repeat`` times, checking that both give the same bytes. Then the two
roots are stored as the beat stores them (``root_compute``), once whole and once from the previous one. This
database's directory roots and kept bucket entries are dropped first: it is a bench database, never a gateway's.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mns_site.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Q  # noqa: E402

from mns_client.protocol.codecs import public_key_hex  # noqa: E402
from mns_client.protocol.crypto import generate_maxima_keypair, maxsigner  # noqa: E402
from registry.models import NameRecord, StatementRecord  # noqa: E402
from registry.services import buckets_fill  # noqa: E402
from transparency import services  # noqa: E402
from transparency.models import BucketEntries, DirectoryRoot  # noqa: E402


def _timed(run: object, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", type=int, default=20_000)
    parser.add_argument("--change", type=float, default=0.01, help="names added, as a share of --names")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from bench.seed import seed_names, vacuum

    call_command("migrate", verbosity=0)
    vacuum()  # as harness.prepared does for the other entry points: this one runs its Django in process
    DirectoryRoot.objects.all().delete()
    BucketEntries.objects.all().delete()
    NameRecord.objects.filter(Q(name__startswith="w") | Q(name__startswith="v")).delete()  # a last run's change
    seed_names(args.names)
    buckets_fill()  # as the beat does before a root: a bulk-loaded record has no bucket yet
    _settle()
    cutoff = max(StatementRecord.objects.values_list("statement__issued_at", flat=True))
    private, public = generate_maxima_keypair()
    sign, key = maxsigner(private), public_key_hex(public)
    first = services.root_compute(cutoff=cutoff, sign=sign, signer_key=key)

    added = max(int(args.names * args.change), 1)
    late = max(added // 10, 1)
    seed_names(added - late, prefix="w", issued_at=cutoff + 500)
    seed_names(late, prefix="v", issued_at=cutoff - 1)  # issued before the root's cut-off, arriving only now
    buckets_fill()
    _settle()
    following = cutoff + 1000
    print(f"bench.roots: {connection.vendor}, {first.size} names at the first cut-off, {added} added ({late} late)")

    whole_s, whole = _timed(lambda: services.tree_whole(cutoff=following), args.repeat)
    from_s, incremental = _timed(lambda: services.tree_from(first, cutoff=following), args.repeat)
    stamps_s, _ = _timed(lambda: services.bucket_stamps(cutoff=following), args.repeat)
    assert incremental is not None
    assert (incremental.root, incremental.size) == (whole.root, whole.size)
    assert incremental.bucket_roots == whole.bucket_roots
    print(f"  tree at the next cut-off, whole:          {whole_s * 1000:8.0f} ms  ({whole.size} names)")
    print(
        f"  tree at the next cut-off, from the last:  {from_s * 1000:8.0f} ms  ({incremental.rehashed} buckets "
        f"read; the per-bucket count of the statements is {stamps_s * 1000:.0f} ms of it); same root"
    )
    second = services.root_compute(cutoff=following, sign=sign, signer_key=key)
    print(f"  root_compute, whole (first cut-off):      {first.compute_ms:8d} ms  (signing included)")
    print(f"  root_compute, from the last (next):       {second.compute_ms:8d} ms  ({second.rehashed} buckets)")


def _settle() -> None:
    """What autovacuum does to a table after bulk writes (the bucket fill rewrites every record): the planner's
    statistics, and no dead rows left to scan."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE registry_namerecord, registry_statementrecord")


if __name__ == "__main__":
    main()
