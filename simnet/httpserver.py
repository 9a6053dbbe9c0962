"""The node's RPC HTTP server, written against the socket like the node's CMDHandler.

One request per connection. The first line gives the method and path; header lines are read until a blank line;
``Content-Length:`` is looked for case-sensitively, as the node does. A POST body is the command (read as that many
*characters* of UTF-8, so a non-ASCII body waits for bytes that never come, as on a real node); any other method
takes the command from the path: one leading and one trailing ``/`` removed, then ``URLDecoder.decode`` (``+`` is a
space). The reply has LF-only header lines and one extra ``\\n`` after the counted body (fixture 00); a failed
password check gets the bare 401 of fixture 99.
"""

import base64
import binascii
import codecs
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from simnet.listener import Listener
from simnet.util import java_date, java_trim

logger = logging.getLogger(__name__)

SERVER_HEADER = "Server: HTTP RPC Server from Minima 1.3"
AUTH_FAILURE = '{"error":"Authentication failure.."}'
READ_TIMEOUT = 60.0


class _BadRequest(Exception):
    """The node would throw and close the socket without a reply."""


@dataclass
class RpcRequest:
    method: str
    command: str
    authorization: str | None


def url_decode(text: str) -> str:
    """``java.net.URLDecoder.decode(text, "UTF-8")``: ``+`` is a space, ``%XX`` bytes are UTF-8; bad escapes raise."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "+":
            out += b" "
            i += 1
        elif ch == "%":
            if i + 3 > len(text):
                raise _BadRequest("incomplete escape")
            try:
                out.append(int(text[i + 1 : i + 3], 16))
            except ValueError:
                raise _BadRequest("bad escape") from None
            i += 3
        else:
            out += ch.encode("utf-8")
            i += 1
    return out.decode("utf-8", errors="replace")


class _Reader:
    """Reads lines and characters from a socket the way ``BufferedReader(InputStreamReader(UTF-8))`` does."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = b""

    def _fill(self) -> bool:
        chunk = self._sock.recv(65536)
        self._buf += chunk
        return bool(chunk)

    def readline(self) -> str | None:
        while b"\n" not in self._buf:
            if not self._fill():
                if not self._buf:
                    return None
                line, self._buf = self._buf, b""
                return line.rstrip(b"\r").decode("utf-8", errors="replace")
        line, self._buf = self._buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", errors="replace")

    def read_chars(self, count: int) -> str:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text = decoder.decode(self._buf)
        self._buf = b""
        while len(text) < count:
            chunk = self._sock.recv(65536)
            if not chunk:
                break
            text += decoder.decode(chunk)
        return text[:count]


def _read_request(sock: socket.socket) -> RpcRequest:
    reader = _Reader(sock)
    first = reader.readline() or ""
    parts = first.split()
    if len(parts) < 2:
        raise _BadRequest("no request line")
    method, path = parts[0].upper(), parts[1]
    path = path[1:] if path.startswith("/") else path
    path = path[:-1] if path.endswith("/") else path
    command = java_trim(url_decode(path))
    length, authorization = 0, None
    line: str | None = first
    while line is not None and java_trim(line) != "":
        if "Content-Length:" in line:
            length = int(java_trim(line[line.index(":") + 1 :]))
        if line.lower().startswith("authorization:"):
            authorization = java_trim(line[len("authorization:") :])
        line = reader.readline()
    if method == "POST":
        command = reader.read_chars(length)
    return RpcRequest(method, command, authorization)


def authorized(authorization: str | None, password: str | None) -> bool:
    """Basic auth for user ``minima`` when a password is set; anything goes otherwise."""
    if not password:
        return True
    if authorization is None or not authorization.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return decoded == f"minima:{password}"


def ok_response(result: str) -> bytes:
    body = result.encode("utf-8")
    head = (
        "HTTP/1.1 200 OK\n"
        f"{SERVER_HEADER}\n"
        f"Date: {java_date()}\n"
        "Content-type: text/plain\n"
        f"Content-length: {len(body)}\n"
        "Access-Control-Allow-Origin: *\n"
        "\n"
    )
    return head.encode("utf-8") + body + b"\n"


def unauthorized_response() -> bytes:
    return f"HTTP/1.1 401 Unauthorized\n{SERVER_HEADER}\n\n{AUTH_FAILURE}\n".encode()


class RpcServer(Listener):
    """Serves one node's RPC port until :meth:`close`; each connection is handled on its own thread."""

    def __init__(
        self,
        host: str,
        port: int,
        run_command: Callable[[str], str],
        password: Callable[[], str | None],
    ) -> None:
        self._run_command = run_command
        self._password = password
        super().__init__(host, port, name="simnet-rpc")

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(READ_TIMEOUT)
        try:
            request = _read_request(conn)
            if not authorized(request.authorization, self._password()):
                conn.sendall(unauthorized_response())
                return
            conn.sendall(ok_response(self._run_command(request.command)))
        except (_BadRequest, ValueError, OSError) as exc:
            logger.debug("simnet rpc: connection dropped (%s)", type(exc).__name__)
        finally:
            conn.close()
