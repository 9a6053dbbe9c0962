"""Enqueueing Celery tasks from services: after the commit, and never failing the caller.

Every task the gateway enqueues is backed by a row that a beat sweep also finds, so a task that could not be
published (broker down) is only late, not lost. Publishing therefore must not raise into the request that
already committed its work, nor hold it up with retries.
"""

import logging
from typing import Any

from celery import Task
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: Task, *args: Any, **options: Any) -> None:
    transaction.on_commit(lambda: enqueue_now(task, *args, **options))


def enqueue_now(task: Task, *args: Any, **options: Any) -> bool:
    """Publish ``task(*args)`` now; ``options`` go to ``apply_async`` (e.g. a task's own time limits)."""
    try:
        task.apply_async(args=args, retry=False, **options)
    except Exception as exc:  # the broker is down or refused: the sweep will pick the row up
        logger.warning("could not enqueue %s%r (the sweep will retry): %s", task.name, args, exc)
        return False
    return True
