"""The one Celery worker command line (``rungateway``, the test harnesses, bench and faults all start this one),
and the one way the harnesses find a process's children."""

import os
import subprocess
import sys
from pathlib import Path

from core.processes import SENDS_QUEUE, celery_beat_command, celery_sender_command, celery_worker_command
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


def test_a_worker_beside_a_sender_leaves_the_sends_queue_to_it() -> None:
    args = celery_worker_command(concurrency=2, without_sends=True, python="py")
    assert args == ["py", *WORKER, "-l", "info", "--concurrency", "2", *QUIET, "--exclude-queues", "sends"]


def test_the_sender_is_a_pool_of_threads_on_the_sends_queue_only() -> None:
    args = celery_sender_command(threads=16, supervised=True, python="py")
    assert args == [
        *["py", "-m", "core.supervise", "--"],
        *["py", *WORKER, "-l", "info", "--concurrency", "16", "--without-gossip", "--without-mingle"],
        *["--pool", "threads", "--queues", "sends", "-n", "sender@%h"],
    ]


def test_the_send_tasks_and_the_sends_heartbeat_are_routed_to_the_sends_queue_and_nothing_else_is() -> None:
    from mns_site.celery import app

    app.loader.import_default_modules()  # every app's tasks, as a worker loads them
    sends = {"maxima.send_outbound", "maxima.send_outbound_batch", "core.heartbeat_sends"}
    assert {name for name in app.tasks if app.amqp.router.route({}, name)["queue"].name == SENDS_QUEUE} == sends
    assert set(app.amqp.queues) == {"celery", SENDS_QUEUE}  # a worker with no -Q or -X takes both


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
