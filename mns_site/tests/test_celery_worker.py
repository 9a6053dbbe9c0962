"""A task really runs through a real worker process over a real broker (not eagerly in the test)."""

from pathlib import Path

import pytest
from kombu import Connection

from core.models import Heartbeat
from mns_site.celery import app as celery_app
from testsupport import REPO
from testsupport.processes import celery_worker, child_env, process, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]


def send_heartbeat_task(connection: Connection) -> None:
    with connection as conn:
        celery_app.send_task("core.heartbeat", connection=conn)


def test_a_task_runs_in_a_worker_on_redis(tmp_path: Path, redis_url: str) -> None:
    env = child_env(CELERY_BROKER_URL=redis_url, MNS_VAR_DIR=str(tmp_path))
    log = tmp_path / "worker.log"
    with process(celery_worker(env=env, log=log), env=env, log=log):
        send_heartbeat_task(Connection(redis_url))
        beat = wait_for(lambda: Heartbeat.objects.filter(name="worker").first(), timeout=60, what="the task", log=log)
    assert beat.pid is not None
    assert "core.heartbeat" in log.read_text()


def test_a_task_runs_in_a_worker_on_the_embedded_filesystem_broker(tmp_path: Path) -> None:
    env = child_env(MNS_VAR_DIR=str(tmp_path))
    env.pop("CELERY_BROKER_URL", None)
    env.pop("REDIS_URL", None)
    log = tmp_path / "worker.log"
    queue = tmp_path / "broker" / "queue"
    control = tmp_path / "broker" / "control"
    options = {"data_folder_in": str(queue), "data_folder_out": str(queue), "store_processed": False}
    options["control_folder"] = str(control)  # kombu's default is ./control, i.e. the repository root
    with process(celery_worker(env=env, log=log), env=env, log=log):
        wait_for(queue.exists, timeout=30, what="the worker to create its queue folder", log=log)
        send_heartbeat_task(Connection("filesystem://localhost/", transport_options=options))
        wait_for(lambda: Heartbeat.objects.filter(name="worker").exists(), timeout=60, what="the task", log=log)
    assert (control / "celery.exchange").exists()
    assert not (REPO / "control").exists()


def test_beat_schedules_the_heartbeat_and_records_itself(tmp_path: Path, redis_url: str) -> None:
    env = child_env(CELERY_BROKER_URL=redis_url, MNS_VAR_DIR=str(tmp_path), MNS_HEARTBEAT_EVERY="1")
    log = tmp_path / "worker.log"
    with process(celery_worker(env=env, log=log, beat=True), env=env, log=log):
        wait_for(lambda: Heartbeat.objects.filter(name="worker").exists(), timeout=60, what="a worker beat", log=log)
    assert Heartbeat.objects.filter(name="beat").exists()


def test_a_worker_killed_in_its_shutdown_leaves_no_beat_behind(tmp_path: Path, redis_url: str) -> None:
    # As a bench stage once did: the worker's main process killed, its embedded beat orphaned, sending the periodic
    # tasks into the broker for every later stage. What the block started is gone when it ends.
    import os
    import signal

    from testsupport.processes import children

    env = child_env(CELERY_BROKER_URL=redis_url, MNS_VAR_DIR=str(tmp_path), MNS_HEARTBEAT_EVERY="1")
    log = tmp_path / "worker.log"
    with process(celery_worker(env=env, log=log, beat=True), env=env, log=log) as worker:
        wait_for(lambda: Heartbeat.objects.filter(name="beat").exists(), timeout=60, what="the beat", log=log)
        started = children(worker.pid)
        assert started  # the pool and the embedded beat
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        assert any(alive(pid) for pid in started)  # orphaned, as they were

    wait_for(lambda: not any(alive(pid) for pid in started), timeout=10, what="the orphans' end")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
