"""``make run``: the whole gateway on one machine — web (gunicorn), Celery worker and beat — and proof it works."""

import argparse
import json
import os
import secrets
import signal
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


class Command(BaseCommand):
    help = "Run the gateway (web, worker, beat, and simnet as its node) in the foreground; Ctrl-C stops everything."
    nodes: list[dict] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port for the web server")
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
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        password_file = ensure_admin(Path(settings.VAR_DIR))
        children = self.start(options)
        stop = self.stopper = _Stopper(children)
        signal.signal(signal.SIGTERM, stop.on_signal)
        signal.signal(signal.SIGINT, stop.on_signal)
        try:
            base = f"http://{options['bind']}"
            health = wait_healthy(base, children, timeout=options["timeout"])
            self.banner(base, health, password_file)
            demo = options["demo"] if options["demo"] is not None else bool(self.nodes) and not options["check"]
            if demo:
                self.demo(base, password_file)
            if not options["check"]:
                stop.wait()
        finally:
            stop.stop_all()

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
            children[name] = subprocess.Popen(args, **options)  # noqa: S603
            self.stdout.write(f"started {name} (pid {children[name].pid}), log in {logs / (name + '.log')}")
        return children

    def banner(self, base: str, health: dict, password_file: Path) -> None:
        checks = ", ".join(f"{name} {'ok' if c['ok'] else 'NOT OK'}" for name, c in health["checks"].items())
        self.stdout.write(self.style.SUCCESS(f"\nThe MNS gateway is running: {health['status']} ({checks})"))
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


def start_simnet(logs: Path) -> tuple[subprocess.Popen, list[dict]]:
    """simnet with its state under var/, so the node keys (and so the gateway's identity) survive restarts."""
    # Node 0 is the gateway's; nodes 1 and 2 are alice's and bob's in the walk-through (mns_client.demo).
    args = [sys.executable, "manage.py", "simnet", "--nodes", str(SIMNET_NODES)]
    args += ["--state", str(Path(settings.VAR_DIR) / "simnet")]
    err = (logs / "simnet.log").open("ab")
    child = subprocess.Popen(args, cwd=settings.BASE_DIR, stdout=subprocess.PIPE, stderr=err, text=True)  # noqa: S603
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


def wait_healthy(base: str, children: dict[str, subprocess.Popen], *, timeout: float) -> dict:
    """Wait until health says every part, worker and beat included, works."""
    deadline, last = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        for name, child in children.items():
            if child.poll() is not None:
                raise CommandError(f"{name} exited with {child.returncode}; see var/log/{name}.log")
        try:
            with urllib.request.urlopen(f"{base}/api/v1/health", timeout=5) as reply:  # noqa: S310 - our own URL
                last = json.load(reply)
        except urllib.error.HTTPError as error:
            last = json.load(error)
        except OSError:
            pass
        if last.get("status") == "ok":
            return last
        time.sleep(0.5)
    raise CommandError(f"the gateway did not become healthy in {timeout:.0f} s: {json.dumps(last)}")


def wait_for_identity(base: str, timeout: float = 30) -> dict | None:
    """The gateway's Maxima identity once node supervision (a beat task) has learnt it, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/.well-known/mns.json", timeout=5) as reply:  # noqa: S310
            maxima = json.load(reply)["maxima"]
        if maxima["publickey"]:
            return maxima
        time.sleep(0.5)
    return None


class _Stopper:
    def __init__(self, children: dict[str, subprocess.Popen]) -> None:
        self.children = children
        self.stopping = False

    def on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True

    def wait(self) -> None:
        while not self.stopping:
            for name, child in self.children.items():
                if child.poll() is not None:
                    raise CommandError(f"{name} exited with {child.returncode}; see var/log/{name}.log")
            time.sleep(0.5)

    def stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
