"""Webhook delivery exactly as a node's NotifyManager does it (fixtures 11, 74, 86).

One delivery thread per node takes events in order; for each event the hooks are tried in list order, a hook
matching when its filter is empty or a substring of the event name. Each POST opens a new connection (10 s connect
timeout, no read timeout), sends the fixture's headers in the fixture's order and the compact JSON body with no
trailing newline, reads the status line and closes. There are no retries: a failure is only logged. Because the
thread waits for each answer, one slow endpoint delays every later event of that node, and only of that node.
"""

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from simnet import javajson

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
ACCEPT = "text/html, image/gif, image/jpeg, */*; q=0.2"


@dataclass(frozen=True)
class Hook:
    filter: str
    url: str

    @classmethod
    def parse(cls, entry: str) -> "Hook":
        """A stored entry is ``FILTER#url``; the filter may be empty."""
        filt, _, url = entry.partition("#")
        return cls(filt, url)

    def matches(self, event: str) -> bool:
        return self.filter == "" or self.filter in event


def build_request(url: str, body: bytes) -> tuple[str, int, bytes]:
    """The raw request bytes a node sends for one webhook POST, plus where to send them."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host_header = host if port == 80 else f"{host}:{port}"
    head = (
        f"POST {path} HTTP/1.1\r\n"
        "User-Agent: Minima/1.0\r\n"
        "Connection: close\r\n"
        f"Host: {host_header}\r\n"
        f"Accept: {ACCEPT}\r\n"
        "Content-type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return host, port, head.encode("ascii") + body


def post(url: str, body: bytes) -> int:
    """POST once; returns the HTTP status. Raises OSError/ValueError like the node's RPCClient would throw."""
    host, port, request = build_request(url, body)
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT) as sock:
        sock.settimeout(None)
        sock.sendall(request)
        status_line = b""
        while b"\n" not in status_line:
            chunk = sock.recv(1024)
            if not chunk:
                break
            status_line += chunk
        parts = status_line.split(b"\n", 1)[0].split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError("no HTTP status line in webhook reply")
        return int(parts[1])


def _where(url: str) -> str:
    """host:port only: a hook path may carry a secret (the gateway's does), so it never goes to the log."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 80}"


class WebhookDispatcher:
    """The per-node delivery thread. ``hooks`` is read at delivery time, so list changes apply at once."""

    def __init__(
        self,
        name: str,
        hooks: Callable[[], list[str]],
        delay: Callable[[], float],
        log: list[tuple[str, int | Exception]],
    ) -> None:
        self._hooks = hooks
        self._delay = delay
        self._log = log
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name=f"simnet-hooks-{name}", daemon=True)
        self._thread.start()

    def post_event(self, event: str, data: Any) -> None:
        self._queue.put((event, data))

    def close(self) -> None:
        """Stop after the POST in progress (if any); queued events are lost, as when a node stops."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            event, data = item
            body = javajson.dumps({"event": event, "data": data}).encode("utf-8")
            for entry in list(self._hooks()):
                hook = Hook.parse(entry)
                if hook.matches(event):
                    self._deliver(hook.url, body)

    def _deliver(self, url: str, body: bytes) -> None:
        delay = self._delay()
        if delay > 0:
            time.sleep(delay)
        try:
            status = post(url, body)
        except (OSError, ValueError) as exc:
            logger.info("simnet webhook to %s failed: %s", _where(url), type(exc).__name__)
            self._log.append((url, exc))
            return
        if status != 200:
            logger.info("simnet webhook to %s answered %s", _where(url), status)
        self._log.append((url, status))
