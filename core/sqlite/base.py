"""Django's SQLite backend, whose write transactions wait for each other on a file lock, not in SQLite's busy handler.

The embedded default runs several processes on one SQLite file (gunicorn's workers, the Celery worker and beat),
and SQLite lets one of them write at a time: every transaction here starts with ``BEGIN IMMEDIATE`` (the
``transaction_mode`` option), which takes SQLite's write lock at once. A second writer then waits in SQLite's busy
handler, which does not wait for the lock but sleeps and looks again, 1, 2, 5, 10 … up to 100 ms a time: under
load a webhook answer waited tens of milliseconds after the lock was free, and the hook's rate, not the disk, set
the embedded gateway's pace.

Here a transaction first takes an exclusive ``flock`` on a file next to the database (``<database>-writer``): the
writers of every process queue on it and the next one goes as soon as the lock is released, then ``BEGIN
IMMEDIATE`` finds SQLite's lock free. A waiter looks again every few milliseconds (``flock`` has no timeout) and
gives up as SQLite would, with "database is locked", after the ``timeout`` option's seconds. The kernel releases
the lock of a process that dies. Statements outside a transaction (autocommit) do not take it; SQLite's own lock
still guards them, so the file lock only changes how long a writer waits, never what it may do. An in-memory
database is not shared between processes and takes no lock.
"""

import fcntl
import os
import time
from collections.abc import Sequence

from django.db import NotSupportedError, OperationalError
from django.db.backends.sqlite3 import base

# How long a waiting writer sleeps between two looks at the lock: the first looks come quickly (most waits are
# one short transaction), then every 2 ms.
_WAITS = (0.0002, 0.0005, 0.001)
_WAIT_MAX = 0.002


class DatabaseWrapper(base.DatabaseWrapper):
    _writer_fd: int | None = None
    _writer_held = False

    def execute_prepared(self, cursor: object, sql: str, params: Sequence[object], *, before: str = "") -> None:
        """``cursor.execute(sql, params)``: Python's ``sqlite3`` keeps the connection's recent statements compiled
        (``cached_statements``), so a statement run again is already prepared (``core.postgresql`` prepares it on
        the server). ``before`` is PostgreSQL's only (``sqlite3`` runs one statement a call)."""
        if before:
            raise NotSupportedError("SQLite runs one statement a call: nothing can be sent before this one")
        cursor.execute(sql, params)

    def _start_transaction_under_autocommit(self) -> None:
        self._writer_take()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._writer_release()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._writer_release()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._writer_release()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._writer_release()
            if self._writer_fd is not None:
                os.close(self._writer_fd)
                self._writer_fd = None

    # ------------------------------------------------------------------------------------------- the file lock
    def _writer_take(self) -> None:
        if self._writer_held or self.is_in_memory_db():
            return
        if self._writer_fd is None:
            self._writer_fd = os.open(f"{self.settings_dict['NAME']}-writer", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + float(self.settings_dict["OPTIONS"].get("timeout", 5))
        for attempt in range(1_000_000_000):
            try:
                fcntl.flock(self._writer_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OperationalError("database is locked") from None
                time.sleep(_WAITS[attempt] if attempt < len(_WAITS) else _WAIT_MAX)
                continue
            self._writer_held = True
            return

    def _writer_release(self) -> None:
        if self._writer_held and self._writer_fd is not None:
            fcntl.flock(self._writer_fd, fcntl.LOCK_UN)
        self._writer_held = False
