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
--database default``): a warning when autovacuum is off.
"""

import select

from django.core import checks
from django.db.backends.base.validation import BaseDatabaseValidation
from django.db.backends.postgresql import base


class DatabaseValidation(BaseDatabaseValidation):
    def check(self, **kwargs: object) -> list[checks.CheckMessage]:
        return [*super().check(**kwargs), *self._check_autovacuum()]

    def _check_autovacuum(self) -> list[checks.CheckMessage]:
        """The queues (Maxima's inbound events, the outbox, the handshakes' challenges) change every row's status
        as it is handled, and each claim walks its index from the oldest row still listed there. Without
        autovacuum the dead versions stay listed until a VACUUM runs (by hand, or the one PostgreSQL forces near
        transaction-id wraparound), and every claim reads past them (5 000 a claim after a few benchmark runs,
        ``docs/performance.md``)."""
        with self.connection.cursor() as cursor:
            cursor.execute("SHOW autovacuum")
            if cursor.fetchone()[0] == "on":
                return []
        return [
            checks.Warning(
                "PostgreSQL's autovacuum is off: the queues' dead rows stay until a VACUUM runs, and every claim "
                "reads past them.",
                hint="Set autovacuum = on (PostgreSQL's default) and reload the server, or VACUUM the gateway's "
                "database on a schedule (docs/operations.md).",
                obj=self.connection.alias,
                id="core.W001",
            )
        ]


class DatabaseWrapper(base.DatabaseWrapper):
    validation_class = DatabaseValidation

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
