"""Simnet's Maxima transport between nodes: one TCP connection per message, as on real nodes.

This wire format is simnet's own (real nodes speak Minima's NIO protocol); what matters is that it behaves the same
from the outside: a stopped node refuses the connection, so the sender gets the node's own Java error texts, and the
receiver answers a package with OK / TOOBIG / UNKNOWN before the message is processed.

A frame is ``kind (1 byte) ‖ u32 length ‖ payload``; the answer is ``u32 length ‖ payload``.
"""

import logging
import socket
import struct
from collections.abc import Callable

from simnet.listener import Listener

logger = logging.getLogger(__name__)

KIND_MESSAGE = b"M"
KIND_MLS_LOOKUP = b"L"
KIND_MLS_REGISTER = b"R"

RESPONSE_OK = b"OK"
RESPONSE_TOOBIG = b"TOOBIG"
RESPONSE_UNKNOWN = b"UNKNOWN"
RESPONSE_WRONGHASH = b"WRONGHASH"

# What ``maxima action:send`` prints for each non-OK answer (maxima.java; the typo is the node's, fixture 19).
ANSWER_ERRORS = {
    RESPONSE_TOOBIG: "Maxima Mesasge too big",
    RESPONSE_UNKNOWN: "Unknown Address",
    RESPONSE_WRONGHASH: "TxPoW Hash wrong",
}


def answer_error(answer: bytes) -> str:
    return ANSWER_ERRORS.get(answer, "Not delivered")


CONNECT_TIMEOUT = 20.0
READ_TIMEOUT = 20.0
_MAX_FRAME = 8 * 1024 * 1024
_U32 = struct.Struct(">I")


class TransportError(Exception):
    """The connection failed; ``str(exc)`` is what the Java node would print for it."""


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        chunk = sock.recv(min(65536, size - len(out)))
        if not chunk:
            raise ConnectionResetError("connection closed")
        out += chunk
    return bytes(out)


def _java_error(exc: BaseException, host: str) -> TransportError:
    if isinstance(exc, ConnectionRefusedError):
        return TransportError("java.net.ConnectException: Connection refused")
    if isinstance(exc, socket.gaierror):
        return TransportError(f"java.net.UnknownHostException: {host}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransportError("java.net.SocketTimeoutException: Read timed out")
    if isinstance(exc, ConnectionResetError):
        return TransportError("java.net.SocketException: Connection reset")
    return TransportError(f"java.net.SocketException: {exc}")


def exchange(host: str, port: int, kind: bytes, payload: bytes) -> bytes:
    """Send one frame and return the answer; raises TransportError with the node's text on failure."""
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    except TimeoutError:
        raise TransportError("java.net.SocketTimeoutException: connect timed out") from None
    except OSError as exc:
        raise _java_error(exc, host) from None
    try:
        sock.settimeout(READ_TIMEOUT)
        sock.sendall(kind + _U32.pack(len(payload)) + payload)
        (size,) = _U32.unpack(_recv_exact(sock, _U32.size))
        return _recv_exact(sock, size)
    except OSError as exc:
        raise _java_error(exc, host) from None
    finally:
        sock.close()


FrameHandler = Callable[[bytes, bytes], bytes]


class P2PServer(Listener):
    """Listens on a node's P2P port; ``handler(kind, payload)`` returns the answer bytes."""

    def __init__(self, host: str, port: int, handler: FrameHandler) -> None:
        self._handler = handler
        super().__init__(host, port, name="simnet-p2p")

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(READ_TIMEOUT)
        try:
            head = _recv_exact(conn, 1 + _U32.size)
            kind, (size,) = head[:1], _U32.unpack(head[1:])
            if size > _MAX_FRAME:
                return
            answer = self._handler(kind, _recv_exact(conn, size))
            conn.sendall(_U32.pack(len(answer)) + answer)
        except OSError as exc:
            logger.debug("simnet p2p: connection dropped (%s)", type(exc).__name__)
        finally:
            conn.close()


class DeadPort:
    """The advertised port of a node that cannot be reached directly, held so nobody else takes it.

    Not ``silent``: bound but never listening, so a connection is refused at once (a closed port). ``silent``: it
    listens and never accepts or answers, so a sender waits for its read timeout (fixture 182b).
    """

    def __init__(self, host: str, port: int, *, silent: bool = False) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        if silent:
            self._sock.listen(64)

    def close(self) -> None:
        self._sock.close()
