"""``make run`` (``manage.py rungateway``): a taken address said in one line, and a stop that leaves nothing behind."""

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management.base import CommandError

from mns_site.management.commands.rungateway import _Stopper, group_members, spawn, wait_healthy
from testsupport import REPO
from testsupport.processes import celery_worker, child_env, gunicorn, wait_for


@pytest.fixture
def taken_address() -> Iterator[str]:
    """An address on loopback that something else already listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"127.0.0.1:{listener.getsockname()[1]}"


def test_make_run_on_a_taken_address_says_so_in_one_line_and_starts_nothing(tmp_path: Path, taken_address: str) -> None:
    args = [sys.executable, "manage.py", "rungateway", "--bind", taken_address, "--check", "--no-simnet"]
    env = child_env(MNS_VAR_DIR=str(tmp_path))
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"CommandError: cannot listen on {taken_address}: address already in use (another gateway or program is "
        "there); stop it, or choose another address: make run BIND=127.0.0.1:8001"
    ]
    assert result.stdout == ""
    assert not (tmp_path / "log").exists()  # no child was started


def test_make_run_passes_bind_to_rungateway() -> None:
    # Run as make's own child (`make test` is one): without its MAKEFLAGS/MAKELEVEL, as a user types it.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", "BIND=127.0.0.1:8001"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    runs = [line for line in result.stdout.splitlines() if "manage.py rungateway" in line]
    assert runs == [runs[0]]
    assert "manage.py rungateway --bind 127.0.0.1:8001" in runs[0]


@pytest.mark.django_db
def test_gunicorn_failing_to_bind_is_reported_naming_the_address(
    tmp_path: Path, taken_address: str, settings: object
) -> None:
    settings.VAR_DIR = tmp_path
    (tmp_path / "log").mkdir()
    env = child_env(MNS_VAR_DIR=str(tmp_path))
    with (tmp_path / "log" / "web.log").open("wb") as log:
        web = spawn(gunicorn(bind=taken_address), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        with pytest.raises(CommandError, match=f"cannot listen on {taken_address}: address already in use"):
            wait_healthy(f"http://{taken_address}", {"web": web}, bind=taken_address, timeout=60)
    assert web.poll() is not None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_stopping_ends_every_process_of_a_supervised_worker_with_beat(tmp_path: Path) -> None:
    env = child_env(MNS_VAR_DIR=str(tmp_path))
    env.pop("CELERY_BROKER_URL", None)
    env.pop("REDIS_URL", None)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        args = celery_worker(env=env, log=log, concurrency=2, beat=True, supervised=True)
        worker = spawn(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        stopper = _Stopper({"worker": worker})
        try:
            wait_for(lambda: "ready." in log.read_text(errors="replace"), timeout=90, what="the worker", log=log)
            assert len(group_members(worker.pid)) >= 4  # supervise, celery's main process, two pool children
        finally:
            report = stopper.stop_all()
    # Celery's exit status after SIGINT is 1 (its warm shutdown on Ctrl-C); what matters is that it ended by itself
    assert report == [f"stopped worker (pid {worker.pid}) by itself, exit {worker.returncode}"]
    assert group_members(worker.pid) == []
    shutdowns = [line for line in log.read_text().splitlines() if line.startswith("worker: ") and "shutdown (" in line]
    assert shutdowns == ["worker: Warm shutdown (MainProcess)"]  # one SIGINT reached Celery: no cold shutdown


IGNORES_CTRL_C = """
import signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                  "print('grandchild up', flush=True); time.sleep(600)"])
time.sleep(600)
"""


def test_a_group_still_there_after_the_grace_period_is_killed_whole_and_said_so(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    with log.open("wb") as out:
        child = spawn([sys.executable, "-c", IGNORES_CTRL_C], stdout=out, stderr=subprocess.STDOUT)
    stopper = _Stopper({"stubborn": child}, grace=1)
    try:
        wait_for(lambda: "grandchild up" in log.read_text(), timeout=30, what="the grandchild", log=log)
        assert len(group_members(child.pid)) == 2
    finally:
        report = stopper.stop_all()
    assert report == [
        f"stopped stubborn (pid {child.pid}): killed with 2 process(es) of its group still running 1 s after SIGINT"
    ]
    wait_for(lambda: not group_members(child.pid), timeout=10, what="the killed group to be gone")
