"""Seed a bench database: ``python -m bench.seed names 100000`` (run with the bench run's environment).

Names are real: each record carries a genuine owner-signed register statement (one owner key signs them all;
the per-owner limit is a service rule and the seed writes rows directly, in bulk, which is what it is for).
"""

import itertools
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mns_site.settings")

import django

django.setup()

from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from mns_client.codecs import public_key_hex, to_hex  # noqa: E402
from mns_client.crypto import box_keypair, generate_maxima_keypair, maxsign  # noqa: E402
from mns_client.names import skeleton  # noqa: E402
from mns_client.statements import NameStatement  # noqa: E402
from registry.models import NameRecord, StatementRecord  # noqa: E402

# Letters that no confusable fold touches, so every generated name has its own skeleton.
ALPHABET = "abdefghjkmnpstuwxyz"


def bench_names(count: int) -> list[str]:
    """``count`` distinct five-letter names: ``x`` and four letters (never reserved, never look-alikes)."""
    words = ("x" + "".join(letters) for letters in itertools.product(ALPHABET, repeat=4))
    return list(itertools.islice(words, count))


def seed_names(count: int, *, batch: int = 2000) -> None:
    private, public = generate_maxima_keypair()
    owner = public_key_hex(public)
    box = to_hex(box_keypair()[1])
    now_ms, now = int(time.time() * 1000), timezone.now()
    existing = set(NameRecord.objects.filter(name__startswith="x").values_list("name", flat=True))
    names = [name for name in bench_names(count) if name not in existing]  # a database seeded before is reused
    for start in range(0, len(names), batch):
        records, statements = [], []
        for name in names[start : start + batch]:
            statement = NameStatement(
                op="register", name=name, owner=owner, box_key=box, seq=1, issued_at=now_ms, gateway=owner
            )
            signature = to_hex(maxsign(private, statement.canonical()))
            fields = statement.to_dict()
            records.append(
                NameRecord(
                    name=name,
                    skeleton=skeleton(name),
                    status="active",
                    owner_key=owner,
                    box_key=box,
                    gateways=[owner],
                    seq=1,
                    statement=fields,
                    signature=signature,
                    status_changed_at=now,
                )
            )
            statements.append((fields, signature))
        with transaction.atomic():
            saved = NameRecord.objects.bulk_create(records)
            saved = {r.name: r for r in NameRecord.objects.filter(name__in=[r.name for r in records])}
            StatementRecord.objects.bulk_create(
                StatementRecord(
                    record=saved[fields["name"]],
                    seq=1,
                    op="register",
                    owner_key=owner,
                    statement=fields,
                    signature=signature,
                    source="api",
                )
                for fields, signature in statements
            )


if __name__ == "__main__":
    kind, count = sys.argv[1], int(sys.argv[2])
    if kind != "names":
        raise SystemExit("usage: python -m bench.seed names COUNT")
    started = time.perf_counter()
    seed_names(count)
    print(f"seeded {count} names in {time.perf_counter() - started:.1f} s")
