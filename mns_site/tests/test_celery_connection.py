"""A Celery worker keeps its database connection from task to task, and drops it as Django does between
requests."""

import pytest
from django.db import connection


class _Task:
    def __init__(self, *, eager: bool) -> None:
        self.request = type("Request", (), {"is_eager": eager})()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")  # CONN_MAX_AGE is 0 on SQLite: every connection is obsolete at once
def test_a_worker_keeps_its_connection_between_tasks_and_drops_it_once_too_old() -> None:
    import time

    from celery.fixups.django import DjangoWorkerFixup

    from mns_site.celery import _database_checked
    from mns_site.celery import app as celery_app

    assert DjangoWorkerFixup(celery_app).db_reuse_max >= 1000  # Celery's own closing after every task is off
    connection.ensure_connection()
    kept = connection.connection
    _database_checked(sender=_Task(eager=False))
    assert connection.connection is kept

    connection.close_at = time.monotonic() - 1  # CONN_MAX_AGE is over
    _database_checked(sender=_Task(eager=True))
    assert connection.connection is kept  # an eager task runs on its caller's connection: not touched
    _database_checked(sender=_Task(eager=False))
    assert connection.connection is None
