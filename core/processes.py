"""The Celery worker's and beat's command lines, one copy for every place that starts them: ``rungateway``
(``make run``), the test harnesses (``testsupport``), ``bench`` and ``faults``. Kept in the kernel so the wiring's
own command may use them as well as the harnesses above it."""

import sys
from pathlib import Path

# The sends' queue: settings routes the send tasks there (CELERY_TASK_ROUTES).
SENDS_QUEUE = "sends"
# How many sends a sender waits on at once: a send costs the sender a few milliseconds of CPU and then waits on the
# node (30 ms for 1 KB up to ~10 s for a full message), so one process of threads keeps a pool of nodes busy.
SENDER_THREADS = 16


def celery_worker_command(
    *,
    concurrency: int,
    loglevel: str = "info",
    beat_schedule: str | Path | None = None,
    supervised: bool = False,
    hostname: str | None = None,
    without_sends: bool = False,
    python: str = sys.executable,
) -> list[str]:
    """A worker of the gateway's Celery app, taking every queue, or all but the sends' with ``without_sends`` (a
    sender, ``celery_sender_command``, takes those). ``beat_schedule`` embeds beat (its schedule kept in that file);
    ``supervised`` restarts the worker whenever it dies (``core.supervise``), as systemd would in production."""
    args = _celery(python, "worker", loglevel, supervised=supervised)
    # No gossip or mingle: workers of one gateway share nothing through them, and they slow the start-up.
    args += ["--concurrency", str(concurrency), "--without-gossip", "--without-mingle", "--pool", "prefork"]
    if without_sends:
        args += ["--exclude-queues", SENDS_QUEUE]
    if hostname is not None:
        args += ["-n", hostname]
    if beat_schedule is not None:
        args += ["--beat", "--schedule", str(beat_schedule)]
    return args


def celery_sender_command(
    *,
    threads: int = SENDER_THREADS,
    loglevel: str = "info",
    supervised: bool = False,
    hostname: str = "sender@%h",
    python: str = sys.executable,
) -> list[str]:
    """A worker of ``threads`` threads that takes the sends' queue only: it waits on that many node RPCs at once
    in one process, under its own node name (``hostname``: a worker on the same host is ``celery@%h``). Celery's
    thread pool enforces no task time limit: a send is bounded by its RPC's timeout, and a send that outlives its
    claim's lease writes no outcome over the next one's (``maxima.services._still_ours``)."""
    args = _celery(python, "worker", loglevel, supervised=supervised)
    args += ["--concurrency", str(threads), "--without-gossip", "--without-mingle", "--pool", "threads"]
    return [*args, "--queues", SENDS_QUEUE, "-n", hostname]


def _celery(python: str, command: str, loglevel: str, *, supervised: bool) -> list[str]:
    args = [python, "-m", "core.supervise", "--"] if supervised else []
    return [*args, python, "-m", "celery", "-A", "mns_site", command, "-l", loglevel]


def celery_beat_command(*, schedule: str | Path, loglevel: str = "info", python: str = sys.executable) -> list[str]:
    """Beat on its own (as in production), its schedule kept in ``schedule``."""
    return [*_celery(python, "beat", loglevel, supervised=False), "--schedule", str(schedule)]
