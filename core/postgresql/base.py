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

And it loads ``timestamptz`` values with psycopg's own loader (C, with psycopg's binary package), where Django's
loader parses each value in Python (``UtcTimestamptzLoader``).
"""

import datetime
import functools
import select

from django.core import checks
from django.db.backends.base.validation import BaseDatabaseValidation
from django.db.backends.postgresql import base
from psycopg import adapt, adapters
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
