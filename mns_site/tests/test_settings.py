"""The settings module, run for real in a fresh interpreter with a given environment."""

import errno
import json
import multiprocessing
import os
import re
import secrets
import subprocess
import sys
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from stat import S_ISDIR

import pytest
from django.conf import settings

from core.env import local_secret
from testsupport.processes import free_port

REPO = Path(settings.BASE_DIR)


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MNS_", "DATABASE_", "REDIS_", "CELERY_"))}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=clean, capture_output=True, text=True, timeout=120
    )


def environment_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines read the way systemd's ``EnvironmentFile=`` (and ``docker --env-file``) reads them: a
    line starting with ``#`` or ``;`` is a comment, everything after the first ``=`` is the value — an inline
    ``# comment`` included — with the whitespace around it trimmed."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def commented_out(path: Path) -> dict[str, str]:
    """The optional variables the file shows as ``# NAME=value``, as they would read once uncommented."""
    lines = [line[2:] for line in path.read_text().splitlines() if re.match(r"^# [A-Z][A-Z0-9_]*=", line)]
    return {key: value for key, _, value in (line.partition("=") for line in lines)}


def production_example(tmp_path: Path) -> dict[str, str]:
    """The production block of .env.example as systemd reads it, with a real secret in place of the placeholder."""
    env = environment_file(REPO / ".env.example")
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    env["MNS_VAR_DIR"] = str(tmp_path)
    return env


# Runs settings (and the Celery app's configuration) with os.environ replaced by a mapping that records every name
# asked for, then prints those names: what the gateway really reads, however a module reads it.
RECORD_READS = """
import json, os, sys
class Recording(dict):
    asked = set()
    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)
    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)
    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)
os.environ = Recording(os.environ)
import django
django.setup()
from mns_site.celery import app
app.conf.broker_url
print(json.dumps(sorted(Recording.asked)))
"""


def test_every_value_of_the_env_example_reads_the_same_in_systemd_and_in_a_shell(tmp_path: Path) -> None:
    example = REPO / ".env.example"
    systemd = environment_file(example)
    shell = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; set +a; env -0', "sh", str(example)],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    )
    sourced = dict(item.split("=", 1) for item in shell.stdout.split("\0") if "=" in item)
    assert systemd == {key: sourced[key] for key in systemd}
    for key, value in {**systemd, **commented_out(example)}.items():
        assert "#" not in value, f"{key}={value}: an inline comment"
        assert not value.startswith(("'", '"')), f"{key}={value}: quotes"


