"""gunicorn's settings file (read from the working folder): prometheus_client's multiprocess mode for the web
workers, so ``/metrics`` sums the request histogram of every worker (mns_site.metrics explains the choice).

The folder is ``var/prometheus/`` (under MNS_VAR_DIR), unless PROMETHEUS_MULTIPROC_DIR is already set. It is
emptied when gunicorn starts (the files of a previous run's workers would otherwise be summed forever) and set in
the master's environment before any worker is forked, so that every worker's prometheus_client sees it.
"""

import os
import shutil
from pathlib import Path


def on_starting(server: object) -> None:
    var = Path(os.environ.get("MNS_VAR_DIR") or Path(__file__).resolve().parent / "var")
    folder = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(var / "prometheus")))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
