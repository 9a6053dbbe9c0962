"""Enqueueing Celery tasks from services: after the commit, and never failing the caller.

Every task the gateway enqueues is backed by a row that a beat sweep also finds, so a task that could not be
published (broker down) is only late, not lost. Publishing therefore must not raise into the request that
already committed its work, nor hold it up with retries.
"""

import logging
import threading
import time
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


# Per process: for each (task, args) coalesced, the window of its last enqueue and whether a trailing task is due.
_windows: dict[tuple[str, tuple], tuple[int, bool]] = {}
_WINDOWS_KEPT = 1000
_windows_lock = threading.Lock()


def enqueue_coalesced(task: Task, *args: Any, window: float) -> None:
    """Enqueue ``task(*args)`` at most twice per ``window`` seconds in this process: at once for the first call of a
    window (a lone event waits for nothing), and once more, due at the window's end, for any later call in it.

    Only for tasks that take whatever is due when they run (drains), never for a task of one row: everything
    committed before a call is committed before the window's end, so the trailing task finds it. What a lost task
    leaves is found by its sweep, as for ``enqueue_now``. ``window`` 0 enqueues every call. The threads of a process
    decide under one lock (the publish is outside it), so threads racing at a window's start cannot each enqueue
    one. (Under the bench's Maxima load an instrumented run counted exactly two a window per process, lock or not:
    with three processes and 50 ms windows that is 120 drain tasks a second, most finding the batch taken.) An
    eager app (the tests' in-process Celery) runs a task at once
    whatever its countdown, so a trailing task would run before the window's later calls: there every call is
    enqueued.
    """
    if task.app.conf.task_always_eager or window <= 0:
        enqueue_now(task, *args)
        return
    now = time.time()
    slot, key = int(now / window), (task.name, args)
    with _windows_lock:
        last = _windows.get(key)
        if last is None or last[0] != slot:
            if len(_windows) >= _WINDOWS_KEPT:
                _windows.clear()  # old windows mean nothing any more; at worst one task more
            _windows[key] = (slot, False)
            leading = True
        elif not last[1]:
            _windows[key] = (slot, True)
            leading = False
        else:
            return
    if leading:
        published = enqueue_now(task, *args)
    else:
        published = enqueue_now(task, *args, countdown=(slot + 1) * window - now + 0.005)
    if not published:  # the next call of the window tries again
        with _windows_lock:
            if _windows.get(key) == (slot, not leading):
                if leading:
                    _windows.pop(key)
                else:
                    _windows[key] = (slot, False)
