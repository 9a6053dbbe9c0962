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

from bench.scenarios import ALPHABET, SPREAD_MAILBOXES  # noqa: E402
from mns_client.protocol.codecs import parse_public_key, public_key_hex, to_hex  # noqa: E402
from mns_client.protocol.crypto import box_keypair, generate_maxima_keypair, maxsign  # noqa: E402
from mns_client.protocol.names import skeleton  # noqa: E402
from mns_client.protocol.statements import NameStatement  # noqa: E402
from registry.models import NameRecord, StatementRecord  # noqa: E402


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


def seed_mailbox(token_file: str) -> None:
    """The ``bench`` name and mailbox the delivery scenarios write to, and a ``read`` session of its owner (made
    directly, as a verified handshake would), its token written to ``token_file`` for the mailbox-read scenario."""
    from datetime import timedelta
    from pathlib import Path

    from django.db import connection

    from bench.views import BENCH_NAME, _bench_mailbox
    from handshake.models import Session
    from mailboxes.models import Mailbox, Message
    from maxima.models import NodeState
    from mns_client.protocol.handshake import new_token, secret_hash

    spread = [f"{BENCH_NAME}-{i}" for i in range(SPREAD_MAILBOXES)]
    for name in [BENCH_NAME, *spread]:
        _bench_mailbox(name)
    record = NameRecord.objects.get(name=BENCH_NAME)
    # The gateway's identity key, as its node would have reported it: without one, deliveries skip the
    # federation's op log (and log a warning each), which a real gateway never does.
    state, _ = NodeState.objects.get_or_create(pk=1)
    if not state.publickey:
        state.publickey = public_key_hex(generate_maxima_keypair()[1])
        state.save(update_fields=["publickey"])
    # What earlier runs stored goes: every run starts from the same (small) mailboxes and blob table.
    Message.objects.filter(mailbox__record__name__in=[BENCH_NAME, *spread]).delete()
    Mailbox.objects.filter(record__name__in=[BENCH_NAME, *spread]).update(message_count=0, byte_count=0)
    if "bench_blob" in connection.introspection.table_names():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM bench_blob")
    token = new_token()
    Session.objects.create(
        token_hash=secret_hash(token),
        record=record,
        owner_key=public_key_hex(parse_public_key(record.owner_key)),
        purpose="read",
        expires_at=timezone.now() + timedelta(days=1),
    )
    Path(token_file).write_text(token)


if __name__ == "__main__":
    kind, arg = sys.argv[1], sys.argv[2]
    started = time.perf_counter()
    if kind == "names":
        seed_names(int(arg))
        print(f"seeded {arg} names in {time.perf_counter() - started:.1f} s")
    elif kind == "mailbox":
        seed_mailbox(arg)
    else:
        raise SystemExit("usage: python -m bench.seed names COUNT | mailbox TOKEN_FILE")
