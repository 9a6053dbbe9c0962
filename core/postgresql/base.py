"""Django's PostgreSQL backend, whose per-request health check looks at the socket instead of sending ``SELECT 1``.

Persistent connections (``CONN_MAX_AGE``) need a health check (``CONN_HEALTH_CHECKS``): after PostgreSQL restarts,
every kept connection is dead, and without a check each web process answers its next request with a 500 before
Django drops the connection. Django's check is a ``SELECT 1`` at the first query of every request: one more round
trip on every request (12-22 % of a lookup in the profiles).

Here the check asks the kernel instead. A connection between two requests is idle: PostgreSQL sends nothing on it
unless it is going away (a shutdown or ``pg_terminate_backend`` sends a FATAL error and closes it; a crashed
server's socket reads as closed). So a kept connection whose socket has something to read is dropped, to be
opened again. A ``select`` with no timeout is a system call, not a round trip. A peer that vanished without
closing (a cable cut) is not seen, as it would not be by ``SELECT 1`` within its own timeout either; the
gateway's database is on the same host or network.

The backend also checks the server's configuration where Django checks a database's (``manage.py migrate``, ``check
--database default``): a warning when autovacuum is off, for the server or for some of its tables.

And two costs of Django's psycopg set-up are taken out of the hot paths: it loads ``timestamptz`` values with
psycopg's own loader (C, with psycopg's binary package), where Django's loader parses each value in Python
(``UtcTimestamptzLoader``); and a statement of many parameters is bound without psycopg splitting its text in
Python every time (``ClientQuery``).

The hottest statements can be kept prepared on the connection (``DatabaseWrapper.execute_prepared``), so that
PostgreSQL does not plan them again on every request.
"""

import datetime
import functools
import hashlib
import ipaddress
import itertools
import logging
import re
import select
import uuid
import weakref
from collections.abc import Sequence

from django.core import checks
from django.db import DatabaseError, OperationalError
from django.db.backends.base.validation import BaseDatabaseValidation
from django.db.backends.postgresql import base
from psycopg import Binary, _queries, adapt, adapters, errors
from psycopg.adapt import PyFormat
from psycopg.pq import Format
from psycopg.types.json import Jsonb


class DatabaseValidation(BaseDatabaseValidation):
    def check(self, **kwargs: object) -> list[checks.CheckMessage]:
        return [*super().check(**kwargs), *self._check_autovacuum()]

    def _check_autovacuum(self) -> list[checks.CheckMessage]:
        """The queues (Maxima's inbound events, the outbox, the handshakes' challenges) change every row's status
        as it is handled, and each claim walks its index from the oldest row still listed there. Without
        autovacuum the dead versions stay listed until a VACUUM runs (by hand, or the one PostgreSQL forces near
        transaction-id wraparound), and every claim reads past them (5 000 a claim after a few benchmark runs,
        ``docs/performance.md``)."""
        off, tables = self.connection.autovacuum_gaps()
        found = []
        if off:
            found.append(
                checks.Warning(
                    f"PostgreSQL's autovacuum is off ({', '.join(f'{name} = off' for name in off)}): the queues' dead "
                    "rows stay until a VACUUM runs, and every claim reads past them.",
                    hint=f"Set {' and '.join(f'{name} = on' for name in off)} (PostgreSQL's default) and reload the "
                    "server, or VACUUM the gateway's database on a schedule (docs/operations.md).",
                    obj=self.connection.alias,
                    id="core.W001",
                )
            )
        if tables:
            found.append(
                checks.Warning(
                    f"PostgreSQL's autovacuum is off for {', '.join(tables)} (the table's own autovacuum_enabled): "
                    "their dead rows stay until a VACUUM runs.",
                    hint="ALTER TABLE … RESET (autovacuum_enabled) for each (docs/operations.md).",
                    obj=self.connection.alias,
                    id="core.W002",
                )
            )
        return found


