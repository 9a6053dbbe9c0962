"""Screenshots of the gateway's pages for ``docs/screenshots/``, taken by headless Chromium at a given width.

``python -m testsupport.screenshots [--width 1280] [--out docs/screenshots]``: a throw-away gateway (its own
``var/`` in a temporary folder, SQLite, ``runserver`` on a free loopback port, and a real Celery worker with beat,
so the front page shows the health a running gateway has) with example rows — mailboxes,
messages, peers and 24 hours of transport traffic — written straight into the tables, then Chromium (through
Debian's ``chromedriver``, over its WebDriver HTTP API) signs in to the admin and saves one PNG per page. It also
prints each page's scroll width, so a page that scrolls sideways shows.
"""

import argparse
import base64
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from testsupport import REPO
from testsupport.processes import celery_worker, free_port, process, wait_for

PAGES = {
    "front": "/",
    "admin-index": "/admin/",
    "admin-messages": "/admin/mailboxes/message/",
    "admin-add-peer": "/admin/federation/peer/add/",
}
PASSWORD = secrets.token_urlsafe(16)  # a throw-away gateway on loopback
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def seed() -> None:
    """Example rows, as a gateway a day into service might hold (written directly: only their look matters)."""
    import random
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from federation.models import Peer
    from mailboxes.models import Mailbox, Message
    from maxima.models import InboundEvent, OutboundMessage
    from registry.models import NameRecord

    rng, now = random.Random(21), timezone.now()
    get_user_model().objects.create_superuser("admin", password=PASSWORD)
    key = lambda: "0x" + "".join(rng.choice("0123456789ABCDEF") for _ in range(64))  # noqa: E731
    boxes = []
    for name in ("alice", "bob", "carol-the-long-named"):
        owner = key()
        record = NameRecord.objects.create(
            name=name, skeleton=name, status="active", owner_key=owner, box_key=key()[:66], status_changed_at=now
        )
        boxes.append(Mailbox.objects.create(record=record, owner_key=owner, max_messages=1000, max_bytes=2**24))
    for n in range(30):
        at = now - timedelta(minutes=rng.randint(1, 24 * 60))
        state = rng.choice(["stored", "stored", "forwarded", "forwarding"])
        Message.objects.create(
            mailbox=rng.choice(boxes), delivery_id=f"d{n:04}", sender_key=key(), sender_verified=True,
            scheme="nacl-sealedbox-v1", ciphertext=b"x" * 300, size=rng.randint(200, 60000), received_at=at,
            expires_at=at + timedelta(days=30), state=state,
        )  # fmt: skip
    for n in range(120):
        at = now - timedelta(minutes=rng.randint(1, 24 * 60))
        status = "done" if n % 9 else rng.choice(["pending", "rejected"])
        event = InboundEvent.objects.create(
            msgid=f"0x{n:064X}", sender=key(), recipient_key=key(), application="mns-mailbox", data=b"{}", size=2,
            timemilli=int(at.timestamp() * 1000), random="0x00", status=status,
        )  # fmt: skip
        InboundEvent.objects.filter(id=event.id).update(received_at=at, processed_at=at + timedelta(seconds=1))
        refused = n % 7 == 0
        reason = rng.choice(["over_quota", "blocked", "unknown_name"])
        message = OutboundMessage.objects.create(
            destination=key(), application="mns-mailbox", payload=b"{}", size=2, next_attempt_at=at,
            idempotency_key=f"receipt:d{n}:{n}" + (f":refused:{reason}" if refused else ""),
            status="failed" if n % 23 == 0 else ("queued" if n % 17 == 0 else "sent"), claimed_at=at,
            sent_at=at + timedelta(seconds=2),
        )  # fmt: skip
        OutboundMessage.objects.filter(id=message.id).update(created_at=at)
    Peer.objects.create(
        name="gw-berlin", identity_key=key(), address="MAX#0x30819F#Mx999@127.0.0.2:9001", permanent=True,
        api_url="http://127.0.0.2:9/api/v1/", last_heard_at=now - timedelta(seconds=40), cursor=1180,
        remote_head=1200, applied_ops=1180,
    )  # fmt: skip
    Peer.objects.create(
        name="gw-lisbon", identity_key=key(), address="Mx1234@127.0.0.3:9001", last_heard_at=now,
        cursor=940, remote_head=940, applied_ops=940,
    )  # fmt: skip
    from federation.models import PeerLagSample
    from maxima.models import QueueSample

    for step in range(24 * 12, 0, -1):  # one sample every 5 minutes, as MNS_SAMPLE_EVERY's default takes them
        at, wave = now - timedelta(minutes=5 * step), abs((step % 96) - 48)
        QueueSample.objects.create(
            at=at, inbound_depth=wave // 6, inbound_oldest_seconds=wave * 1.5,
            outbound_depth=wave // 3 + rng.randint(0, 4), outbound_oldest_seconds=wave * 4.0,
        )  # fmt: skip
        for peer in Peer.objects.all():
            PeerLagSample.objects.create(peer=peer, at=at, lag_ops=rng.randint(0, 30) + wave, lag_seconds=wave * 2.0)


