"""The gateway's PostgreSQL backend (``core.postgresql``): its health check (a dead kept connection is replaced
before a request uses it, and a live one is kept without a query), its autovacuum warnings, and its ``timestamptz``
loader."""

import contextlib
import datetime
import decimal
import os
import select
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection, connections
from psycopg.adapt import Transformer
from psycopg.types.json import Jsonb
from psycopg.types.numeric import Int2, Int4

pytestmark = pytest.mark.django_db


@pytest.fixture
def kept(postgres: None) -> Iterator[object]:
    """A second connection to the test database, as a web process keeps one between requests."""
    other = connections.create_connection("default")
    other.health_check_enabled = True
    other.ensure_connection()
    yield other
    other.close()


def backend_pid(conn: object) -> int:
    return conn.connection.info.backend_pid


def last_query_of(pid: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0]


def between_requests(conn: object) -> None:
    """What Django does at the start of a request's first query: the health check, armed once per request."""
    conn.health_check_done = False
    conn.close_if_health_check_failed()


def test_the_backend_is_the_gateways_own_in_production(postgres: None) -> None:
    assert type(connections["default"]).__module__ == "core.postgresql.base"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


def test_a_live_connection_is_kept_and_the_check_sends_no_query(kept: object) -> None:
    with kept.cursor() as cursor:
        cursor.execute("SELECT 'the last query before the check'")
    pid = backend_pid(kept)
    between_requests(kept)
    assert kept.connection is not None
    assert backend_pid(kept) == pid
    assert last_query_of(pid) == "SELECT 'the last query before the check'"  # no SELECT 1 was sent


def test_a_connection_the_server_closed_is_replaced_before_the_request_uses_it(kept: object) -> None:
    pid = backend_pid(kept)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The backend exits on its own schedule: wait (bounded) until its goodbye reached the socket.
    select.select([kept.connection.fileno()], [], [], 10)
    between_requests(kept)
    assert kept.connection is None
    with kept.cursor() as cursor:  # the request's query: on a new connection, not an error
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert backend_pid(kept) != pid


def autovacuum_checks() -> dict[str, object]:
    """The database checks' autovacuum warnings by id, as ``manage.py migrate`` and ``check --database`` run them."""
    from django.core import checks

    found = checks.run_checks(tags=[checks.Tags.database], databases=["default"])
    return {m.id: m for m in found if m.id in ("core.W001", "core.W002")}


def test_the_database_checks_warn_when_the_servers_autovacuum_is_off(postgres: None) -> None:
    from django.core import checks

    off = []
    with connection.cursor() as cursor:
        for name in ("autovacuum", "track_counts"):
            cursor.execute(f"SHOW {name}")
            if cursor.fetchone()[0] == "off":
                off.append(name)

    found = autovacuum_checks()

    assert connection.autovacuum_gaps()[0] == off
    if off:  # as on CI's server (autovacuum = off)
        warning = found["core.W001"]
        assert warning.level == checks.WARNING
        assert "autovacuum is off" in warning.msg
        assert all(f"{name} = off" in warning.msg and f"{name} = on" in warning.hint for name in off)
        assert "docs/operations.md" in warning.hint
    else:
        assert "core.W001" not in found


def test_the_database_checks_name_each_table_whose_own_autovacuum_is_off_however_it_was_written(
    postgres: None,
) -> None:
    # PostgreSQL keeps the option as written; each of these spellings turns autovacuum off for its table.
    with connection.cursor() as cursor:
        for table, value in (("mns_test_av_off", "off"), ("mns_test_av_zero", "0"), ("mns_test_av_false", "FALSE")):
            cursor.execute(f"CREATE TABLE {table} (id int) WITH (autovacuum_enabled = {value})")
        cursor.execute("CREATE TABLE mns_test_av_on (id int) WITH (autovacuum_enabled = on, fillfactor = 90)")

    warning = autovacuum_checks()["core.W002"]
    tables = connection.autovacuum_gaps()[1]

    assert tables == ["mns_test_av_false", "mns_test_av_off", "mns_test_av_zero"]
    assert all(table in warning.msg for table in tables)
    assert "mns_test_av_on" not in warning.msg
    assert "RESET (autovacuum_enabled)" in warning.hint
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE mns_test_av_off RESET (autovacuum_enabled)")
    assert "mns_test_av_off" not in connection.autovacuum_gaps()[1]


