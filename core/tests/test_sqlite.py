"""The SQLite backend's writer lock (``core.sqlite``): a transaction holds the file lock from its ``BEGIN`` to its
commit or rollback, a second writer waits on it and goes once it is free, and a writer that waits too long gives
up as SQLite would, with "database is locked", having started nothing."""

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import OperationalError, connections, transaction
from django.db.utils import ConnectionHandler


@pytest.fixture
def shared(tmp_path: Path, django_db_blocker: object) -> Iterator[Path]:
    """A database file of its own, with one table, that the test's connections share as processes would."""
    path = tmp_path / "shared.sqlite3"
    with django_db_blocker.unblock():
        with opened(path, "setup") as setup, setup.cursor() as cursor:
            cursor.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, label TEXT NOT NULL)")
        yield path


class opened:
    """A connection to ``path`` through the gateway's SQLite backend under ``alias`` (in this thread), closed after."""

    def __init__(self, path: Path, alias: str, *, timeout: float = 5) -> None:
        options = {"transaction_mode": "IMMEDIATE", "timeout": timeout}
        handler = ConnectionHandler({"default": {"ENGINE": "core.sqlite", "NAME": str(path), "OPTIONS": options}})
        self.alias, self.wrapper = alias, handler["default"]
        self.wrapper.alias = alias

    def __enter__(self) -> object:
        connections[self.alias] = self.wrapper
        return self.wrapper

    def __exit__(self, *exc: object) -> None:
        self.wrapper.close()
        del connections[self.alias]


def locked(path: Path) -> bool:
    """Whether a writer holds the lock, as another process would see it."""
    fd = os.open(f"{path}-writer", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def insert(alias: str, label: str) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute("INSERT INTO item (label) VALUES (%s)", [label])


def labels(alias: str) -> list[str]:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT label FROM item ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


def test_a_transaction_holds_the_lock_until_it_commits_or_rolls_back(shared: Path) -> None:
    with opened(shared, "one"):
        assert not locked(shared)
        with transaction.atomic(using="one"):
            insert("one", "kept")
            assert locked(shared)
        assert not locked(shared)
        held_inside = []

        def rolled_back() -> None:
            with transaction.atomic(using="one"):
                insert("one", "rolled back")
                held_inside.append(locked(shared))
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            rolled_back()
        assert held_inside == [True]
        assert not locked(shared)
        insert("one", "autocommit")  # a statement outside a transaction takes no lock (SQLite's own guards it)
        assert not locked(shared)
        assert labels("one") == ["kept", "autocommit"]


def test_a_second_writer_waits_for_the_first_and_goes_when_it_commits(shared: Path) -> None:
    inside, waited = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def second() -> None:
        try:
            with opened(shared, "second"):
                inside.wait(5)
                with transaction.atomic(using="second"):
                    insert("second", "second")
        except BaseException as exc:  # reported to the test's thread
            failures.append(exc)
        finally:
            waited.set()

    with opened(shared, "first"):
        thread = threading.Thread(target=second)
        thread.start()
        with transaction.atomic(using="first"):
            insert("first", "first, 1")
            inside.set()
            assert not waited.wait(0.3), "the second writer did not wait for the first"
            insert("first", "first, 2")
        thread.join(10)
        assert not failures, failures
        assert labels("first") == ["first, 1", "first, 2", "second"]


def test_a_writer_that_waits_past_the_timeout_gives_up_as_sqlite_would_and_starts_nothing(shared: Path) -> None:
    holder = os.open(f"{shared}-writer", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another process in the middle of a long transaction
    try:
        with opened(shared, "late", timeout=0.2) as late:
            with pytest.raises(OperationalError, match="database is locked"), transaction.atomic(using="late"):
                insert("late", "never")
            assert not late.in_atomic_block
            fcntl.flock(holder, fcntl.LOCK_UN)
            with transaction.atomic(using="late"):
                insert("late", "once free")
            assert labels("late") == ["once free"]
    finally:
        os.close(holder)


def test_a_closed_connection_leaves_the_lock_free(shared: Path) -> None:
    with opened(shared, "closing") as closing:
        transaction.atomic(using="closing").__enter__()  # a process that goes away in the middle of a transaction
        insert("closing", "lost")
        assert locked(shared)
        closing.close()
        assert not locked(shared)
    with opened(shared, "after"):
        assert labels("after") == []