def test_every_variable_the_env_example_names_is_read_by_the_gateway(tmp_path: Path) -> None:
    example = REPO / ".env.example"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNS_", "DATABASE_", "REDIS_", "CELERY_"))}
    env.update(production_example(tmp_path))
    env["DJANGO_SETTINGS_MODULE"] = "mns_site.settings"
    result = subprocess.run(
        [sys.executable, "-c", RECORD_READS], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    read = set(json.loads(result.stdout.splitlines()[-1]))
    named = set(environment_file(example)) | set(commented_out(example))
    assert sorted(named - read) == []


def test_an_unknown_value_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    result = run_manage("check", env={"DEBUG": "maybe", "MNS_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "DEBUG='maybe' is not valid" in result.stderr


def test_the_placeholder_secret_key_is_refused(tmp_path: Path) -> None:
    env = production_example(tmp_path)
    env["SECRET_KEY"] = "replace-with-the-output-of-python-secrets-token-urlsafe-50-command-above"
    result = run_manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_a_value_not_understood_is_one_line_naming_the_variable_and_what_to_do(tmp_path: Path) -> None:
    result = run_manage("check", env={"MNS_HTTPS": "yes-please", "MNS_VAR_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "manage.py check: MNS_HTTPS='yes-please' is not valid: expected one of true/false, yes/no, on/off, 1/0. "
        "Set MNS_HTTPS to a valid value in the environment (or the EnvironmentFile/.env you load; every variable is "
        "described in .env.example), or unset it for the default."
    ]


def test_the_placeholder_secret_key_is_one_line(tmp_path: Path) -> None:
    env = production_example(tmp_path)
    env["SECRET_KEY"] = "replace-with-the-output-of-python-secrets-token-urlsafe-50-command-above"
    result = run_manage("migrate", env=env)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("manage.py migrate: SECRET_KEY=")


def test_verbosity_3_or_debug_shows_the_traceback_of_a_start_up_failure(tmp_path: Path) -> None:
    verbose = run_manage("check", "-v", "3", env={"MNS_HTTPS": "yes-please", "MNS_VAR_DIR": str(tmp_path)})
    debug = run_manage("check", env={"MNS_HTTPS": "yes-please", "DEBUG": "true", "MNS_VAR_DIR": str(tmp_path)})
    for result in (verbose, debug):
        assert result.returncode == 1
        assert result.stderr.startswith("Traceback (most recent call last):")
        assert result.stderr.splitlines()[-1].startswith("core.env.EnvError: MNS_HTTPS='yes-please'")


def test_a_command_refusing_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    result = run_manage("maxima_status", env={"MNS_VAR_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "CommandError: this gateway has no Minima node configured: set MINIMA_RPC_URL (and MINIMA_RPC_PASSWORD) to "
        "the node's RPC, e.g. http://127.0.0.1:9005 (make run starts simnet and sets it itself)"
    ]


def test_a_domain_error_from_a_command_is_one_line(tmp_path: Path) -> None:
    code = "from maxima.node import node_client; node_client()"
    result = run_manage("shell", "--no-imports", "-c", code, env={"MNS_VAR_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "manage.py shell: This gateway has no Minima node configured. (node_not_configured)"
    ]


def test_gunicorn_with_a_bad_setting_says_it_in_one_line_and_stops(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNS_", "DATABASE_", "REDIS_", "CELERY_"))}
    env.update({"MNS_HTTPS": "yes-please", "MNS_VAR_DIR": str(tmp_path)})
    args = [sys.executable, "-m", "gunicorn", "mns_site.wsgi", "--bind", f"127.0.0.1:{free_port()}"]
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert [line for line in result.stderr.splitlines() if "MNS_HTTPS" in line] == [
        "gunicorn mns_site.wsgi: MNS_HTTPS='yes-please' is not valid: expected one of true/false, yes/no, on/off, "
        "1/0. Set MNS_HTTPS to a valid value in the environment (or the EnvironmentFile/.env you load; every variable "
        "is described in .env.example), or unset it for the default."
    ]
    assert "Traceback" not in result.stderr


def test_a_celery_worker_with_a_bad_setting_says_it_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNS_", "DATABASE_", "REDIS_", "CELERY_"))}
    env.update({"MNS_HTTPS": "yes-please", "MNS_VAR_DIR": str(tmp_path)})
    args = [sys.executable, "-m", "celery", "-A", "mns_site", "worker"]
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("celery -A mns_site: MNS_HTTPS='yes-please' is not valid")


def test_check_deploy_is_clean_with_the_production_example(tmp_path: Path) -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=production_example(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_embedded_shape_uses_sqlite_in_wal_mode_and_the_filesystem_broker(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings as s; from django.db import connection as c;"
        "c.ensure_connection(); cur = c.cursor(); cur.execute('PRAGMA journal_mode'); print(cur.fetchone()[0]);"
        "from django.db import connections; print(type(connections['default']).__module__);"
        "print(s.CELERY_BROKER_URL); from mns_site.celery import app; conn = app.connection_for_write();"
        "print(type(conn.transport).__module__); conn.release(); print(s.CACHES['default']['BACKEND']);"
        "print(s.DEBUG)"
    )
    result = run_manage("shell", "--no-imports", "-c", code, env={"MNS_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    locmem = "django.core.cache.backends.locmem.LocMemCache"
    broker = ["filesystem://localhost/", "core.broker"]  # the URL's scheme is core.broker's transport
    assert result.stdout.split() == ["wal", "core.sqlite.base", *broker, locmem, "False"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def _secret_when_released(path: str, start: Barrier, out: Queue) -> None:
    start.wait()
    out.put(local_secret(Path(path)))


def test_processes_starting_at_once_all_read_the_one_secret_the_first_of_them_made(tmp_path: Path) -> None:
    # gunicorn's workers import the settings at the same moment on a fresh var/: each must get the same whole secret,
    # none may fail because another made the file first, or read it before it was written.
    context = multiprocessing.get_context("fork")
    for round_ in range(20):
        path, start, out = tmp_path / f"secret_{round_}", context.Barrier(6), context.Queue()
        workers = [context.Process(target=_secret_when_released, args=(str(path), start, out)) for _ in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        assert [worker.exitcode for worker in workers] == [0] * 6
        seen = {out.get(timeout=5) for _ in workers}
        assert seen == {path.read_text()}
        assert len(path.read_text()) >= 50
        assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"secret_{n}" for n in range(20))  # no leftovers


def _no_links(*_: object) -> None:
    raise PermissionError(1, "Operation not permitted")  # what vfat answers


def test_the_secret_is_made_on_a_file_system_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "link", _no_links)
    secret = local_secret(tmp_path / "secret_key")
    assert len(secret) >= 50
    assert local_secret(tmp_path / "secret_key") == secret
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # the candidate is gone


def _syncs_and_links(monkeypatch: pytest.MonkeyPatch, *, full_from: int | None = None) -> list[tuple[str, int, object]]:
    """What ``local_secret`` syncs and links, in order: ``(fsync, inode, size or "directory")``, ``(link, inode,
    None)`` (each link tried); with ``full_from``, the sync of that file (0: the first) and later ones fail as on a
    full disk."""
    events: list[tuple[str, int, object]] = []
    fsync, link = os.fsync, os.link

    def synced(fd: int) -> None:
        stat = os.fstat(fd)
        is_dir = S_ISDIR(stat.st_mode)
        files = sum(1 for event in events if event[0] == "fsync" and event[2] != "directory")
        events.append(("fsync", stat.st_ino, "directory" if is_dir else stat.st_size))
        if full_from is not None and not is_dir and files >= full_from:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    def linked(source: str, target: Path) -> None:
        events.append(("link", os.stat(source).st_ino, None))
        link(source, target)

    monkeypatch.setattr(os, "fsync", synced)
    monkeypatch.setattr(os, "link", linked)  # around whatever link is in place (a file system's without links too)
    return events


def test_the_secret_is_on_disk_before_it_is_linked_into_place_and_the_link_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _syncs_and_links(monkeypatch)
    secret = local_secret(tmp_path / "secret_key")
    made = (tmp_path / "secret_key").stat().st_ino  # the candidate's inode, linked into place
    directory = ("fsync", tmp_path.stat().st_ino, "directory")
    assert events == [("fsync", made, len(secret)), ("link", made, None), directory]
    events.clear()
    assert local_secret(tmp_path / "secret_key") == secret
    assert events == []  # made once, read after that


def test_a_secret_made_in_place_is_on_disk_and_its_name_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "link", _no_links)
    events = _syncs_and_links(monkeypatch)
    secret = local_secret(tmp_path / "secret_key")
    candidate = events[0][1]
    made = (tmp_path / "secret_key").stat().st_ino
    directory = ("fsync", tmp_path.stat().st_ino, "directory")
    assert events == [
        ("fsync", candidate, len(secret)),
        ("link", candidate, None),
        ("fsync", made, len(secret)),
        directory,
    ]


@pytest.mark.parametrize("links", [True, False], ids=["linked", "made in place"])
def test_a_secret_that_cannot_be_written_raises_and_leaves_nothing_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, links: bool
) -> None:
    if not links:  # the candidate is written, then the file made in place cannot be
        monkeypatch.setattr(os, "link", _no_links)
    events = _syncs_and_links(monkeypatch, full_from=0 if links else 1)
    with pytest.raises(OSError, match="No space left"):
        local_secret(tmp_path / "secret_key")
    assert list(tmp_path.iterdir()) == []  # no empty secret_key to stop every later start
    assert [event[0] for event in events] == (["fsync"] if links else ["fsync", "link", "fsync"])  # nothing after


def test_connecting_to_the_embedded_broker_logs_no_hostname_warning(tmp_path: Path) -> None:
    code = (
        "import logging; logging.basicConfig(); from mns_site.celery import app;"
        "conn = app.connection_for_write(); conn.ensure_connection(max_retries=1); print(conn.as_uri()); conn.release()"
    )
    result = run_manage("shell", "--no-imports", "-c", code, env={"MNS_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["filesystem://:**@localhost//"]  # kombu masks the (empty) password
    assert "No hostname" not in result.stderr
