"""Enqueueing Celery tasks from services: after the commit, and never failing the caller.

Every task the gateway enqueues is backed by a row that a beat sweep also finds, so a task that could not be
published (broker down) is only late, not lost. Publishing therefore must not raise into the request that
already committed its work, nor hold it up with retries.
"""

import hashlib
import logging
import threading
import time
from typing import Any

from celery import Task
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
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
    """Enqueue ``task(*args)`` at most twice per ``window`` seconds for all the gateway's processes: at once for the
    first call of a window (a lone event waits for nothing), and once more, due at the window's end, for any later
    call in it.

    Only for tasks that take whatever is due when they run (drains), never for a task of one row: everything
    committed before a call is committed before the window's end, so the trailing task finds it. What a lost task
    leaves is found by its sweep, as for ``enqueue_now``. ``window`` 0 enqueues every call.

    Each process first decides for itself, its threads under one lock (the publish is outside it): at most two
    calls a window go further. Where the cache is shared (Redis), those two then claim the window's task in it
    (``_claim``), so three gunicorn processes make two drain tasks a window between them, not six. A process whose
    leading claim another process won takes the trailing one instead: the other's task may have run before this
    call's commit. The windows are counted on each process's clock, so processes that share a cache across hosts
    need their clocks in step (NTP). A process killed between its claim and its publish leaves that window's
    events of every process to the sweep: late, not lost. An eager app (the tests' in-process Celery) runs a task
    at once whatever its countdown, so a trailing task would run before the window's later calls: there every
    call is enqueued.
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
    if leading and not _claim(key, slot, "leading", window):
        leading = False
        with _windows_lock:
            last = _windows.get(key)
            if last == (slot, True):
                return  # another thread of this process has taken the trailing task meanwhile
            if last is None or last == (slot, False):  # (or the table was cleared meanwhile)
                _windows[key] = (slot, True)
    if not leading and not _claim(key, slot, "trailing", window):
        return
    if leading:
        published = enqueue_now(task, *args)
    else:
        published = enqueue_now(task, *args, countdown=(slot + 1) * window - now + 0.005)
    if not published:  # the next call of the window, in any process, tries again
        _release(key, slot, "leading" if leading else "trailing")
        with _windows_lock:
            if _windows.get(key) == (slot, not leading):
                if leading:
                    _windows.pop(key)
                else:
                    _windows[key] = (slot, False)


def _claim(key: tuple[str, tuple], slot: int, which: str, window: float) -> bool:
    """Whether this call takes the window's leading or trailing task for every process that shares the cache: one
    ``SET NX`` on Redis. The local-memory cache of the embedded default is the process's own, so nothing is claimed
    there (its keys would only crowd out the entries it holds). A failing cache claims: a task too many is
    harmless, a task missing is late."""
    if not isinstance(caches[DEFAULT_CACHE_ALIAS], RedisCache):
        return True
    try:
        return cache.add(_claim_key(key, slot, which), 1, timeout=int(window) + 2)
    except Exception as exc:
        logger.warning("could not share the coalescing window of %s (enqueued anyway): %s", key[0], type(exc).__name__)
        return True


def _release(key: tuple[str, tuple], slot: int, which: str) -> None:
    if not isinstance(caches[DEFAULT_CACHE_ALIAS], RedisCache):
        return
    try:
        cache.delete(_claim_key(key, slot, which))
    except Exception as exc:  # the claim then lapses with its window; the sweep finds what is left
        logger.warning("could not release the coalescing window of %s: %s", key[0], type(exc).__name__)


def _claim_key(key: tuple[str, tuple], slot: int, which: str) -> str:
    digest = hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest()  # args may be long addresses
    return f"coalesce:{digest}:{slot}:{which}"
