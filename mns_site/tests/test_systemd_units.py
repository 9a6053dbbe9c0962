"""The systemd units in docs/systemd/, the production example: they run what the README says, as it says."""

import shlex
from pathlib import Path

import pytest

from core.limits import GUNICORN_LIMITS
from core.processes import SENDS_QUEUE
from testsupport import REPO

UNITS = REPO / "docs" / "systemd"


def directives(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit (continuation lines joined), each key with all its values."""
    found: dict[str, list[str]] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("unit", ["mns-web.service", "mns-worker.service", "mns-sender.service", "mns-beat.service"])
def test_each_unit_reads_the_env_file_runs_as_its_own_user_restarts_and_is_hardened(unit: str) -> None:
    found = directives(UNITS / unit)
    assert found["EnvironmentFile"] == ["/etc/mns/mns.env"]
    assert found["User"] == ["mns"]
    assert found["Restart"] == ["always"]
    assert found["NoNewPrivileges"] == ["yes"]
    assert found["ProtectSystem"] == ["strict"]
    assert found["ReadWritePaths"] == ["/srv/mns/var"]


def test_the_web_unit_runs_gunicorn_with_the_projects_header_limits() -> None:
    [command] = directives(UNITS / "mns-web.service")["ExecStart"]
    args = shlex.split(command)
    assert args[:2] == ["/srv/mns/.venv/bin/gunicorn", "mns_site.wsgi"]
    start = args.index(GUNICORN_LIMITS[0])
    assert args[start : start + len(GUNICORN_LIMITS)] == GUNICORN_LIMITS


def test_the_worker_and_beat_stop_with_celerys_warm_shutdown() -> None:
    worker, beat = directives(UNITS / "mns-worker.service"), directives(UNITS / "mns-beat.service")
    assert shlex.split(worker["ExecStart"][0])[1:4] == ["-A", "mns_site", "worker"]
    assert shlex.split(beat["ExecStart"][0])[1:4] == ["-A", "mns_site", "beat"]
    assert worker["KillSignal"] == beat["KillSignal"] == ["SIGINT"]


def test_the_worker_leaves_the_sends_to_the_sender_which_runs_them_on_threads() -> None:
    worker = directives(UNITS / "mns-worker.service")
    sender = directives(UNITS / "mns-sender.service")
    [worker_command], [sender_command] = worker["ExecStart"], sender["ExecStart"]
    worker_args = shlex.split(worker_command)
    sender_args = shlex.split(sender_command)
    assert worker_args[1:4] == sender_args[1:4] == ["-A", "mns_site", "worker"]
    assert worker_args[worker_args.index("--exclude-queues") + 1] == SENDS_QUEUE
    assert sender_args[sender_args.index("--queues") + 1] == SENDS_QUEUE
    assert sender_args[sender_args.index("--pool") + 1] == "threads"
    assert sender_args[sender_args.index("-n") + 1] == "sender@%%h"  # systemd's escape: Celery reads sender@%h
    assert sender["KillSignal"] == ["SIGINT"]
    for unit in ("mns-web.service", "mns-worker.service", "mns-sender.service", "mns-beat.service"):
        assert unit.removesuffix(".service") in (UNITS / "mns-web.service").read_text()  # installed together


def test_the_web_unit_takes_the_worker_model_from_the_projects_gunicorn_settings() -> None:
    """gthread workers behind the admission limit (gunicorn.conf.py, read from the working folder): a
    ``--worker-class`` or ``--config`` on the command line would drop the early refusal under overload."""
    found = directives(UNITS / "mns-web.service")
    assert found["WorkingDirectory"] == ["/srv/mns"]
    assert (REPO / "gunicorn.conf.py").exists()
    [command] = found["ExecStart"]
    assert not any(arg.startswith(("--worker-class", "-k", "--config", "-c")) for arg in shlex.split(command))
