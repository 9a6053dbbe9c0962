"""Seed a bench database: ``python -m bench.seed names 100000`` (run with the bench run's environment).

Names are real: each record carries a genuine owner-signed register statement (one owner key signs them all;
the per-owner limit is a service rule and the seed writes rows directly, in bulk, which is what it is for).

``python -m bench.seed scale NAMES MESSAGES`` (PostgreSQL) grows the scale scenario's world to ``NAMES`` names
(``y`` and five letters) and ``MESSAGES`` stored messages, a hundred to a mailbox, in bulk: the signed statements
are made once (two processes, the owner's key loaded once each) and kept in ``var/bench/scale-names.tsv`` for the
next run, the names go in with COPY, their statement rows, mailboxes and messages with one INSERT … SELECT each.
"""

import contextlib
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mns_site.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.db import DatabaseError, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.scenarios import ALPHABET, SPREAD_MAILBOXES  # noqa: E402
from mns_client.protocol.codecs import parse_public_key, public_key_hex, to_hex  # noqa: E402
from mns_client.protocol.crypto import box_keypair, generate_maxima_keypair, maxsigner  # noqa: E402
from mns_client.protocol.names import skeleton  # noqa: E402
from mns_client.protocol.statements import NameStatement  # noqa: E402
from registry.models import NameRecord, StatementRecord  # noqa: E402


def bench_names(count: int, *, prefix: str = "x", letters: int = 4) -> list[str]:
    """``count`` distinct names: ``prefix`` and ``letters`` letters (never reserved, never look-alikes)."""
    words = (prefix + "".join(chosen) for chosen in itertools.product(ALPHABET, repeat=letters))
    return list(itertools.islice(words, count))


def seed_names(count: int, *, batch: int = 2000, prefix: str = "x", issued_at: int | None = None) -> None:
    """``count`` names of ``prefix`` (those missing), registered by one new owner at ``issued_at`` (default now)."""
    private, public = generate_maxima_keypair()
    sign = maxsigner(private)  # the key loaded once: loading it costs fifty signatures
    owner = public_key_hex(public)
    box = to_hex(box_keypair()[1])
    now = timezone.now()
    now_ms = int(time.time() * 1000) if issued_at is None else issued_at
    existing = set(NameRecord.objects.filter(name__startswith=prefix).values_list("name", flat=True))
    names = [name for name in bench_names(count, prefix=prefix) if name not in existing]  # a seeded database is reused
    for start in range(0, len(names), batch):
        records, statements = [], []
        for name in names[start : start + batch]:
            statement = NameStatement(
                op="register", name=name, owner=owner, box_key=box, seq=1, issued_at=now_ms, gateway=owner
            )
            signature = to_hex(sign(statement.canonical()))
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
    from mailboxes.models import MailboxCounter, Message
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
    # Their counter shards too: the first delivery to each makes them again, empty (``counters_lock``).
    MailboxCounter.objects.filter(mailbox__record__name__in=[BENCH_NAME, *spread]).delete()
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


# --- Scale: a million names and a million messages -------------------------------------------------------------
SCALE_PREFIX, SCALE_LETTERS = "y", 5  # 19**5 = 2.5 million names
MESSAGES_PER_MAILBOX = 100
SCALE_CIPHERTEXT_BYTES = 512
SCALE_CACHE = Path(__file__).resolve().parent.parent / "var" / "bench" / "scale-names.tsv"  # signed once, kept


def scale_names(count: int) -> list[str]:
    return bench_names(count, prefix=SCALE_PREFIX, letters=SCALE_LETTERS)


def _signed_scale_names(count: int) -> tuple[dict[str, object], list[tuple[str, str]]]:
    """The first ``count`` scale names with their owner-signed register statements: from the cache file, signed
    now for those it lacks (and appended). Its first line is the statements' common fields and the owner's key."""
    from concurrent.futures import ProcessPoolExecutor

    path = SCALE_CACHE
    if path.exists():
        lines = path.read_text().splitlines()
        common, signed = json.loads(lines[0]), [tuple(line.split("\t")) for line in lines[1:]]
    else:
        private, public = generate_maxima_keypair()
        owner = public_key_hex(public)
        common = {"owner": owner, "box_key": to_hex(box_keypair()[1]), "issued_at": int(time.time() * 1000)}
        common["private"] = to_hex(private)
        signed = []
    todo = scale_names(count)[len(signed) :]
    if todo:
        chunks = [todo[i : i + 5000] for i in range(0, len(todo), 5000)]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for chunk in pool.map(_sign_chunk, [(common, chunk) for chunk in chunks]):
                signed.extend(chunk)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([json.dumps(common), *("\t".join(pair) for pair in signed)]) + "\n")
    return common, signed[:count]


def _statement(common: dict[str, object], name: str) -> NameStatement:
    owner = str(common["owner"])
    return NameStatement(
        op="register",
        name=name,
        owner=owner,
        box_key=str(common["box_key"]),
        seq=1,
        issued_at=int(common["issued_at"]),
        gateway=owner,
    )


