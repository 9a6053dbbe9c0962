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
"""

import datetime
import functools
import re
import select

from django.core import checks
from django.db.backends.base.validation import BaseDatabaseValidation
from django.db.backends.postgresql import base
from psycopg import _queries, adapt, adapters
from psycopg.adapt import PyFormat
from psycopg.pq import Format


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
    subclassed, and Django reads ``timezone`` on the connection's loader before every cursor (a loader without it,
    or with another zone, is registered again on that cursor, which copies the cursor's adapters). So this class
    carries Django's ``timezone`` and hands each value to an instance of psycopg's loader, whose method is the
    instance's ``load`` (psycopg's row maker looks ``load`` up on each loader instance). A page of 21 messages' four
    timestamp columns through a Django cursor: 318 → 99 µs of CPU (``docs/performance.md``). Without psycopg's
    binary package, psycopg's Python loader does the same conversion.

    The values are the same instants in the same zone: only a connection whose Django zone is UTC (``USE_TZ``, no
    ``TIME_ZONE`` of the database's own) gets this loader (``DatabaseWrapper.get_connection_params``), and Django
    sets that connection's session to UTC as it opens it (``ensure_timezone``). In a session moved to another zone
    by hand, this loader still gives the right instant (in that zone), where Django's would relabel the local time.
    """

    timezone = datetime.UTC
    _psycopg = adapters.get_loader(adapters.types["timestamptz"].oid, Format.TEXT)

    def __init__(self, oid: int, context: object = None) -> None:
        super().__init__(oid, context)
        self._loader = self._psycopg(oid, context)
        self.load = self._loader.load  # type: ignore[method-assign]  # what the row maker calls, without a frame here

    def load(self, data: bytes) -> datetime.datetime:
        return self._loader.load(data)


# Every ``%`` of the statement is ``%%`` (a literal percent sign) or ``%s`` (a positional parameter).
_POSITIONAL_ONLY = re.compile(rb"[^%]*(?:%[%s][^%]*)*")
_PERCENT = re.compile(rb"%[%s]")


class ClientQuery(_queries.PostgresClientQuery):
    """psycopg's client-side binding (Django's default), without splitting a long statement's text in Python.

    psycopg splits a statement into its text and placeholders with a regular expression, then a loop in Python over
    every placeholder, and keeps the result for the next time only for statements of at most 50 parameters and 4 096
    bytes (``psycopg._queries``, not a setting). The gateway's batch statements are past both (a run of 25
    deliveries is one ``INSERT`` of 400 parameters and more, and the ORM's ``id IN (…)`` of a batch is one parameter
    an id), and each run's text is new, so every one was split again: 0.7-1.3 ms of CPU for 400 parameters, a fifth
    of the Maxima drain worker's Python (``docs/performance.md``).

    For a statement with positional parameters only (``%s``, and ``%%`` for a percent sign) the split gives back the
    text itself as the template. So when a statement is past psycopg's limits and, by one scan in C, has no other
    ``%``, the text is the template, and psycopg's own ``dump`` quotes each parameter (``as_literal``) and fills it in
    as before. Anything else (named parameters, ``%b``, ``%t``, a lone ``%``, a parameter count that does not match)
    is psycopg's, which answers as it always did.
    """

    __slots__ = ()

    def convert(self, query: object, vars: object) -> None:
        if isinstance(query, str) and isinstance(vars, list | tuple):
            text = query.encode(self._tx.encoding)
            long = len(text) > _queries.MAX_CACHED_STATEMENT_LENGTH or len(vars) > _queries.MAX_CACHED_STATEMENT_PARAMS
            if long and _POSITIONAL_ONLY.fullmatch(text) and _PERCENT.findall(text).count(b"%s") == len(vars):
                self.template, self._order, self._parts = text, None, _positional_parts(len(vars))
                self.dump(vars)
                return
        super().convert(query, vars)


@functools.lru_cache(maxsize=256)
def _positional_parts(count: int) -> list[_queries.QueryPart]:
    """What psycopg's split gives for ``count`` positional parameters, as far as its ``dump`` reads it: one part a
    parameter, numbered, then the last."""
    part = _queries.QueryPart
    return [*(part(b"", i, PyFormat.AUTO) for i in range(count)), part(b"", 0, PyFormat.AUTO)]


class Cursor(base.Cursor):
    """Django's cursor, binding through ``ClientQuery``."""

    _query_cls = ClientQuery


@functools.cache
def _utc_adapters(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    """Django's adapters for a connection (``get_adapters_template``), with ``UtcTimestamptzLoader``."""
    utc = adapt.AdaptersMap(template)
    utc.register_loader("timestamptz", UtcTimestamptzLoader)
    return utc


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