TIMESTAMPTZ = [
    "2026-12-07 03:24:23.606376+00",
    "2024-02-29 12:00:00+05:30",  # another zone: loaded in the session's, UTC
    "1969-12-31 23:59:59.5-08",
    "2026-03-29 01:30:00+01",  # a daylight-saving change elsewhere
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
]


def loaded(cursor: object) -> list[datetime.datetime]:
    cursor.execute(f"SELECT {', '.join(['%s::timestamptz'] * len(TIMESTAMPTZ))}", TIMESTAMPTZ)
    return list(cursor.fetchone())


def test_timestamps_load_through_psycopgs_loader_as_djangos_would_load_them(postgres: None) -> None:
    from django.db.backends.postgresql.psycopg_any import register_tzloader
    from psycopg.pq import Format

    from core.postgresql.base import UtcTimestamptzLoader

    oid = connection.connection.adapters.types["timestamptz"].oid
    with connection.cursor() as ours, connection.cursor() as djangos:
        # Django's cursor kept the connection's loader (it would register its own on a cursor whose loader's zone
        # differs, copying the cursor's adapters every time)...
        assert ours.cursor.adapters.get_loader(oid, Format.TEXT) is UtcTimestamptzLoader
        register_tzloader(connection.timezone, djangos.cursor)  # ... and this one has Django's
        assert djangos.cursor.adapters.get_loader(oid, Format.TEXT) is not UtcTimestamptzLoader
        values, expected = loaded(ours), loaded(djangos)
        serving = ours.cursor._tx.get_loader(oid, Format.TEXT).load

    assert values == expected
    assert all(value.tzinfo is datetime.UTC for value in values + expected)
    if psycopg.pq.__impl__ == "binary":  # CI's: each value is loaded by psycopg's loader in C, not by a frame of ours
        assert type(serving.__self__).__module__ == "psycopg_binary._psycopg"
    assert [value.isoformat() for value in values] == [value.isoformat() for value in expected]
    assert values[1].isoformat() == "2024-02-29T06:30:00+00:00"


def test_a_timestamp_python_cannot_hold_is_refused_by_both_loaders(postgres: None) -> None:
    from django.db import DataError
    from django.db.backends.postgresql.psycopg_any import register_tzloader

    for value in ("infinity", "-infinity"):
        with connection.cursor() as ours, connection.cursor() as djangos:
            register_tzloader(connection.timezone, djangos.cursor)
            for cursor in (ours, djangos):
                cursor.execute("SELECT %s::timestamptz", [value])
                with pytest.raises(DataError):
                    cursor.fetchone()


def test_a_connection_in_another_zone_keeps_djangos_loader(postgres: None) -> None:
    from psycopg.pq import Format

    from core.postgresql.base import UtcTimestamptzLoader

    other = connections.create_connection("default")
    other.settings_dict = {**other.settings_dict, "TIME_ZONE": "Europe/Paris"}
    oid = connection.connection.adapters.types["timestamptz"].oid

    loader = other.get_connection_params()["context"].get_loader(oid, Format.TEXT)

    assert loader is not UtcTimestamptzLoader
    assert str(loader.timezone) == "Europe/Paris"


def test_a_session_moved_to_another_zone_still_loads_the_instant_the_server_sent(postgres: None) -> None:
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'Europe/Paris'")
        with other.cursor() as cursor:
            cursor.execute("SELECT '2026-12-07 03:00:00+00'::timestamptz")
            (value,) = cursor.fetchone()
    finally:
        other.close()

    assert value == datetime.datetime(2026, 12, 7, 3, tzinfo=datetime.UTC)
    assert value.isoformat() == "2026-12-07T04:00:00+01:00"  # Django's loader would say 03:00 in UTC: an hour off


# --- A statement of many parameters (``core.postgresql.base.ClientQuery``) -------------------------------------------

MANY = [
    1,
    -(2**62),
    "it's; -- DROP TABLE x",
    "back\\slash %s %% %(x)s",
    b"\x00\xff'\\",
    datetime.datetime(2026, 12, 7, 3, 24, 23, 606376, tzinfo=datetime.UTC),
    True,
    None,
    3.5,
    "ünïcode ✓",
] * 12  # 120 parameters: past psycopg's 50, so psycopg would split the text every time


