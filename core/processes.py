"""The Celery worker's and beat's command lines, one copy for every place that starts them: ``rungateway``
(``make run``), the test harnesses (``testsupport``), ``bench`` and ``faults``. Kept in the kernel so the wiring's
own command may use them as well as the harnesses above it."""

import sys
from pathlib import Path


def celery_worker_command(
    *,
    concurrency: int,
    loglevel: str = "info",
    beat_schedule: str | Path | None = None,
    supervised: bool = False,
    hostname: str | None = None,
    python: str = sys.executable,
) -> list[str]:
    """A worker of the gateway's Celery app. ``beat_schedule`` embeds beat (its schedule kept in that file);
    ``supervised`` restarts the worker whenever it dies (``core.supervise``), as systemd would in production."""
    args = [python, "-m", "core.supervise", "--"] if supervised else []
    args += [python, "-m", "celery", "-A", "mns_site", "worker", "-l", loglevel, "--concurrency", str(concurrency)]
    # No gossip or mingle: workers of one gateway share nothing through them, and they slow the start-up.
    args += ["--without-gossip", "--without-mingle", "--pool", "prefork"]
    if hostname is not None:
        args += ["-n", hostname]
    if beat_schedule is not None:
        args += ["--beat", "--schedule", str(beat_schedule)]
    return args


def celery_beat_command(*, schedule: str | Path, loglevel: str = "info", python: str = sys.executable) -> list[str]:
    """Beat on its own (as in production), its schedule kept in ``schedule``."""
    return [python, "-m", "celery", "-A", "mns_site", "beat", "-l", loglevel, "--schedule", str(schedule)]