def _sign_chunk(job: tuple[dict[str, object], list[str]]) -> list[tuple[str, str]]:
    from mns_client.protocol.codecs import from_hex
    from mns_client.protocol.crypto import maxsigner

    common, names = job
    sign = maxsigner(from_hex(str(common["private"])))
    return [(name, to_hex(sign(_statement(common, name).canonical()))) for name in names]


def seed_scale(names: int, messages: int) -> None:
    """Grow the scale world to ``names`` names and ``messages`` stored messages (PostgreSQL only)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("the scale seed needs PostgreSQL (set DATABASE_URL)")
    common, signed = _signed_scale_names(names)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM registry_namerecord WHERE name LIKE %s", [SCALE_PREFIX + "%"])
        have = cursor.fetchone()[0]
        if have > names:  # a world is only ever grown: measured as "names" names, it would be another size
            raise SystemExit(
                f"the database already holds {have} scale names, more than the {names} asked for: it was grown by "
                "an earlier run; use a fresh database (make bench: dropdb -h 127.0.0.1 -U postgres mns_bench)"
            )
        _copy_names(cursor, common, signed[have:])
        cursor.execute(_STATEMENT_ROWS, [SCALE_PREFIX + "%"])
        cursor.execute(_MAILBOXES, [SCALE_PREFIX + "%", max(messages // MESSAGES_PER_MAILBOX - _mailboxes(cursor), 0)])
        cursor.execute("SELECT count(*) FROM mailboxes_message WHERE delivery_id LIKE %s", ["scale-%"])
        stored = cursor.fetchone()[0]
        if messages > stored:
            blocks = SCALE_CIPHERTEXT_BYTES // 16
            bounds = {"first": stored + 1, "last": messages, "blocks": blocks, "prefix": SCALE_PREFIX + "%"}
            bounds["per"] = MESSAGES_PER_MAILBOX
            cursor.execute(_MESSAGES, bounds)
            cursor.execute(_COUNTERS_CLEARED, [SCALE_PREFIX + "%"])
            cursor.execute(_COUNTERS, {"prefix": SCALE_PREFIX + "%", "shards": settings.MNS_MAILBOX_COUNTER_SHARDS})
    # What autovacuum will have done long before a gateway holds this much: the planner's statistics, and the
    # visibility map and hint bits, which a bulk load leaves unset (the first reads would set them, writing pages,
    # and autovacuum's own pass on the new rows would run under the measurement that follows).
    # And the load's dirty pages written out now (a superuser's CHECKPOINT, else the next timed one), so that the
    # checkpointer's write-back of a million rows does not fall inside the next measurement.
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM ANALYZE registry_namerecord, registry_statementrecord, mailboxes_mailbox, mailboxes_message, "
            "mailboxes_mailboxcounter"
        )
        with contextlib.suppress(DatabaseError), transaction.atomic():
            cursor.execute("CHECKPOINT")


def _mailboxes(cursor: object) -> int:
    cursor.execute(
        "SELECT count(*) FROM mailboxes_mailbox m JOIN registry_namerecord n ON n.id = m.record_id "
        "WHERE n.name LIKE %s",
        [SCALE_PREFIX + "%"],
    )
    return cursor.fetchone()[0]


def _copy_names(cursor: object, common: dict[str, object], signed: list[tuple[str, str]]) -> None:
    owner, box, now = str(common["owner"]), str(common["box_key"]), timezone.now()
    gateways = json.dumps([owner])
    columns = (
        "name, skeleton, status, owner_key, box_key, payment_address, gateways, seq, statement, signature, "
        "created_at, updated_at, status_changed_at"
    )
    with cursor.cursor.copy(f"COPY registry_namerecord ({columns}) FROM STDIN") as copy:
        for name, signature in signed:
            statement = json.dumps(_statement(common, name).to_dict())
            copy.write_row(
                (name, skeleton(name), "active", owner, box, "", gateways, 1, statement, signature, now, now, now)
            )


# The register statement of each scale name, as the registry keeps it beside the record.
_STATEMENT_ROWS = """
INSERT INTO registry_statementrecord (record_id, seq, op, owner_key, statement, signature, source, received_at)
SELECT n.id, 1, 'register', n.owner_key, n.statement, n.signature, 'api', n.created_at
FROM registry_namerecord n
WHERE n.name LIKE %s AND NOT EXISTS (SELECT 1 FROM registry_statementrecord s WHERE s.record_id = n.id)
"""
_MAILBOXES = """
INSERT INTO mailboxes_mailbox (record_id, owner_key, address, max_messages, max_bytes, auto_forward,
                               delete_forwarded, created_at, updated_at)