# The tables (and materialized views) of the connection's schema that autovacuum skips by their own setting, each
# named as SQL takes it (``regclass``: quoted where it must be, with its schema where the search path would not find
# it). PostgreSQL keeps the value as it was written (``off``, ``false``, ``0``…); the cast reads it as the server
# does. A partitioned table cannot take the option (its partitions are tables of their own).
_TABLES_WITHOUT_AUTOVACUUM = """
SELECT c.oid::regclass::text FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace, pg_options_to_table(c.reloptions) o
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')
  AND o.option_name = 'autovacuum_enabled' AND NOT o.option_value::boolean
ORDER BY c.relname
"""


class UtcTimestamptzLoader(adapt.Loader):
    """``timestamptz`` loaded by psycopg's own loader, on a connection Django keeps in UTC.

    Django registers a loader of its own (``psycopg_any.BaseTzLoader``): psycopg's Python loader, which parses the
    text in Python, then ``replace(tzinfo=…)`` with Django's zone, the one it sets the session to. psycopg's binary
    package has a loader in C, which converts the value to the session's zone itself. That class cannot be
    subclassed, and Django reads ``timezone`` on the connection's loader before every cursor (a loader with another
    zone is registered again on that cursor, copying the cursor's adapters; one without the attribute fails every
    cursor). So this class carries Django's ``timezone`` and hands each value to an instance of psycopg's loader:
    its ``load`` is that instance's method, which psycopg's Transformer takes from each loader instance once (no
    Python frame runs per value). 21 rows of four timestamp columns through a Django cursor: 318 → 99 µs of CPU
    (``docs/performance.md``). Without psycopg's binary package, psycopg's Python loader does the same conversion.

    Only a connection whose Django zone is UTC gets this loader (``USE_TZ``, no ``TIME_ZONE`` of the database's own;
    ``DatabaseWrapper.get_connection_params``), and Django sets that connection's session to UTC as it opens it
    (``ensure_timezone``): while the session is in UTC, the values are the instants Django's loader gives, in the same
    zone. (The gateway never moves a session to another zone. In one moved by hand, this loader gives the right
    instant in the session's zone, where Django's relabels the local time as UTC.)
    """

    timezone = datetime.UTC
    _psycopg = adapters.get_loader(adapters.types["timestamptz"].oid, Format.TEXT)

    def __init__(self, oid: int, context: object = None) -> None:
        super().__init__(oid, context)
        self._loader = self._psycopg(oid, context)
        self.load = self._loader.load  # type: ignore[method-assign]  # what the Transformer calls: psycopg's own

    def load(self, data: bytes) -> datetime.datetime:
        return self._loader.load(data)


# Every ``%`` of the statement is ``%%`` (a literal percent sign) or ``%s`` (a positional parameter).
_POSITIONAL_ONLY = re.compile(rb"[^%]*+(?:%[%s][^%]*+)*+")
# What psycopg's ``dump`` reads of the split (``validate_and_reorder_params``): one part a parameter and one more,
# the first numbered (positional). Nothing in psycopg changes a part.
_PART = _queries.QueryPart(b"", 0, PyFormat.AUTO)


class ClientQuery(_queries.PostgresClientQuery):
    """psycopg's client-side binding (Django's default), without splitting a long statement's text in Python.

    psycopg splits a statement into its text and placeholders with a regular expression and a loop in Python over
    every placeholder, and keeps the split for the next time only for statements of at most 50 parameters and 4 096
    bytes (``psycopg._queries``, not a setting). The gateway's batch statements are past both (a run of 25
    deliveries is one ``INSERT`` of 400 parameters and more, the ORM's ``id IN (…)`` of a batch one parameter an
    id), so each was split again every time, the same text or not: about 0.7-0.9 ms of CPU for 400 parameters, a
    fifth of the Maxima drain worker's Python (``docs/performance.md``).

    For a statement with positional parameters only (``%s``, and ``%%`` for a percent sign), the split's template
    is the text itself. So when a statement is past psycopg's limits, has no other ``%`` and as many ``%s`` as
    values (two checks in C), the text is the template, and psycopg's own ``dump`` quotes each value
    (``as_literal``) and fills it in, as before. Anything else (named parameters, ``%b``, ``%t``, a lone ``%``, a
    count that does not match) is psycopg's, which answers as it always did. It serves the cursors Django makes with
    client-side binding (``Cursor``); a named (server-side) cursor keeps psycopg's.
    """

    __slots__ = ()

    def convert(self, query: object, vars: object) -> None:
        if isinstance(query, str):
            query = query.encode(self._tx.encoding)
            if isinstance(vars, list | tuple) and self._positional(query, len(vars)):
                self.template, self._order, self._parts = query, None, [_PART] * (len(vars) + 1)
                self.dump(vars)
                return
        super().convert(query, vars)

    @staticmethod
    def _positional(text: bytes, count: int) -> bool:
        """Whether psycopg would split ``text`` for ``count`` values again (past its limits), into itself."""
        if len(text) <= _queries.MAX_CACHED_STATEMENT_LENGTH and count <= _queries.MAX_CACHED_STATEMENT_PARAMS:
            return False  # psycopg keeps its split of this one
        # Every % is %% or %s (read left to right), so with the %% taken out, each %s left is a parameter.
        return _POSITIONAL_ONLY.fullmatch(text) is not None and text.replace(b"%%", b"").count(b"%s") == count


