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
    connection.close()  # a live connection of its own: one an earlier test left broken is (rightly) dropped below
    connection.ensure_connection()
    kept = connection.connection
    _database_checked(sender=_Task(eager=False))
    assert connection.connection is kept

    connection.close_at = time.monotonic() - 1  # CONN_MAX_AGE is over
    _database_checked(sender=_Task(eager=True))
    assert connection.connection is kept  # an eager task runs on its caller's connection: not touched
    _database_checked(sender=_Task(eager=False))
    assert connection.connection is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")
def test_a_connection_left_inside_a_transaction_is_dropped_and_the_next_task_commits() -> None:
    from django.contrib.auth.models import Group
    from django.db import connections, transaction

    from mns_site.celery import _database_checked

    leaked = transaction.atomic()
    leaked.__enter__()  # as a soft time limit between Atomic.__enter__ and the body leaves it
    Group.objects.create(name="never-committed")
    stuck = connections["default"]
    assert stuck.in_atomic_block

    _database_checked(sender=_Task(eager=False))

    fresh = connections["default"]
    assert fresh is not stuck
    assert not fresh.in_atomic_block
    Group.objects.create(name="committed")  # autocommit again: visible to another connection at once
    other = stuck.__class__(fresh.settings_dict, alias="other")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT name FROM auth_group ORDER BY name")
            assert cursor.fetchall() == [("committed",)]
    finally:
        other.close()
