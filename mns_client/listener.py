"""A short-lived webhook on the user's own node, so a command can wait for the ``mns`` messages sent back to it.

A Minima node hands received Maxima messages to its webhooks only: there is no RPC command that lists them
(``maxima/REFERENCE.md`` §3). A command that waits for a receipt, or for forwarded messages, therefore

1. serves HTTP on a free port of ``host`` (loopback by default) at a random, unguessable path;
2. registers it on the node: ``webhooks action:add hook:http://127.0.0.1:<port>/mns-client/<random> filter:MAXIMA``;
3. keeps the ``mns`` messages the node posts (answering each at once: the node's one webhook thread has no read
   timeout, so a slow answer would hold up every later event of the node);
4. removes the hook when it is done, by its full ``MAXIMA#url`` entry (a bare URL removes nothing, fixture 76).

A hook left behind by a command that was killed is removed by the next one (same path prefix, and nothing
answers on its port any more). The node must be able to reach ``host``: for a node on another machine, pass an
address of this machine that the node can connect to.
"""

import hmac
import json
import logging
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar

from .protocol import batch
from .protocol.codecs import from_hex
from .protocol.errors import CodecError, RPCError
from .protocol.rpc import MinimaRPC

logger = logging.getLogger(__name__)

PATH_PREFIX = "/mns-client/"
FILTER = "MAXIMA"
MAX_BODY = 1024 * 1024  # a Maxima message carries at most 256 KiB, posted as hex inside JSON
T = TypeVar("T")


@dataclass(frozen=True)
class MaximaEvent:
    """One ``MAXIMA`` event as the node posted it: ``data`` is the decoded payload bytes."""

    sender: str  # "from": the sender's identity key, verified by the node
    application: str
    data: bytes
    msgid: str


class NodeListener:
    """Use as a context manager around the work whose answers you wait for (start it before sending)."""

    def __init__(self, rpc: MinimaRPC, *, host: str = "127.0.0.1", application: str = "mns") -> None:
        self.rpc = rpc
        self.host = host
        self.application = application
        self.events: list[MaximaEvent] = []
        self._cond = threading.Condition()
        self._secret_path = PATH_PREFIX + secrets.token_urlsafe(18)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.entry: str | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}{self._secret_path}"

    def __enter__(self) -> "NodeListener":
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_class = type("Server", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
        self._server = server_class((self.host, 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="mns-listener", daemon=True)
        self._thread.start()
        try:
            self._remove_stale_hooks()
            hooks = self.rpc.webhooks_add(hook=self.url, filter=FILTER)
        except BaseException:
            self._close_server()
            raise
        self.entry = next((hook for hook in hooks if hook.endswith("#" + self.url)), f"{FILTER}#{self.url}")
        logger.debug("listening for node events on port %s", self._server.server_address[1])

    def stop(self) -> None:
        """Remove the hook from the node (best effort: a dead node keeps it until the next command cleans it)."""
        if self.entry is not None:
            try:
                self.rpc.webhooks_remove(self.entry)
            except RPCError as exc:
                logger.info("could not remove the temporary webhook: %s", exc.code)
            self.entry = None
        self._close_server()

    def _close_server(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _remove_stale_hooks(self) -> None:
        for entry in self.rpc.webhooks_list():
            _, _, url = entry.partition("#")
            parts = urllib.parse.urlsplit(url)
            if parts.path.startswith(PATH_PREFIX) and parts.port and not _answers(parts.hostname or "", parts.port):
                try:
                    self.rpc.webhooks_remove(entry)
                except (RPCError, CodecError) as exc:
                    logger.info("could not remove a stale webhook: %s", getattr(exc, "code", exc))

    # -- receiving

    def _receive(self, body: bytes) -> None:
        event = _event(body)
        if event is None or event.application != self.application:
            return
        # A batch of the gateway's replies is read as its messages, one after the other, each from its sender.
        items = [replace(event, data=data) for data in batch.messages_of(event.data)]
        with self._cond:
            self.events.extend(items)
            self._cond.notify_all()

    def wait_for(self, pick: Callable[[MaximaEvent], T | None], *, timeout: float) -> T | None:
        """The first non-None ``pick(event)`` over the events so far and those to come, or None after ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                while seen < len(self.events):
                    found = pick(self.events[seen])
                    seen += 1
                    if found is not None:
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def collect(
        self, pick: Callable[[MaximaEvent], T | None], *, until: Callable[[list[T]], bool], timeout: float
    ) -> list[T]:
        """Every non-None ``pick(event)`` until ``until(found)`` is true or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        seen, found = 0, []
        with self._cond:
            while not until(found):
                while seen < len(self.events):
                    value = pick(self.events[seen])
                    seen += 1
                    if value is not None:
                        found.append(value)
                if until(found):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        return found


def _event(body: bytes) -> MaximaEvent | None:
    try:
        posted = json.loads(body.decode("utf-8"))
        data = posted["data"]
        if posted.get("event") != "MAXIMA" or not isinstance(data, dict):
            return None
        return MaximaEvent(
            sender=str(data["from"]),
            application=str(data["application"]),
            data=from_hex(data["data"]),
            msgid=str(data.get("msgid", "")),
        )
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, CodecError):
        return None


def _handler(listener: NodeListener) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # never log: a request line carries the secret path

        def do_POST(self) -> None:
            raw_length = self.headers.get("Content-Length") or "0"
            length = int(raw_length) if raw_length.isdigit() else -1
            right_path = hmac.compare_digest(self.path.encode(), listener._secret_path.encode())
            if not right_path or not 0 < length <= MAX_BODY:
                self.send_error(404)
                return
            body = self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            listener._receive(body)

    return Handler


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
