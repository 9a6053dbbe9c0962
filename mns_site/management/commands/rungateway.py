"""``make run``: the whole gateway on one machine — web (gunicorn), Celery worker and beat — and proof it works."""

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


class Command(BaseCommand):
    help = "Run the gateway (web, worker, beat) in the foreground; Ctrl-C stops everything."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port for the web server")
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--check", action="store_true", help="start, show that every part works, then stop")
        parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for every part")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        password_file = ensure_admin(Path(settings.VAR_DIR))
        children = self.start(options)
        stop = _Stopper(children)
        signal.signal(signal.SIGTERM, stop.on_signal)
        signal.signal(signal.SIGINT, stop.on_signal)
        try:
            base = f"http://{options['bind']}"
            health = wait_healthy(base, children, timeout=options["timeout"])
            self.banner(base, health, password_file)
            if not options["check"]:
                stop.wait()
        finally:
            stop.stop_all()

    def start(self, options: dict[str, Any]) -> dict[str, subprocess.Popen]:
        python = sys.executable
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
        ]
        worker = [
            python,
            "-m",
            "celery",
            "-A",
            "mns_site",
            "worker",
            "--beat",
            "-l",
            "info",
            "--concurrency",
            "2",
            "--schedule",
            settings.CELERY_BEAT_SCHEDULE_FILENAME,
            "--without-gossip",
            "--without-mingle",
        ]
        logs = Path(settings.VAR_DIR) / "log"
        logs.mkdir(exist_ok=True)
        children = {}
        for name, args in (("web", web), ("worker", worker)):
            out = (logs / f"{name}.log").open("ab")
            children[name] = subprocess.Popen(args, cwd=settings.BASE_DIR, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
            self.stdout.write(f"started {name} (pid {children[name].pid}), log in {logs / (name + '.log')}")
        return children

    def banner(self, base: str, health: dict, password_file: Path) -> None:
        checks = ", ".join(f"{name} {'ok' if c['ok'] else 'NOT OK'}" for name, c in health["checks"].items())
        self.stdout.write(self.style.SUCCESS(f"\nThe MNS gateway is running: {health['status']} ({checks})"))
        self.stdout.write(f"  health     {base}/api/v1/health")
        self.stdout.write(f"  policy     {base}/.well-known/mns.json")
        self.stdout.write(f"  API docs   {base}/api/docs/")
        self.stdout.write(f"  admin      {base}/admin/  user: admin  password: {password_file.read_text().strip()}")
        self.stdout.write(f"             (kept in {password_file}; change it in the admin)\n")


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
