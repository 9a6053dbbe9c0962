"""A TCP listener on a thread of its own, as a node's RPC and P2P ports are: it accepts until closed and handles each
connection on a thread of its own."""

import contextlib
import socket
import threading


class Listener:
    """Subclasses set what ``_handle`` needs, then call ``super().__init__``: connections may arrive at once."""

    def __init__(self, host: str, port: int, *, name: str) -> None:
        self._sock = socket.create_server((host, port))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{name}-{port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening: later connections are refused, as with a stopped node."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError
