"""The one Celery worker command line (``rungateway``, the test harnesses, bench and faults all start this one),
and the one way the harnesses find a process's children."""

import os
import subprocess
import sys
from pathlib import Path

from core.processes import celery_beat_command, celery_worker_command
from testsupport.processes import children

WORKER = ["-m", "celery", "-A", "mns_site", "worker"]
QUIET = ["--without-gossip", "--without-mingle", "--pool", "prefork"]


def test_a_plain_worker_is_neither_supervised_nor_runs_beat() -> None:
    args = celery_worker_command(concurrency=1, python="py")
    assert args == ["py", *WORKER, "-l", "info", "--concurrency", "1", *QUIET]


def test_the_gateway_worker_is_supervised_and_embeds_beat_with_its_schedule_file() -> None:
    args = celery_worker_command(
        concurrency=2, beat_schedule=Path("/var/beat"), supervised=True, hostname="gw-a@%h", python="py"
    )
    assert args == [
        *["py", "-m", "core.supervise", "--"],
        *["py", *WORKER, "-l", "info", "--concurrency", "2", *QUIET],
        *["-n", "gw-a@%h", "--beat", "--schedule", "/var/beat"],
    ]


def test_a_bench_worker_logs_only_warnings() -> None:
    args = celery_worker_command(concurrency=4, loglevel="warning")
    assert args[0] == sys.executable
    assert args[args.index("-l") + 1] == "warning"


def test_children_are_the_processes_a_process_started_and_none_once_it_is_gone() -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            assert child.pid in children(os.getpid())
        finally:
            child.kill()
    assert children(child.pid) == []


def test_beat_on_its_own_keeps_its_schedule_in_the_file_it_is_given() -> None:
    args = celery_beat_command(schedule=Path("/tmp/b2"), python="py")
    assert args == ["py", "-m", "celery", "-A", "mns_site", "beat", "-l", "info", "--schedule", "/tmp/b2"]
