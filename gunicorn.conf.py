"""gunicorn's settings file (read from the working folder): the worker model, and prometheus_client's multiprocess
mode for the web workers, so ``/metrics`` sums the request histogram of every worker (mns_site.metrics explains the
choice).

Workers are ``gthread``: each process runs ``MNS_WEB_THREADS`` threads (24) but admits only ``MNS_WEB_ADMIT`` (2)
requests at a time into the application (``core.middleware.AdmissionMiddleware``); a request beyond that is taken
by a spare thread and refused 503 + ``Retry-After`` at once, rather than waiting in the listen backlog until a sync
worker is free to refuse it. docs/performance.md ("Overload") says why.

The folder is ``var/prometheus/`` (under MNS_VAR_DIR), unless PROMETHEUS_MULTIPROC_DIR is already set. It is
emptied when gunicorn starts (the files of a previous run's workers would otherwise be summed forever) and set in
the master's environment before any worker is forked, so that every worker's prometheus_client sees it.
"""

import os
import shutil
from pathlib import Path

worker_class = "gthread"
threads = int(os.environ.get("MNS_WEB_THREADS") or 24)


def on_starting(server: object) -> None:
    var = Path(os.environ.get("MNS_VAR_DIR") or Path(__file__).resolve().parent / "var")
    folder = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(var / "prometheus")))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
