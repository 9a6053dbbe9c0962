"""Start the gateway's real processes (Celery worker, gunicorn, simnet) from tests, and wait on them."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from core.limits import GUNICORN_LIMITS
from core.processes import celery_worker_command
from testsupport import REPO


def database_url() -> str:
    """A URL for the database the test process is using now (the test database), for child processes."""
    from django.db import connection

    entry = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite://{Path(entry['NAME']).resolve()}"
    auth = quote(entry["USER"] or "", safe="")
    if entry["PASSWORD"]:
        auth += ":" + quote(entry["PASSWORD"], safe="")
    host = entry["HOST"] or "127.0.0.1"
    port = f":{entry['PORT']}" if entry["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{entry['NAME']}"


def database_at(url: str, name: str) -> str:
    """``url`` (a PostgreSQL URL) naming the database ``name`` of the same server instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def pg_connect(url: str) -> Any:
    """An autocommit psycopg connection to ``url`` (CREATE/DROP DATABASE, and reads outside Django)."""
    import psycopg

    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True, connect_timeout=5)


def child_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "mns_site.settings", "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


@contextmanager
def process(args: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A child process whose output goes to ``log``; terminated (then killed) when the block ends, and whatever it
    left of its session killed after it (as ``testsupport.gateways`` stops its processes): a Celery worker killed in
    its warm shutdown left its embedded beat behind, which went on sending the periodic tasks into the broker for
    every later stage of a bench run."""
    with log.open("wb") as out:
        child = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield child
        finally:
            try:
                child.terminate()
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass  # killed with the rest of its session, below
            finally:  # also on a second Ctrl-C, which its own session no longer gets from the terminal
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def celery_worker(
    *, env: dict[str, str], log: Path, concurrency: int = 1, beat: bool = False, supervised: bool = False
) -> list[str]:
    """The worker command line (``core.processes``), its beat schedule (if any) next to its log."""
    schedule = log.with_suffix(".schedule") if beat else None
    return celery_worker_command(concurrency=concurrency, beat_schedule=schedule, supervised=supervised)


def children(pid: int) -> list[int]:
    """The pids of the processes ``pid`` started (from ``/proc``); none once it is gone."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def wait_for(condition: Callable[[], object], *, timeout: float, what: str, log: Path | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


class RedisServer:
    """A private redis-server on its own port, that a test may stop and start again (as in a broker outage)."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.child: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.folder)]
        self.child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=10, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child.wait()
            self.child = None

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except redis.RedisError:
            return False


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


HAPROXY_CONFIG = REPO / "docs" / "haproxy" / "mns.cfg"


def haproxy(
    *, bind: str, backend: str, inside: int, queue: int, wait: str, extra: Path | None = None
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a HAProxy in front of ``backend`` with the shipped configuration, as it
    is (docs/haproxy/mns.cfg): ``inside`` requests given to gunicorn at once, ``queue`` waiting at most ``wait``,
    the rest refused at once. ``extra``: a second configuration file (a test's stats socket)."""
    env = {
        **os.environ,
        "MNS_PROXY_BIND": bind,
        "MNS_WEB_BACKEND": backend,
        "MNS_PROXY_INSIDE": str(inside),
        "MNS_PROXY_QUEUE": str(queue),
        "MNS_PROXY_WAIT": wait,
    }
    command = ["haproxy", "-db", "-f", str(HAPROXY_CONFIG), *(["-f", str(extra)] if extra else [])]
    return command, env


def gunicorn(*, bind: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "mns_site.wsgi",
        "--bind",
        bind,
        "--workers",
        "2",
        "--log-level",
        "warning",
        *GUNICORN_LIMITS,
    ]