class Cursor(base.Cursor):
    """Django's cursor, binding through ``ClientQuery``."""

    _query_cls = ClientQuery


@functools.cache
def _utc_adapters(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    """Django's adapters for a connection (``get_adapters_template``), with ``UtcTimestamptzLoader``."""
    utc = adapt.AdaptersMap(template)
    utc.register_loader("timestamptz", UtcTimestamptzLoader)
    return utc


_UNPREPARED = "a statement PostgreSQL would not prepare"
# The statements prepared on each psycopg connection's session (``execute_prepared``), by their declared types and
# text: each one's name, or ``_UNPREPARED``. Kept as long as the connection is.
_PREPARED: weakref.WeakKeyDictionary[object, dict[str, str]] = weakref.WeakKeyDictionary()
_NAMES = itertools.count()
logger = logging.getLogger(__name__)
# What ``execute_prepared`` sends before a statement: settings local to the transaction.
_BEFORE = re.compile(r"(SET LOCAL [a-z_]+ = [0-9]+; )*")
# A placeholder of a statement given with parameters: ``%s`` (the next one) or ``%%`` (a percent sign).
_PLACEHOLDERS = re.compile(r"%[s%]")


# The type of the literal psycopg's client-side binding makes of a value, by the first of its class's bases found
# here, as psycopg picks its dumper: what a parameter of ``execute_prepared`` is prepared with. (Not a float, nor a
# Decimal: their literals are an integer, a numeric or a float8, by the value.)
_NUMBER = "a number"
_PREPARED_TYPES = {
    type(None): "unknown",
    str: "unknown",
    bool: "boolean",
    int: _NUMBER,  # a bare number, typed by its value (Django's Int2, Int4… of an integer field's value too)
    bytes: "bytea",
    bytearray: "bytea",
    memoryview: "bytea",
    Binary: "bytea",
    datetime.datetime: "timestamptz",
    datetime.date: "date",
    uuid.UUID: "uuid",
    Jsonb: "jsonb",
    # what Django binds a GenericIPAddressField's value as (psycopg's literal: '…'::inet)
    ipaddress.IPv4Address: "inet",
    ipaddress.IPv6Address: "inet",
}


@functools.cache
def _type_of_class(cls: type) -> str | None:
    return next((_PREPARED_TYPES[base] for base in cls.__mro__ if base in _PREPARED_TYPES), None)


def _prepared_type(value: object) -> str | None:
    """The type ``value``'s parameter is prepared with (None: none that is sure to be its literal's)."""
    found = _type_of_class(type(value))
    if found is _NUMBER:  # an integer if it is one, else a bigint, else a numeric, as PostgreSQL reads the literal
        return "integer" if -(2**31) <= value < 2**31 else "bigint" if -(2**63) <= value < 2**63 else "numeric"
    if found == "timestamptz" and value.tzinfo is None:  # type: ignore[union-attr]
        return "timestamp"
    return found


class StatementLost(OperationalError):
    """An ``EXECUTE`` whose prepared statement was lost (``_lost``) inside a transaction, which it failed: the next
    call prepares it again, so whoever handles transient database errors may simply try again."""


def _lost(error: BaseException | None) -> bool:
    """Whether an ``EXECUTE`` failed because its prepared statement is gone (``DEALLOCATE``, ``DISCARD ALL``) or
    its kept plan no longer fits what it reads (a column's type changed; told by where PostgreSQL raised it, since
    its message is in the server's language)."""
    if isinstance(error, errors.InvalidSqlStatementName):
        return True
    return isinstance(error, errors.FeatureNotSupported) and error.diag.source_function == "RevalidateCachedQuery"


def _numbered(sql: str) -> str:
    """``sql``'s placeholders as PREPARE takes them: ``$1``, ``$2``… for each ``%s``, and ``%`` for ``%%``."""
    number = itertools.count(1)
    return _PLACEHOLDERS.sub(lambda found: "%" if found[0] == "%%" else f"${next(number)}", sql)


class DatabaseWrapper(base.DatabaseWrapper):
    validation_class = DatabaseValidation

    def get_connection_params(self) -> dict[str, object]:
        params = super().get_connection_params()
        if params.get("cursor_factory") is base.Cursor:  # client-side binding, Django's default
            params["cursor_factory"] = Cursor
        if self.timezone is datetime.UTC and "context" in params:  # USE_TZ, and no TIME_ZONE of its own
            params["context"] = _utc_adapters(params["context"])
        return params

    def autovacuum_gaps(self) -> tuple[list[str], list[str]]:
        """What keeps autovacuum from this database's tables: the server's settings that are off (``autovacuum``
        itself, or ``track_counts``, without which it has no counts to go by and vacuums nothing), and the tables of
        the connection's schema whose own ``autovacuum_enabled`` is false, each named as SQL takes it. The bench
        vacuums them itself (``bench.seed.vacuum``); ``manage.py check`` warns of them (``core.W001``, ``W002``)."""
        with self.cursor() as cursor:
            cursor.execute(
                "SELECT name FROM pg_settings WHERE name IN ('autovacuum', 'track_counts') AND setting = 'off' "
                "ORDER BY name"
            )
            off = [name for (name,) in cursor.fetchall()]
            cursor.execute(_TABLES_WITHOUT_AUTOVACUUM)
            tables = [name for (name,) in cursor.fetchall()]
        return off, tables

    def execute_prepared(self, cursor: object, sql: str, params: Sequence[object], *, before: str = "") -> None:
        """``cursor.execute(before + sql, params)``, with ``sql`` prepared once on this connection's session and
        executed by name after that: PostgreSQL then parses and plans it once, not on every request.

        For a handful of hot statements whose text is the same from one call to the next (values as parameters,
        ``%s``, and only a few texts in all: each is kept on the server for the connection's life). After five runs
        PostgreSQL keeps a generic plan when it costs no more than the plans made for the values
        (``plan_cache_mode``), so a value that decides the plan (a ``LIMIT``) belongs in the text. The mailbox
        read's statement: 275-285 → 50-65 µs of the server's CPU for one message, 475-490 → 100-110 µs for the
        newest (``docs/performance.md``, "Statements kept prepared").

        Each parameter is prepared with the type of the literal psycopg's client-side binding makes of its value
        (``_PREPARED_TYPES``; a string or a NULL is ``unknown``, typed by where it stands, as the literal is), and
        the values are bound into ``EXECUTE`` as they would be into the statement: the same values, the same
        types. A value of another type, and ``DATABASE_PREPARED_STATEMENTS=false``, execute the statement as it is;
        so does a statement PostgreSQL cannot prepare with these types (an ``unknown`` where nothing gives it a type,
        as in ``%s IS NULL``), from then on for this connection. ``PREPARE`` belongs to the session, not the
        transaction: a rollback keeps it, so the names kept here hold until the connection closes. A pooler that
        hands sessions from client to client between transactions (PgBouncer in transaction mode, any version:
        it tracks the protocol's prepared statements, not SQL's) needs the setting off. If the session lost the
        statement (``DEALLOCATE``, ``DISCARD ALL``) or its kept plan no longer fits (a column's type changed), the
        execution fails and the statement is prepared again under a new name: at once outside a transaction,
        where the failure changed nothing, else at the next call (the failure is raised as ``StatementLost``, an
        ``OperationalError``, so that a caller treats it as the transient error it is).

        ``before``: ``SET LOCAL name = number; `` statements sent ahead of it in the same query, which PostgreSQL
        runs as one implicit transaction outside a transaction block; their results come first, and the caller
        moves to the statement's own with ``nextset``. They are sent with the ``PREPARE`` as well (a bound on
        waiting holds for it too) and again with a statement prepared again: only settings local to the
        transaction, which may be set twice, are taken."""
        if not _BEFORE.fullmatch(before):
            raise ValueError(f"only SET LOCAL name = number; statements go before a prepared one, not {before!r}")
        types = [_prepared_type(value) for value in params]
        if not self.settings_dict.get("PREPARED_STATEMENTS", True) or None in types:
            cursor.execute(f"{before}{sql}", params)
            return
        prepared = _PREPARED.setdefault(self.connection, {})  # this session's (a new connection has none)
        declared = f" ({', '.join(types)})" if types else ""
        key = f"{declared}{sql}"
        for again in (False, True):
            name = prepared.get(key) or self._prepare(cursor, prepared, key, declared, sql, before)
            if name is _UNPREPARED:
                cursor.execute(f"{before}{sql}", params)
                return
            try:
                arguments = f" ({', '.join(['%s'] * len(params))})" if params else ""
                cursor.execute(f"{before}EXECUTE {name}{arguments}", params)
                return
            except DatabaseError as failed:
                if not _lost(failed.__cause__):
                    raise
                del prepared[key]  # prepared again under a new name: the old one may linger
                if again or not self.get_autocommit():
                    # The caller's transaction (or savepoint) failed with it: a transient error, as the database
                    # blinking is, so that a handler's event is tried again rather than failed for good.
                    raise StatementLost("a prepared statement was lost; the next call prepares it again") from failed

    def _prepare(self, cursor: object, prepared: dict[str, str], key: str, declared: str, sql: str, before: str) -> str:
        """``PREPARE`` the statement under a name new on this session, which says what it is (a digest of its types
        and text: no session can hold another statement under it) and kept in ``prepared``, after ``before`` in the
        same query (a bound on waiting holds for the ``PREPARE`` too: it waits for the locks of the tables it names
        as the statement would). ``_UNPREPARED`` if PostgreSQL refused the statement itself (class 42: it cannot
        type a parameter, say), kept too; any other failure (a timeout, a lock, the connection) is raised, as the
        statement would have met it, and is this call's only. Inside a transaction under a savepoint, so that a
        failure leaves the transaction as it was."""
        digest = hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
        name = f"mns_{digest}_{next(_NAMES)}"
        savepoint = self.savepoint()  # None outside a transaction
        try:
            cursor.execute(f"{before}PREPARE {name}{declared} AS {_numbered(sql)}")
        except DatabaseError as failed:
            if savepoint:
                self.savepoint_rollback(savepoint)
            if not (getattr(failed.__cause__, "sqlstate", None) or "").startswith("42"):
                raise
            logger.warning("a statement could not be prepared; it runs as it is on this connection", exc_info=True)
            prepared[key] = _UNPREPARED
            return _UNPREPARED
        if savepoint:
            self.savepoint_commit(savepoint)
        prepared[key] = name
        return name

    def close_if_health_check_failed(self) -> None:
        if self.connection is None or not self.health_check_enabled or self.health_check_done or self.pool:
            return
        if not self.is_alive():
            self.close()
        self.health_check_done = True

    def is_alive(self) -> bool:
        """Whether the idle connection is still open, without a round trip to the server."""
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError, base.Database.Error):
            return False
        # The server spoke first, on a connection with nothing asked: a FATAL before it closes, or end of file.
        # (Anything else unasked, such as a NOTIFY, would only cost a reconnection: the gateway LISTENs to nothing.)
        return not readable and connection.pgconn.status == base.Database.pq.ConnStatus.OK
