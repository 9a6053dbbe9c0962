"""Rows held by another connection, as another worker holds them between its claim and its commit (PostgreSQL)."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from django.db.models import QuerySet


@contextmanager
def locked_elsewhere(rows: QuerySet) -> Iterator[None]:
    """While the block runs, ``rows`` are locked ``FOR UPDATE`` by a transaction on a connection of another thread.
    The block's own statements run under a ``lock_timeout``, so one that waits for those rows fails instead of
    hanging the test; the setting and the other connection are gone afterwards."""
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:
        try:
            with transaction.atomic():
                list(rows.select_for_update())
                locked.set()
                release.wait(20)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert locked.wait(20), "the other connection could not lock the rows"
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        release.set()
        thread.join(20)