def bound(query: str | bytes, params: object, *, ours: bool = True) -> bytes:
    """The statement client-side binding sends: the backend's (``ClientQuery``), or psycopg's own."""
    from psycopg._queries import PostgresClientQuery

    from core.postgresql.base import ClientQuery

    binding = (ClientQuery if ours else PostgresClientQuery)(Transformer(connection.connection))
    binding.convert(query, params)
    return binding.query


def outcome(query: str | bytes, params: object, *, ours: bool = True) -> object:
    """``bound``, or the refusal's type and text."""
    try:
        return bound(query, params, ours=ours)
    except (psycopg.Error, TypeError, ValueError) as refused:
        return (type(refused), str(refused))


def test_psycopg_is_the_version_whose_internals_the_binding_was_read_against() -> None:
    # ClientQuery stands on psycopg._queries (its limits, QueryPart, what dump reads): read them again to upgrade.
    assert psycopg.__version__.startswith("3.3."), "read psycopg._queries again before upgrading (ClientQuery)"


def test_a_statement_of_many_parameters_is_bound_as_psycopg_binds_it_without_its_split(
    postgres: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from psycopg import _queries

    query = "SELECT 100 %% 7, '%%s', " + ", ".join(["%s"] * len(MANY))
    connection.ensure_connection()
    expected = bound(query, MANY, ours=False)

    def split(*args: object, **kwargs: object) -> object:
        raise AssertionError("the statement was split")

    monkeypatch.setattr(_queries, "_split_query", split)
    assert bound(query, MANY) == expected
    assert bound(query, tuple(MANY)) == expected
    with connection.cursor() as cursor:  # Django's cursor binds through it, and the server reads what was meant
        assert type(cursor.cursor).__module__ == "core.postgresql.base"
        assert cursor.cursor.mogrify(query, MANY) == expected.decode()
        cursor.execute(query, MANY)
        row = cursor.fetchone()
    assert row[:2] == (2, "%s")
    assert [bytes(v) if isinstance(v, memoryview) else v for v in row[2:]] == MANY


def test_a_long_text_of_few_parameters_is_bound_without_its_split_too(
    postgres: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from psycopg import _queries

    query = f"SELECT %s, %s /* {'x' * 5000} */"  # past psycopg's 4 096 bytes, with two parameters
    connection.ensure_connection()
    expected = bound(query, ["a", 1], ours=False)
    monkeypatch.setattr(_queries, "_split_query", lambda *a, **k: pytest.fail("the statement was split"))
    assert bound(query, ["a", 1]) == expected


def test_many_rows_of_many_parameters_are_bound_row_by_row(postgres: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE mns_test_many (a int, b text, c bytea)")
        rows = [[(i + j, f"r{i}'{j}%s", bytes([i, j])) for j in range(20)] for i in range(3)]
        statement = "INSERT INTO mns_test_many VALUES " + ", ".join(["(%s, %s, %s)"] * 20)  # noqa: S608 (no value in it)
        cursor.cursor.executemany(statement, [[v for row in group for v in row] for group in rows])
        cursor.execute("SELECT a, b, c FROM mns_test_many ORDER BY b")
        stored = [(a, b, bytes(c)) for a, b, c in cursor.fetchall()]
        with pytest.raises(psycopg.ProgrammingError, match="the query has 60 placeholders but 59 parameters"):
            cursor.cursor.executemany(statement, [[v for row in rows[0] for v in row], [1] * 59])
    assert stored == sorted((row for group in rows for row in group), key=lambda row: row[1])


@pytest.mark.parametrize(
    "query",
    [
        "SELECT " + ", ".join(["%s"] * 10),  # a short one: psycopg's own (it keeps the split)
        "SELECT %(a)s, " + ", ".join(["%s"] * 119),  # a name among the positions
        "SELECT 5 % 3, " + ", ".join(["%s"] * 120),  # a lone %
        "SELECT %b, " + ", ".join(["%s"] * 119),  # a binary placeholder
        "SELECT '%%s', '%%%s', " + ", ".join(["%s"] * 119),  # %% then s; %% then %s
        "SELECT " + ", ".join(["%s"] * 120) + " %",  # a % at the end
        "SELECT " + ", ".join(["%s"] * 120) + ", 7 %\n 2",  # a % before a new line
    ],
    ids=["short", "named", "lone-percent", "binary-placeholder", "doubled", "trailing", "newline"],
)
def test_any_other_statement_is_bound_or_refused_as_psycopg_does(postgres: None, query: str) -> None:
    connection.ensure_connection()
    for params in (MANY, MANY[:119], MANY[:10]):
        assert outcome(query, params) == outcome(query, params, ours=False)


@pytest.mark.parametrize("count", [119, 121])
def test_a_count_of_parameters_that_does_not_match_is_refused_as_psycopg_refuses_it(postgres: None, count: int) -> None:
    from psycopg import ProgrammingError

    query = "SELECT " + ", ".join(["%s"] * 120)
    connection.ensure_connection()
    params = MANY[:count] if count <= len(MANY) else [*MANY, 1]
    with pytest.raises(ProgrammingError, match="the query has 120 placeholders but") as refused:
        bound(query, params)
    with pytest.raises(ProgrammingError) as theirs:
        bound(query, params, ours=False)
    assert str(refused.value) == str(theirs.value)


# --- Statements kept prepared (``DatabaseWrapper.execute_prepared``) ---------------------------------------------

PREPARED = "SELECT %s::int + %s, '100%%' || %s, (SELECT count(*) FROM django_migrations WHERE app = %s) >= 0"
PREPARED_ARGS = [1, 2, "sure", "mailboxes"]
PREPARED_ROW = (3, "100%sure", True)


def prepared_on(conn: object) -> dict[str, tuple[int, int]]:
    """The statements prepared on ``conn``'s session, with how many of their runs had the generic or a custom plan."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT name, generic_plans, custom_plans FROM pg_prepared_statements")
        return {name: (generic, custom) for name, generic, custom in cursor.fetchall()}


def run_prepared(conn: object, sql: str = PREPARED, params: list[object] = PREPARED_ARGS) -> tuple[list[str], tuple]:
    """The statements ``execute_prepared`` sent for one call, and the row it read."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(conn) as captured, conn.cursor() as cursor:
        conn.execute_prepared(cursor, sql, params)
        row = cursor.fetchone()
    return [query["sql"] for query in captured.captured_queries], row


@contextlib.contextmanager
def in_a_transaction(conn: object) -> Iterator[None]:
    """``conn`` out of autocommit (in a transaction, as a request's ``atomic`` block puts it), rolled back after."""
    conn.set_autocommit(False)
    try:
        yield
    finally:
        conn.rollback()
        conn.set_autocommit(True)


def test_a_statement_is_prepared_once_a_connection_then_executed_by_name(kept: object) -> None:
    sent, row = run_prepared(kept)
    assert row == PREPARED_ROW  # %% is a percent sign, each %s the next value
    assert [q.split()[0] for q in sent] == ["PREPARE", "EXECUTE"]
    name = sent[1].split()[1]
    assert list(prepared_on(kept)) == [name]
    # Each parameter has the type of the literal its value makes (a string's is PostgreSQL's to infer).
    assert sent[0].startswith(f"PREPARE {name} (integer, integer, unknown, unknown) AS SELECT $1::int + $2, '100%' ||")

    sent, row = run_prepared(kept, params=[5, 6, "!", "x"])
    assert row == (11, "100%!", True)
    assert sent == [f"EXECUTE {name} (5, 6, '!', 'x')"]  # prepared once

    sent, row = run_prepared(kept, params=[None, 1, None, None])  # other types: a statement of its own
    assert row == (None, None, True)
    assert [q.split()[0] for q in sent] == ["PREPARE", "EXECUTE"]
    assert "(unknown, integer, unknown, unknown)" in sent[0]
    assert sent[1].split()[1] != name

    sent, row = run_prepared(kept, "SELECT 1", [])  # no parameters
    assert row == (1,)
    assert sent[1] == f"EXECUTE {sent[1].split()[1]}"
    assert len(prepared_on(kept)) == 3


@pytest.mark.parametrize(
    "value",
    [
        True,
        7,
        2**31,  # past integer: bigint, as its literal
        2**70,  # past bigint: numeric
        Int2(7),  # Django's wrappers of an integer field's value: a bare number too
        Int4(-(2**31)),
        b"\x00\xff",
        memoryview(b"ab"),
        datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.UTC),
        datetime.datetime(2026, 12, 7, 10, 0),  # naive: timestamp
        datetime.date(2026, 12, 7),
        uuid.UUID(int=7),
        Jsonb({"a": [1, None]}),
    ],
    ids=repr,
)
def test_every_value_reads_back_as_it_would_without_preparing(kept: object, value: object) -> None:
    sql = "SELECT %s, pg_typeof(%s)::text"
    sent, prepared = run_prepared(kept, sql, [value, value])
    assert sent[0].startswith("PREPARE")
    kept.settings_dict = {**kept.settings_dict, "PREPARED_STATEMENTS": False}
    assert run_prepared(kept, sql, [value, value])[1] == prepared


def test_a_value_of_a_type_it_does_not_know_is_executed_as_it_is(kept: object) -> None:
    class Point(tuple):  # a type psycopg adapts (as a tuple: a record) but the preparation does not know
        pass

    # A float's or a Decimal's literal is an integer, a numeric or a float8, by the value: not prepared either.
    for value in (Point((1, 2)), 1.5, decimal.Decimal(7), decimal.Decimal("1.25")):
        sent, row = run_prepared(kept, "SELECT %s IS NOT NULL", [value])
        assert row == (True,)
        assert [q.split()[0] for q in sent] == ["SELECT"]
    assert prepared_on(kept) == {}


def repr_sql(value: object) -> str:
    return "NULL" if value is None else str(value) if isinstance(value, int) else f"'{value}'"


def test_a_rolled_back_transaction_keeps_the_statement_it_prepared(kept: object) -> None:
    from django.db import transaction

    def prepared_then_rolled_back() -> None:
        with transaction.atomic(using=kept.alias):
            run_prepared(kept)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        prepared_then_rolled_back()
    sent, row = run_prepared(kept)
    assert row == PREPARED_ROW
    assert [q.split()[0] for q in sent] == ["EXECUTE"]


def test_a_new_connection_and_a_session_that_lost_its_statements_prepare_again(kept: object) -> None:
    from django.db import OperationalError

    from core.postgresql.base import StatementLost

    run_prepared(kept)
    kept.close()
    sent, row = run_prepared(kept)  # a new session: none of the old one's statements
    assert [q.split()[0] for q in sent] == ["PREPARE", "EXECUTE"]

    with kept.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # as DISCARD ALL, or a pooler's reset, would
    sent, row = run_prepared(kept)  # outside a transaction the failed EXECUTE changed nothing: prepared again
    assert row == PREPARED_ROW
    assert [q.split()[0] for q in sent] == ["EXECUTE", "PREPARE", "EXECUTE"]
    old, new = sent[0].split()[1], sent[2].split()[1]
    assert old != new  # under a new name, which says what it is as the old one did
    assert old.rsplit("_", 1)[0] == new.rsplit("_", 1)[0]

    with kept.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    with in_a_transaction(kept):  # in a transaction the failure aborted it: the caller sees it
        with pytest.raises(StatementLost) as lost:  # an OperationalError: transient, tried again by its caller
            run_prepared(kept)
        assert isinstance(lost.value, OperationalError)
        assert isinstance(lost.value.__cause__.__cause__, psycopg.errors.InvalidSqlStatementName)
        kept.rollback()
        sent, row = run_prepared(kept)  # and the next call prepares it again (in a transaction: under a savepoint)
        assert row == PREPARED_ROW
        assert [q.split()[0] for q in sent] == ["SAVEPOINT", "PREPARE", "RELEASE", "EXECUTE"]


def test_a_statement_the_session_lost_alone_is_prepared_again_and_the_others_are_kept(kept: object) -> None:
    other = "SELECT %s::int * 2"
    first, _ = run_prepared(kept)
    run_prepared(kept, other, [2])
    with kept.cursor() as cursor:
        cursor.execute(f"DEALLOCATE {first[1].split()[1]}")
    sent, row = run_prepared(kept)
    assert row == PREPARED_ROW
    assert [q.split()[0] for q in sent] == ["EXECUTE", "PREPARE", "EXECUTE"]
    sent, row = run_prepared(kept, other, [3])  # still prepared, under its name
    assert row == (6,)
    assert [q.split()[0] for q in sent] == ["EXECUTE"]


def test_inside_an_atomic_block_the_statement_is_prepared_under_a_savepoint(postgres: None) -> None:
    from django.db import transaction

    with transaction.atomic():
        sent, row = run_prepared(connection, "SELECT %s::int - 1", [5])
        assert row == (4,)
        assert [q.split()[0] for q in sent] in (["SAVEPOINT", "PREPARE", "RELEASE", "EXECUTE"], ["EXECUTE"])
        sent, row = run_prepared(connection, "SELECT %s::int - 1", [9])
        assert (row, [q.split()[0] for q in sent]) == ((8,), ["EXECUTE"])


def test_a_plan_that_no_longer_fits_is_prepared_again(kept: object) -> None:
    with kept.cursor() as cursor:
        cursor.execute("CREATE TABLE mns_test_prepared (v int)")
        cursor.execute("INSERT INTO mns_test_prepared VALUES (1)")
    try:
        assert run_prepared(kept, "SELECT v FROM mns_test_prepared WHERE v = %s", [1])[1] == (1,)
        with kept.cursor() as cursor:
            cursor.execute("ALTER TABLE mns_test_prepared ALTER COLUMN v TYPE bigint")  # a migration, say
        sent, row = run_prepared(kept, "SELECT v FROM mns_test_prepared WHERE v = %s", [1])
        assert row == (1,)
        assert [q.split()[0] for q in sent] == ["EXECUTE", "PREPARE", "EXECUTE"]
    finally:
        with kept.cursor() as cursor:
            cursor.execute("DROP TABLE mns_test_prepared")


def test_a_statement_postgresql_cannot_prepare_runs_as_it_is(kept: object) -> None:
    sql = "SELECT %s IS NULL"  # a NULL here has no type to be prepared with, as the literal needs none
    sent, row = run_prepared(kept, sql, [None])
    assert row == (True,)
    assert [q.split()[0] for q in sent] == ["PREPARE", "SELECT"]
    sent, row = run_prepared(kept, sql, ["x"])  # the same types: run as it is from then on, not tried again
    assert row == (False,)
    assert [q.split()[0] for q in sent] == ["SELECT"]

    with in_a_transaction(kept):  # in a transaction the refusal is under a savepoint: the transaction goes on
        sent, row = run_prepared(kept, "SELECT pg_typeof(%s)::text", ["x"])
        assert row == ("unknown",)
        assert [q.split()[0] for q in sent] == ["SAVEPOINT", "PREPARE", "ROLLBACK", "SELECT"]
        sent, row = run_prepared(kept)
        assert row == PREPARED_ROW
        assert [q.split()[0] for q in sent] == ["SAVEPOINT", "PREPARE", "RELEASE", "EXECUTE"]


def test_with_prepared_statements_off_the_statement_is_executed_as_it_is(kept: object) -> None:
    kept.settings_dict = {**kept.settings_dict, "PREPARED_STATEMENTS": False}  # this connection's only
    sent, row = run_prepared(kept)
    assert row == PREPARED_ROW
    assert sent == [
        "SELECT 1::int + 2, '100%' || 'sure', (SELECT count(*) FROM django_migrations WHERE app = 'mailboxes') >= 0"
    ]
    assert prepared_on(kept) == {}


def test_statements_sent_before_it_run_in_the_same_query_and_bound_it(kept: object) -> None:
    """``before``: a ``SET LOCAL`` in the same query, which PostgreSQL runs as one implicit transaction, so it holds
    for the prepared statement and ends with it (the webhook's bound on waiting, ``maxima.services``)."""
    from django.db import OperationalError
    from django.test.utils import CaptureQueriesContext

    sql = "SELECT current_setting('statement_timeout'), (SELECT 1 FROM pg_sleep(%s / 1000.0))"

    def run(timeout_ms: int, sleep_ms: int) -> tuple[list[str], tuple]:
        with CaptureQueriesContext(kept) as captured, kept.cursor() as cursor:
            kept.execute_prepared(cursor, sql, [sleep_ms], before=f"SET LOCAL statement_timeout = {timeout_ms}; ")
            cursor.nextset()
            row = cursor.fetchone()
        return [query["sql"] for query in captured.captured_queries], row

    sent, row = run(4321, 0)
    assert row == ("4321ms", 1)
    assert sent[0].startswith("SET LOCAL statement_timeout = 4321; PREPARE ")  # bounded too: it may wait for locks
    name = sent[0].split("; ")[1].split()[1]
    assert sent[1:] == [f"SET LOCAL statement_timeout = 4321; EXECUTE {name} (0)"]
    with pytest.raises(OperationalError, match="statement timeout"):
        run(20, 500)  # the bound holds for the prepared statement
    assert run(4001, 0)[1] == ("4001ms", 1)
    with kept.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone() != ("4001ms",)  # and ends with its query
    with kept.cursor() as cursor:
        cursor.execute(f"DEALLOCATE {name}")
    sent, row = run(3001, 0)  # lost, as any: prepared again, and sent again with what goes before it
    assert row == ("3001ms", 1)
    assert [q.split("; ")[1].split()[0] for q in sent] == ["EXECUTE", "PREPARE", "EXECUTE"]
    for before in ("SELECT 1; ", "SET LOCAL statement_timeout = 1", "SET LOCAL a = 1; DELETE FROM t; "):
        with pytest.raises(ValueError, match="only SET LOCAL"), kept.cursor() as cursor:
            kept.execute_prepared(cursor, sql, [0], before=before)  # sent twice: only what may be


def test_a_prepare_that_waits_for_a_lock_is_bounded_raises_and_is_tried_again_next_time(kept: object) -> None:
    """``PREPARE`` takes the locks of the tables it names, as the statement would: a webhook's bound on waiting holds
    for it too, and a failure that is not the statement's own is raised, not remembered."""
    from django.db import OperationalError
    from django.test.utils import CaptureQueriesContext

    other = connections.create_connection("default")
    sql = "SELECT count(*) FROM mns_test_locked WHERE v = %s"
    with kept.cursor() as cursor:
        cursor.execute("SET lock_timeout = '5s'")  # if the bound did not hold: a failure, not a test that hangs
        cursor.execute("CREATE TABLE mns_test_locked (v int)")
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("LOCK TABLE mns_test_locked IN ACCESS EXCLUSIVE MODE")
        with (
            CaptureQueriesContext(kept) as failed,
            pytest.raises(OperationalError, match="statement timeout"),
            kept.cursor() as cursor,
        ):
            kept.execute_prepared(cursor, sql, [1], before="SET LOCAL statement_timeout = 100; ")
        other.rollback()
        # The PREPARE met the bound, and its failure was raised: the statement was not sent again as it is.
        [only] = [q["sql"] for q in failed.captured_queries]
        assert only.startswith("SET LOCAL statement_timeout = 100; PREPARE mns_")
        with CaptureQueriesContext(kept) as captured, kept.cursor() as cursor:
            kept.execute_prepared(cursor, sql, [1], before="SET LOCAL statement_timeout = 100; ")
            cursor.nextset()
            assert cursor.fetchone() == (0,)
        assert [q["sql"].split("; ")[1].split()[0] for q in captured.captured_queries] == ["PREPARE", "EXECUTE"]
    finally:
        other.close()
        with kept.cursor() as cursor:
            cursor.execute("DROP TABLE mns_test_locked")


def test_sqlite_cannot_send_a_statement_before_another(tmp_path: object) -> None:
    from django.db import NotSupportedError
    from django.db.utils import ConnectionHandler

    handler = ConnectionHandler({"default": {"ENGINE": "core.sqlite", "NAME": str(tmp_path / "db.sqlite3")}})
    sqlite = handler["default"]
    try:
        with sqlite.cursor() as cursor:
            sqlite.execute_prepared(cursor, "SELECT %s + 1", [1])
            assert cursor.fetchone() == (2,)
            with pytest.raises(NotSupportedError):
                sqlite.execute_prepared(cursor, "SELECT 1", [], before="SELECT 2; ")
    finally:
        sqlite.close()


def test_the_settings_keep_statements_prepared_unless_told_not_to(postgres: None) -> None:
    import subprocess
    import sys

    code = "from django.conf import settings; print(settings.DATABASES['default']['PREPARED_STATEMENTS'])"
    for value, expected in ((None, "True"), ("false", "False"), ("true", "True")):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mns_site.settings"}
        env.pop("DATABASE_PREPARED_STATEMENTS", None)
        if value is not None:
            env["DATABASE_PREPARED_STATEMENTS"] = value
        shown = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"], env=env, capture_output=True, text=True
        )
        assert shown.stdout.split()[-1:] == [expected], shown.stderr