SELECT n.id, n.owner_key, '', 10000, 1073741824, false, false, now(), now()
FROM registry_namerecord n
WHERE n.name LIKE %s AND NOT EXISTS (SELECT 1 FROM mailboxes_mailbox m WHERE m.record_id = n.id)
ORDER BY n.name LIMIT %s
"""
# Messages numbered from/to, MESSAGES_PER_MAILBOX to a mailbox in the scale mailboxes' order; the ciphertext is
# random bytes (md5 blocks), as a sealed box looks to the gateway. Each is counted on shard 0 (_COUNTERS below).
_MESSAGES = """
WITH boxes AS (
    SELECT m.id, row_number() OVER (ORDER BY m.id) - 1 AS place
    FROM mailboxes_mailbox m JOIN registry_namerecord n ON n.id = m.record_id WHERE n.name LIKE %(prefix)s
)
INSERT INTO mailboxes_message (uid, delivery_id, sender_key, sender_verified, scheme, ciphertext, size, received_at,
                               expires_at, state, delete_when_forwarded, mailbox_id, shard)
SELECT md5('scale-' || g), 'scale-' || g, '', false, 'nacl-sealedbox-v1',
       decode(repeat(md5(g::text), %(blocks)s), 'hex'), 16 * %(blocks)s, now(), now() + interval '30 days',
       'stored', false, boxes.id, 0
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
JOIN boxes ON boxes.place = (g - 1) / %(per)s
"""
_COUNTERS_CLEARED = """
DELETE FROM mailboxes_mailboxcounter c USING mailboxes_mailbox m, registry_namerecord r
WHERE c.mailbox_id = m.id AND r.id = m.record_id AND r.name LIKE %s
"""
# Each scale mailbox's counter shards, as the migration to shards makes them: what it holds counted on shard 0,
# the room left split among the shards (shard 0 takes what does not divide evenly).
_COUNTERS = """
INSERT INTO mailboxes_mailboxcounter (mailbox_id, shard, message_count, byte_count, max_messages, max_bytes)
SELECT m.id, s, CASE WHEN s = 0 THEN u.n ELSE 0 END, CASE WHEN s = 0 THEN u.bytes ELSE 0 END,
       (m.max_messages - u.n) / %(shards)s
         + CASE WHEN s = 0 THEN u.n + (m.max_messages - u.n) %% %(shards)s ELSE 0 END,
       (m.max_bytes - u.bytes) / %(shards)s
         + CASE WHEN s = 0 THEN u.bytes + (m.max_bytes - u.bytes) %% %(shards)s ELSE 0 END
FROM mailboxes_mailbox m
JOIN registry_namerecord r ON r.id = m.record_id
CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(size), 0) AS bytes FROM mailboxes_message
                    WHERE mailbox_id = m.id) u
CROSS JOIN generate_series(0, %(shards)s - 1) AS s
WHERE r.name LIKE %(prefix)s
"""


def vacuum() -> None:
    """What autovacuum would have done by now, where the server runs without it (a CI server's ``autovacuum = off``,
    as on the VMs here): every run left its dead rows behind, and the queues' claims (``inbound_status_id``, the
    outbox's ``outbound_due``) read their dead index entries, thousands a claim, so each run measured a database that
    no gateway with autovacuum has. Where the server's autovacuum is on and only some tables have theirs off, those
    tables are vacuumed alone. Where autovacuum reaches every table (or on SQLite) nothing is done."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    off, tables = connection.autovacuum_gaps()
    if not off and not tables:
        return
    with connection.cursor() as cursor:
        if off:
            cursor.execute("VACUUM (ANALYZE)")
        else:
            cursor.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")  # named as SQL takes them (regclass)
    where = f"on this server ({', '.join(off)} = off)" if off else f"for {', '.join(tables)}"
    print(f"autovacuum is off {where}: vacuumed and analyzed before the run")


def analyze(table: str) -> None:
    """The planner's statistics of ``table`` brought up to date, as autovacuum's analyze would be within a minute
    of the inserts a scenario just made (the bench mailbox fills within the run: PostgreSQL still thought it held
    13 rows and sorted every message instead of walking the newest-first index)."""
    from django.db import connection

    if table not in connection.introspection.table_names():
        raise SystemExit(f"no table {table!r}")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")


if __name__ == "__main__":
    kind, arg = sys.argv[1], (sys.argv[2:] or [""])[0]
    started = time.perf_counter()
    if kind == "names":
        seed_names(int(arg))
        print(f"seeded {arg} names in {time.perf_counter() - started:.1f} s")
    elif kind == "mailbox":
        seed_mailbox(arg)
    elif kind == "analyze":
        analyze(arg)
    elif kind == "vacuum":
        vacuum()
    elif kind == "scale":
        seed_scale(int(arg), int(sys.argv[3]))
        print(f"seeded up to {arg} names and {sys.argv[3]} messages in {time.perf_counter() - started:.1f} s")
    else:
        raise SystemExit(
            "usage: python -m bench.seed names COUNT | mailbox TOKEN_FILE | analyze TABLE | vacuum"
            " | scale NAMES MESSAGES"
        )
