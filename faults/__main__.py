"""``python -m faults [--full] [PYTEST ARGS…]``: a private PostgreSQL cluster, then the fault suite against it.

The suite stops its PostgreSQL with ``pg_ctl stop -m immediate``, so it gets a cluster of its own in a temporary
folder (``initdb`` as the ``postgres`` user when run as root), on a free port, deleted afterwards. Redis is
started by the suite itself (``testsupport.processes.RedisServer``). ``--full`` (``make faults FULL=1``) is the
issue's full budget: 1,000 messages per fault and 30 s outages; without it, the CI budget.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from faults.postgres import Cluster
from testsupport import REPO
from testsupport.processes import free_port, wait_for

# Messages per fault and outage length: the CI budget, and the full one (FULL=1).
BUDGETS = {False: {"messages": 200, "outage": 8}, True: {"messages": 1000, "outage": 30}}


def main(argv: list[str]) -> int:
    full = "--full" in argv or os.environ.get("FULL", "") not in ("", "0")
    argv = [arg for arg in argv if arg != "--full"]
    budget = BUDGETS[full]
    folder = Path(tempfile.mkdtemp(prefix="mns-faults-"))
    cluster = Cluster(folder, free_port())
    try:
        cluster.init()
        cluster.start()
        wait_for(cluster.answers, timeout=30, what="the private PostgreSQL")
        env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "CELERY_BROKER_URL")}
        env.update(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{cluster.port}/postgres",
            MNS_VAR_DIR=env.get("MNS_VAR_DIR") or str(folder / "var"),
            MNS_FAULTS_PGDATA=str(cluster.data),
            MNS_FAULTS_PG_PORT=str(cluster.port),
            MNS_FAULTS_PG_FOLDER=str(folder),
            MNS_FAULTS_MESSAGES=env.get("MNS_FAULTS_MESSAGES") or str(budget["messages"]),
            MNS_FAULTS_OUTAGE_SECONDS=env.get("MNS_FAULTS_OUTAGE_SECONDS") or str(budget["outage"]),
            MNS_FAULTS_REPORT=env.get("MNS_FAULTS_REPORT") or str(REPO / "var" / "faults-report.json"),
        )
        basetemp = Path(env["MNS_VAR_DIR"]) / "faults-run"  # the stack's logs, kept after the run
        command = [sys.executable, "-m", "pytest", "faults", "-m", "faults", "-p", "no:cacheprovider"]
        command += [f"--basetemp={basetemp}", *argv]
        return subprocess.run(command, cwd=REPO, env=env, check=False).returncode
    finally:
        if cluster.answers():
            cluster.stop_immediate()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
