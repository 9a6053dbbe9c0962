"""Helpers for tests that use simnet: a raw RPC caller, a webhook receiver and a JSON shape comparison.

The receiver records each request exactly as it arrived (header names and order, raw body), so tests can compare
simnet's webhook POSTs with the real-node fixtures byte for byte.
"""

import base64
import contextlib
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class RpcReply:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def rpc(url: str, command: str, *, method: str = "POST", auth: tuple[str, str] | None = None) -> RpcReply:
    """Send one command: POST with the command as body, or GET with ``command`` used as the (already encoded) path."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    headers = {"Connection": "close"}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    try:
        if method == "POST":
            headers["Content-Type"] = "text/plain"
            conn.request("POST", "/", body=command.encode("ascii"), headers=headers)
        else:
            conn.request("GET", command, headers=headers)
        response = conn.getresponse()
        return RpcReply(response.status, response.read().decode("utf-8"))
    finally:
        conn.close()


def raw_exchange(host: str, port: int, request: bytes, timeout: float = 30.0) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class CapturedRequest:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A loopback HTTP endpoint that records every request and answers 200 (after ``delay`` seconds, if set)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.requests: list[CapturedRequest] = []
        self._cond = threading.Condition()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "WebhookReceiver":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def wait_for(self, count: int, timeout: float = 10.0, path: str | None = None) -> list[CapturedRequest]:
        """Wait until ``count`` requests (to ``path``, if given) arrived; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._matching(path)) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._matching(path))} of {count} webhook requests arrived")
                self._cond.wait(remaining)
            return self._matching(path)

    def events(self, event: str) -> list[CapturedRequest]:
        with self._cond:
            return [r for r in self.requests if r.json().get("event") == event]

    def _matching(self, path: str | None) -> list[CapturedRequest]:
        return [r for r in self.requests if path is None or r.path == path]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, body = data.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split()[:2]
            headers = [(k, v.strip()) for k, v in (line.split(":", 1) for line in lines[1:])]
            length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            if self.delay:
                time.sleep(self.delay)
            with self._cond:
                self.requests.append(CapturedRequest(method, path, headers, body))
                self._cond.notify_all()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if value is None:
        return "null"
    return type(value).__name__


def shape_diff(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Differences in structure: keys and their order, JSON types; lists element by element up to the shorter."""
    if _kind(expected) != _kind(actual):
        return [f"{path}: {_kind(expected)} != {_kind(actual)}"]
    if isinstance(expected, dict):
        if list(expected) != list(actual):
            return [f"{path}: keys {list(expected)} != {list(actual)}"]
        return [d for key in expected for d in shape_diff(expected[key], actual[key], f"{path}.{key}")]
    if isinstance(expected, list):
        if bool(expected) != bool(actual):
            return [f"{path}: list length {len(expected)} != {len(actual)}"]
        return [
            d for i, (e, a) in enumerate(zip(expected, actual, strict=False)) for d in shape_diff(e, a, f"{path}[{i}]")
        ]
    return []
