"""``make run``: the whole gateway on one machine — web (gunicorn), Celery worker and beat — and proof it works."""

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.limits import GUNICORN_LIMITS
from core.processes import celery_worker_command
from mns_client.progress import Progress

DEFAULT_BIND = "127.0.0.1:8000"


class Command(BaseCommand):
    help = "Run the gateway (web, worker, beat, and simnet as its node) in the foreground; Ctrl-C stops everything."
    nodes: list[dict] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--bind", default=DEFAULT_BIND, help="host:port for the web server (make run BIND=host:port)"
        )
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--check", action="store_true", help="start, show that every part works, then stop")
        parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for every part")
        parser.add_argument(
            "--simnet",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="run simnet as the Minima node (default: when MINIMA_RPC_URL is not set)",
        )
        parser.add_argument(
            "--demo",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="run the narrated walk-through (mns_client.demo) once the gateway is up (default: with simnet)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        check_free(options["bind"])  # before anything starts: the likeliest failure of a second `make run`
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        password_file = ensure_admin(Path(settings.VAR_DIR))
        children = self.start(options)
        stop = self.stopper = _Stopper(children)
        signal.signal(signal.SIGTERM, stop.on_signal)
        signal.signal(signal.SIGINT, stop.on_signal)
        try:
            base = f"http://{options['bind']}"
            health = wait_healthy(base, children, bind=options["bind"], timeout=options["timeout"])
            self.banner(base, health, password_file)
            demo = options["demo"] if options["demo"] is not None else bool(self.nodes) and not options["check"]
            if demo:
                self.demo(base, password_file)
            if not options["check"]:
                stop.wait()
        finally:
            for line in stop.stop_all():
                self.stdout.write(line)

    def start(self, options: dict[str, Any]) -> dict[str, subprocess.Popen]:
        python = sys.executable
        logs = Path(settings.VAR_DIR) / "log"
        logs.mkdir(exist_ok=True)
        env = dict(os.environ)
        children: dict[str, subprocess.Popen] = {}
        use_simnet = options["simnet"] if options["simnet"] is not None else not settings.MINIMA_RPC_URL
        if use_simnet:
            children["simnet"], self.nodes = start_simnet(logs)
            env["MINIMA_RPC_URL"] = self.nodes[0]["rpc"]
            env["MNS_HOOK_BASE_URL"] = f"http://{options['bind']}"
            self.stdout.write(f"started simnet (pid {children['simnet'].pid}): {len(self.nodes)} nodes")
        web = [
            python,
            "-m",
            "gunicorn",
            "mns_site.wsgi",
            "--bind",
            options["bind"],
            "--workers",
            str(options["web_workers"]),
            "--access-logfile",
            "-",
            "--graceful-timeout",
            "10",
            *GUNICORN_LIMITS,
        ]
        # Supervised: restarted if it dies (a broker outage can make a Celery worker exit), as systemd would.
        worker = celery_worker_command(
            concurrency=2, beat_schedule=settings.CELERY_BEAT_SCHEDULE_FILENAME, supervised=True, python=python
        )
        for name, args in (("web", web), ("worker", worker)):
            out = (logs / f"{name}.log").open("ab")
            # Our own interpreter with fixed arguments: nothing here comes from a request.
            options = {"cwd": settings.BASE_DIR, "env": env, "stdout": out, "stderr": subprocess.STDOUT}
            children[name] = spawn(args, **options)
            self.stdout.write(f"started {name} (pid {children[name].pid}), log in {logs / (name + '.log')}")
        return children

    def banner(self, base: str, health: dict, password_file: Path) -> None:
        self.stdout.write(self.style.SUCCESS("\n" + status_line(health)))
        self.stdout.write(f"  health     {base}/api/v1/health")
        self.stdout.write(f"  policy     {base}/.well-known/mns.json")
        self.stdout.write(f"  API docs   {base}/api/docs/")
        dapp = "" if (settings.MNS_DAPP_DIR / "index.html").exists() else "  (not built: make dapp needs Node.js)"
        self.stdout.write(f"  Dapp       {base}/app/{dapp}")
        self.stdout.write(f"  admin      {base}/admin/  user: admin  password: {password_file.read_text().strip()}")
        self.stdout.write(f"             (kept in {password_file}; change it in the admin)")
        identity = wait_for_identity(base)
        if identity:
            key, address = identity["publickey"], identity["address"]  # their heads are the same for every key
            self.stdout.write(f"  maxima     identity …{key[-24:]}  address …{address[-32:]}")
        roles = {0: "the gateway's node", 1: "alice's node in the demo", 2: "bob's node in the demo"}
        for node in self.nodes:
            role = roles.get(node["node"], "a user's node")
            self.stdout.write(f"  simnet {node['node']}   {node['rpc']}  ({role}; try: curl {node['rpc']}status)")
        self.stdout.write("")

    def demo(self, base: str, password_file: Path) -> None:
        """The walk-through with the real ``mns`` client (alice on simnet node 1, bob on node 2), then a reminder
        of where things are. Its settings go to ``var/demo.json``, which ``make demo`` replays against."""
        if len(self.nodes) < 3:
            self.stdout.write("(no walk-through: it needs simnet's user nodes 1 and 2)")
            return
        var = Path(settings.VAR_DIR)
        run = {
            "gateway": base,
            "alice_node": self.nodes[1]["rpc"],
            "bob_node": self.nodes[2]["rpc"],
            "alice_home": str(var / "demo" / "alice"),
            "bob_home": str(var / "demo" / "bob"),
        }
        (var / "demo.json").write_text(json.dumps(run, indent=2) + "\n")
        args = [sys.executable, "-m", "mns_client.demo", "--from", str(var / "demo.json")]
        self.stdout.flush()
        walkthrough = subprocess.Popen(args, cwd=settings.BASE_DIR)  # noqa: S603 - our own interpreter and module
        while (code := walkthrough.poll()) is None:
            if self.stopper.stopping:  # Ctrl-C or SIGTERM while it runs: stop it too, and everything else
                walkthrough.terminate()
                walkthrough.wait(timeout=20)
                return
            time.sleep(0.2)
        if code:
            self.stdout.write(self.style.WARNING(f"\nThe walk-through failed (exit {code}); see its output above."))
        self.stdout.write(self.style.SUCCESS(f"\nThe MNS gateway keeps running at {base} (Ctrl-C stops it)."))
        self.stdout.write(f"  admin      {base}/admin/  user: admin  password: {password_file.read_text().strip()}")
        self.stdout.write("  replay     make demo   (the walk-through again, against this gateway)")
        self.stdout.write(f"  clients    MNS_HOME={run['alice_home']} {sys.executable} -m mns_client inbox  (alice)")


SIMNET_NODES = 3


def status_line(health: dict) -> str:
    """The banner's first line, from the health endpoint's answer (the README shows it)."""
    checks = ", ".join(f"{name} {'ok' if c['ok'] else 'NOT OK'}" for name, c in health["checks"].items())
    return f"The MNS gateway is running: {health['status']} ({checks})"


def start_simnet(logs: Path) -> tuple[subprocess.Popen, list[dict]]:
    """simnet with its state under var/, so the node keys (and so the gateway's identity) survive restarts."""
    # Node 0 is the gateway's; nodes 1 and 2 are alice's and bob's in the walk-through (mns_client.demo).
    args = [sys.executable, "manage.py", "simnet", "--nodes", str(SIMNET_NODES)]
    args += ["--state", str(Path(settings.VAR_DIR) / "simnet")]
    err = (logs / "simnet.log").open("ab")
    child = spawn(args, cwd=settings.BASE_DIR, stdout=subprocess.PIPE, stderr=err, text=True)
    nodes = []
    while len(nodes) < SIMNET_NODES:
        line = child.stdout.readline()
        if not line:
            raise CommandError(f"simnet exited with {child.wait()}; see {logs / 'simnet.log'}")
        nodes.append(json.loads(line))
    return child, nodes


def ensure_admin(var_dir: Path) -> Path:
    """A staff account for the local admin, made once, its password in a 0600 file beside the database."""
    path = var_dir / "admin-password"
    user_model = get_user_model()
    if not user_model.objects.filter(username="admin").exists():
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser("admin", "", password)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
    return path


def split_bind(bind: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8000`` for IPv6) as gunicorn takes it."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise CommandError(f"--bind {bind!r} is not host:port; e.g. make run BIND=127.0.0.1:8001")
    return host.strip("[]"), int(port)


def check_free(bind: str) -> None:
    """Refuse, in one line naming the address, to start when something already listens there."""
    host, port = split_bind(bind)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {bind}: {exc.strerror or exc}; e.g. make run BIND=127.0.0.1:8001"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: TIME_WAIT is no obstacle
        try:
            probe.bind(address)
        except OSError as exc:
            raise CommandError(_bind_refused(bind, exc.strerror or str(exc))) from None


def _bind_refused(bind: str, reason: str) -> str:
    return (
        f"cannot listen on {bind}: {reason.lower()} (another gateway or program is there); stop it, or choose "
        f"another address: make run BIND=127.0.0.1:8001"
    )


def spawn(args: list[str], **options: Any) -> subprocess.Popen:
    """A child in a process group of its own, which ``_Stopper`` signals and, if need be, kills as a whole (a
    Celery worker's pool and a supervised command's children are in it too)."""
    # Our own interpreter with fixed arguments: nothing here comes from a request.
    return subprocess.Popen(args, process_group=0, **options)  # noqa: S603


def wait_healthy(base: str, children: dict[str, subprocess.Popen], *, bind: str, timeout: float) -> dict:
    """Wait until health says every part, worker and beat included, works."""
    deadline, last = time.monotonic() + timeout, {}
    progress = Progress("waiting for the gateway to be healthy")
    while time.monotonic() < deadline:
        for name, child in children.items():
            if child.poll() is not None:
                raise CommandError(_exited(name, child.returncode, bind))
        try:
            with urllib.request.urlopen(f"{base}/api/v1/health", timeout=5) as reply:  # noqa: S310 - our own URL
                last = json.load(reply)
        except urllib.error.HTTPError as error:
            try:
                last = json.load(error)
            except ValueError:  # not the gateway's JSON: something else answers on that address
                last = {"status": f"HTTP {error.code} from something that is not this gateway"}
        except ValueError:
            last = {"status": "an answer that is not the gateway's health"}
        except OSError:
            pass
        if last.get("status") == "ok":
            progress.done()
            return last
        waiting = [name for name, check in last.get("checks", {}).items() if not check.get("ok")]
        progress.tick(f"not yet: {', '.join(waiting)}" if waiting else "")
        time.sleep(0.5)
    progress.done()
    raise CommandError(f"the gateway did not become healthy in {timeout:.0f} s: {json.dumps(last)}")


def _exited(name: str, code: int, bind: str) -> str:
    log = Path(settings.VAR_DIR) / "log" / f"{name}.log"
    if name == "web" and log.exists():
        # gunicorn retries a taken address for a few seconds, then exits: "Connection in use: ('127.0.0.1', 8000)"
        tail = log.read_text(errors="replace")[-4000:]
        if "Connection in use" in tail or "Address already in use" in tail:
            return _bind_refused(bind, "address already in use")
    return f"{name} exited with {code}; see {log}"


def wait_for_identity(base: str, timeout: float = 30) -> dict | None:
    """The gateway's Maxima identity once node supervision (a beat task) has learnt it, or None."""
    deadline = time.monotonic() + timeout
    progress = Progress("waiting for the gateway's node to tell its Maxima identity")
    try:
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{base}/.well-known/mns.json", timeout=5) as reply:  # noqa: S310
                maxima = json.load(reply)["maxima"]
            if maxima["publickey"]:
                return maxima
            progress.tick()
            time.sleep(0.5)
        return None
    finally:
        progress.done()


class _Stopper:
    """Stops every child with one SIGINT to the process we started (gunicorn's master, the supervisor, which passes
    it to Celery once: Celery's warm shutdown, which ends its pool and beat itself), waits at most ``grace`` seconds
    for every process of every group to be gone, then SIGKILLs the groups still there.

    A signal to a whole group reaches Celery's pool children too: SIGTERM to the group could kill one holding the
    pool's queue lock and leave Celery's main process hung in billiard's ``_terminate_pool`` (one stop in four),
    and a second SIGINT (the group's, then the supervisor's) would turn the warm shutdown into a cold one. One
    signal to each leader avoids both, and the SIGKILL of the group bounds the stop whatever happens.
    """

    def __init__(self, children: dict[str, subprocess.Popen], *, grace: float = 20.0) -> None:
        self.children = children
        self.grace = grace
        self.stopping = False

    def on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def wait(self) -> None:
        while not self.stopping:
            for name, child in self.children.items():
                if child.poll() is not None:
                    raise CommandError(f"{name} exited with {child.returncode}; see var/log/{name}.log")
            time.sleep(0.5)

    def stop_all(self) -> list[str]:
        """Stop everything; one line per child saying how it ended."""
        groups = {name: child.pid for name, child in self.children.items()}  # spawn() made each pid its group id
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        started = time.monotonic()
        progress = Progress("stopping " + ", ".join(groups))
        while time.monotonic() - started < self.grace:
            for child in self.children.values():
                child.poll()  # reap the group leaders, which would otherwise count as still there
            left = [name for name, pgid in groups.items() if group_members(pgid)]
            if not left:
                break
            progress.tick("still running: " + ", ".join(left))
            time.sleep(0.1)
        progress.done()
        report = []
        for name, pgid in groups.items():
            members = group_members(pgid)
            child = self.children[name]
            if members:
                _signal_group(pgid, signal.SIGKILL)
                child.wait()
                report.append(
                    f"stopped {name} (pid {child.pid}): killed with {len(members)} process(es) of its group "
                    f"still running {self.grace:.0f} s after SIGINT"
                )
            else:
                child.wait()
                report.append(f"stopped {name} (pid {child.pid}) by itself, exit {child.returncode}")
        return report


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(pgid, signum)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group; zombies wait for a parent that may never reap them."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: a group with only zombies in it counts as running
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, pgrp, …
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members