# The page's width, the window's, and how far the widest table can scroll sideways inside its box.
WIDTHS = """return [document.documentElement.scrollWidth, window.innerWidth,
  Math.max(0, ...[...document.querySelectorAll('.results, table')].map(e => e.scrollWidth - e.clientWidth))]"""


class Browser:
    """Chromium through chromedriver's WebDriver HTTP API (no Python client needed)."""

    def __init__(self, width: int, height: int, *, extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.driver = subprocess.Popen(["chromedriver", f"--port={self.port}"], stdout=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        args = [*CHROMIUM_ARGS, *extra_args, f"--window-size={width},{height}", f"--user-data-dir={tempfile.mkdtemp()}"]
        options = {"binary": "/usr/bin/chromium", "args": args}
        for _ in range(50):
            try:
                answer = requests.post(
                    self.base + "/session",
                    json={"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}},
                    timeout=60,
                ).json()
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        self.session = f"{self.base}/session/{answer['value']['sessionId']}"
        if width < 500:  # headless Chromium's windows are at least 500 px wide: emulate a phone's screen instead
            metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True}
            self.call("POST", "/goog/cdp/execute", {"cmd": "Emulation.setDeviceMetricsOverride", "params": metrics})

    def call(self, method: str, path: str, body: dict | None = None) -> object:
        return requests.request(method, self.session + path, json=body, timeout=60).json()["value"]

    def go(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def type(self, selector: str, text: str) -> None:
        element = self.call("POST", "/element", {"using": "css selector", "value": selector})
        self.call("POST", f"/element/{next(iter(element.values()))}/value", {"text": text})

    def script(self, code: str) -> object:
        return self.call("POST", "/execute/sync", {"script": code, "args": []})

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("GET", "/screenshot")))

    def close(self) -> None:
        try:
            requests.delete(self.session, timeout=30)
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--suffix", default="", help="added to each file name, e.g. -390")
    options = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="mns-screens-"))
    # Its own SQLite and local cache whatever the caller's environment says (the PostgreSQL pass of the suite runs
    # this with DATABASE_URL set): the example rows must never reach another database. This process seeds it and
    # the runserver child serves it, so both read the same environment.
    for shared in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(shared, None)
    os.environ.update({"MNS_VAR_DIR": str(var), "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "mns_site.settings"})
    env = dict(os.environ)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    seed()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker_log = var / "worker.log"
    try:
        with process(celery_worker(env=env, log=worker_log, beat=True), env=env, log=worker_log):
            _screenshots(options, base=f"http://127.0.0.1:{port}", worker_log=worker_log)
    finally:
        server.terminate()
        server.wait(timeout=15)


def _healthy(base: str) -> bool:
    try:
        return requests.get(base + "/api/v1/health", timeout=2).json().get("status") == "ok"
    except (requests.ConnectionError, ValueError):
        return False


def _screenshots(options: argparse.Namespace, *, base: str, worker_log: Path) -> None:
    browser = Browser(options.width, options.height)
    try:
        wait_for(lambda: _healthy(base), timeout=120, what="the gateway's health to be ok", log=worker_log)
        browser.go(base + "/admin/login/")
        browser.type("#id_username", "admin")
        browser.type("#id_password", PASSWORD + "\n")
        options.out.mkdir(parents=True, exist_ok=True)
        for name, path in PAGES.items():
            browser.go(base + path)
            time.sleep(0.3)
            wide = browser.script(WIDTHS)
            file = options.out / f"{name}{options.suffix}.png"
            browser.screenshot(file)
            print(f"{file}: page {wide[0]} px wide in a {wide[1]} px window; a table scrolls {wide[2]} px sideways")
    finally:
        browser.close()


if __name__ == "__main__":
    main()
