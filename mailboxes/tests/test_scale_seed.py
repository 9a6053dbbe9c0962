"""The bench's scale seed (``bench/seed.py scale``: a million names and messages in bulk SQL) leaves mailboxes the
gateway's own rules accept: each seeded message counted on a shard of its mailbox, the shards' allowances summing
to the quota, and a delete and a delivery after it keeping the count exact. (It failed on every run once messages
gained their shard, and nothing else runs it.) A world is only ever grown, and the large world is a copy of the
small one with a Redis database of its own (``bench.harness.database_copy``). Every run starts with
``bench.seed.vacuum``, which vacuums only where the server has no autovacuum."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mailboxes import selectors, services
from mailboxes.models import Mailbox, MailboxCounter, Message
from mns_client.protocol.mailbox import new_delivery_id

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres")]


def test_the_scale_seed_counts_each_message_on_a_shard_and_the_mailboxes_take_deletes_and_deliveries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: object
) -> None:
    from bench import seed

    settings.MNS_REST_SUBMISSION = True

    monkeypatch.setattr(seed, "SCALE_CACHE", tmp_path / "scale-names.tsv")  # not the repository's var/
    seed.seed_scale(5, 2 * seed.MESSAGES_PER_MAILBOX)

    boxes = list(Mailbox.objects.filter(record__name__startswith=seed.SCALE_PREFIX).order_by("id"))
    assert len(boxes) == 2
    for box in boxes:
        usage = selectors.mailbox_usage(mailbox_id=box.id)
        held = Message.objects.filter(mailbox=box)
        assert (usage.messages, usage.bytes) == (held.count(), held.count() * seed.SCALE_CIPHERTEXT_BYTES)
        assert usage.messages == seed.MESSAGES_PER_MAILBOX
        counters = MailboxCounter.objects.filter(mailbox=box)
        assert sum(c.max_messages for c in counters) == box.max_messages
        assert sum(c.max_bytes for c in counters) == box.max_bytes
        assert all(c.message_count <= c.max_messages and c.byte_count <= c.max_bytes for c in counters)

    box = boxes[0]
    services.message_delete(mailbox=box, uid=Message.objects.filter(mailbox=box).first().uid)
    stored = services.delivery_submit(
        name=box.record.name,
        delivery_id=new_delivery_id(),
        scheme="nacl-sealedbox-v1",
        ciphertext=b"\x02" * 48,
        sender_key="",
    )
    usage = selectors.mailbox_usage(mailbox_id=box.id)
    assert stored.message.mailbox_id == box.id
    assert (usage.messages, usage.bytes) == (
        seed.MESSAGES_PER_MAILBOX,
        (seed.MESSAGES_PER_MAILBOX - 1) * seed.SCALE_CIPHERTEXT_BYTES + 48,
    )


def test_the_scale_seed_refuses_to_measure_a_world_larger_than_asked_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench import seed

    monkeypatch.setattr(seed, "SCALE_CACHE", tmp_path / "scale-names.tsv")
    seed.seed_scale(5, seed.MESSAGES_PER_MAILBOX)
    names = Mailbox.objects.filter(record__name__startswith=seed.SCALE_PREFIX).count()

    with pytest.raises(SystemExit, match="already holds 5 scale names, more than the 3 asked for"):
        seed.seed_scale(3, seed.MESSAGES_PER_MAILBOX)

    assert Mailbox.objects.filter(record__name__startswith=seed.SCALE_PREFIX).count() == names
    assert Message.objects.filter(delivery_id__startswith="scale-").count() == seed.MESSAGES_PER_MAILBOX


def test_a_second_world_is_a_copy_with_a_redis_database_of_its_own_dropped_when_done(redis_url: str) -> None:
    import redis

    from bench import harness
    from testsupport.processes import database_at, database_url, pg_connect

    server = database_at(database_url(), "postgres")
    source = f"mns_copied_{os.getpid()}"
    with pg_connect(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{source}"')
    base = urlsplit(redis_url)
    small, large = base._replace(path="/12").geturl(), base._replace(path="/13").geturl()
    left_over = redis.Redis.from_url(large)
    left_over.set("someone-elses", "1")
    try:
        with pg_connect(database_at(server, source)) as conn:
            conn.execute("CREATE TABLE world (v int)")
            conn.execute("INSERT INTO world VALUES (7)")
        env = {"DATABASE_URL": database_at(server, source), "REDIS_URL": small, "OTHER": "kept"}
        refused = r"Redis database 13 \(the second world's\) holds keys already"
        with pytest.raises(RuntimeError, match=refused), harness.database_copy(env, "large"):
            pass
        assert left_over.get("someone-elses") == b"1"  # never emptied without asking
        with pg_connect(server) as conn:
            assert not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [f"{source}_large"]).fetchall()
        left_over.flushdb()

        with harness.database_copy(env, "large") as copy:
            assert copy["DATABASE_URL"] == database_at(server, f"{source}_large")
            assert copy["REDIS_URL"] == copy["CELERY_BROKER_URL"] == large
            assert copy["OTHER"] == "kept"
            with pg_connect(copy["DATABASE_URL"]) as conn:
                assert conn.execute("SELECT v FROM world").fetchall() == [(7,)]
                conn.execute("INSERT INTO world VALUES (8)")
            with pg_connect(env["DATABASE_URL"]) as conn:
                assert conn.execute("SELECT v FROM world").fetchall() == [(7,)]
            left_over.set("written-by-the-copy", "1")

        with pg_connect(server) as conn:
            gone = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [f"{source}_large"]).fetchall()
        assert gone == []
        assert not left_over.exists("written-by-the-copy")
    finally:
        left_over.close()
        with pg_connect(server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)')


def last_vacuum(table: str = Message._meta.db_table) -> object:
    """When ``table`` was last vacuumed by hand (None: never), as PostgreSQL's statistics say."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = %s", [table])
        return cursor.fetchone()[0]


def test_the_bench_vacuums_its_database_only_where_the_server_has_no_autovacuum(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from django.db import connection

    from bench import seed

    off, tables = connection.autovacuum_gaps()
    before = last_vacuum()

    seed.vacuum()

    # PostgreSQL 15 and later report a vacuum to the statistics at once (older servers, through their collector,
    # a moment later). Off, as on CI's server: the run starts from what autovacuum would have left. (Tables whose
    # own autovacuum is off, with the server's on, are the next test's.)
    if off:
        after = last_vacuum()
        assert after is not None
        assert before is None or after > before
        assert "autovacuum is off" in capsys.readouterr().out
    elif not tables:
        assert last_vacuum() == before
        assert capsys.readouterr().out == ""


def test_where_only_some_tables_have_autovacuum_off_the_bench_vacuums_those_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server's own settings are CI's (autovacuum = off everywhere); what the gaps query finds is tested in
    # core/tests/test_postgresql.py. Here the server is taken to have autovacuum on, and one table off by its own.
    from django.db import connection, connections

    from bench import seed

    monkeypatch.setattr(connections["default"], "autovacuum_gaps", lambda: ([], ['"mns test av"']))
    other = last_vacuum()
    try:
        with connection.cursor() as cursor:
            cursor.execute('CREATE TABLE "mns test av" (id int) WITH (autovacuum_enabled = off)')  # a quoted name
        seed.vacuum()
        assert last_vacuum("mns test av") is not None
        assert last_vacuum() == other  # the rest of the database is autovacuum's
        assert 'autovacuum is off for "mns test av"' in capsys.readouterr().out
    finally:
        with connection.cursor() as cursor:
            cursor.execute('DROP TABLE IF EXISTS "mns test av"')
