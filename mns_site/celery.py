"""The Celery app. Tasks load by id, call one service, and are safe to run twice (the broker may redeliver)."""

import logging
import os
import sys
import time

from celery import Celery
from celery.beat import PersistentScheduler
from celery.signals import task_prerun, worker_init

from core import broker
from mns_site.management.failures import one_line_failures

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mns_site.settings")
broker.install()  # filesystem:// (the embedded default) is core.broker's transport: messages appear whole


class _App(Celery):
    def _load_config(self) -> object:
        """Where Celery first reads the Django settings: a setting it cannot start with is one line, not a traceback."""
        with one_line_failures("celery -A mns_site", argv=sys.argv):
            return super()._load_config()


app = _App("mns_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
logger = logging.getLogger(__name__)


class HeartbeatScheduler(PersistentScheduler):
    """The ordinary persistent scheduler, which also records that beat is alive, for the health endpoint."""

    _last_beat = 0.0

    def tick(self, *args: object, **kwargs: object) -> float:
        now = time.monotonic()
        if now - self._last_beat >= 5:
            self._last_beat = now
            _beat_heartbeat()
        return super().tick(*args, **kwargs)

    def apply_entry(self, entry: object, producer: object = None) -> None:
        """Send a due periodic task unless another beat sent it this period (two beats by mistake, or one
        restarted): a lock in the shared cache (Redis ``SET NX EX``) per task, held for 90 % of its period."""
        if _periodic_lock(entry.name, entry.schedule):
            super().apply_entry(entry, producer=producer)


def _beat_heartbeat() -> None:
    """Record that beat is alive; a database outage must not stop beat (its sweeps are what recovers from it)."""
    from django.db import close_old_connections

    from core.services import heartbeat_record

    try:
        close_old_connections()  # a connection the database dropped (a restart) is replaced, not reused
        heartbeat_record(name="beat")
    except Exception as exc:
        logger.warning("beat could not record its heartbeat: %s", type(exc).__name__)


def _periodic_lock(name: str, schedule: object) -> bool:
    """True if this beat may send ``name`` now. When the cache is down it may (every periodic task is idempotent)."""
    from django.core.cache import cache

    every = getattr(schedule, "run_every", None)
    seconds = every.total_seconds() if every is not None else 60.0
    try:
        return bool(cache.add(f"beat-lock:{name}", os.getpid(), timeout=max(1, int(seconds * 0.9))))
    except Exception as exc:
        logger.warning("beat lock for %s not taken, the cache failed: %s", name, type(exc).__name__)
        return True


@worker_init.connect
def _bound_database_waits(**kwargs: object) -> None:
    """In a worker (and the pool processes it forks), PostgreSQL cancels any statement that waits longer than a
    task may run (a lock held on a table, a stalled server): the task fails cleanly before its soft time limit and
    its row waits for the sweep, instead of a killed task leaving its statement waiting on the server."""
    from django.db.backends.signals import connection_created

    connection_created.connect(_statement_timeout, weak=False)


@task_prerun.connect
def _database_checked(sender: object = None, **kwargs: object) -> None:
    """Before each task, what Django does before each request: close a connection that had an error and no
    longer works, that a task left outside autocommit, or that outlived ``CONN_MAX_AGE``, and re-arm the health
    check (``CONN_HEALTH_CHECKS``) for the next query. The connection is otherwise kept from task to task
    (``CELERY_DB_REUSE_MAX``), so a restarted PostgreSQL costs one reconnection, not one per task."""
    from django.db import connections

    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # run in the caller's process (tests, eager mode): its connection is the caller's
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            # A task stopped (its soft time limit) between entering a transaction and its body never left it:
            # reused, every later task would write into a transaction that never commits. Drop it, start afresh.
            logger.error("a task left its database connection inside a transaction: dropped, reconnecting")
            if conn.connection is not None:
                conn.connection.close()
            del connections[conn.alias]
        else:
            conn.close_if_unusable_or_obsolete()


def _statement_timeout(sender: object, connection: object, **kwargs: object) -> None:
    from django.conf import settings

    if connection.vendor == "postgresql":
        milliseconds = max(1, settings.CELERY_TASK_SOFT_TIME_LIMIT - 5) * 1000
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [str(milliseconds)])
