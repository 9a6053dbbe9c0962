"""The fault-control endpoint for a simnet running as its own process (127.0.0.1 only).

``GET /nodes`` → the node lines as a JSON array; ``POST /nodes/<i>/stop`` and ``/start``; ``POST /nodes/<i>/faults``
with a JSON object of ``drop_deliveries`` / ``delivery_delay`` / ``webhook_delay`` → the node's faults;
``POST /blocks`` mines one block at once.
"""

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simnet.network import SimNetwork

logger = logging.getLogger(__name__)

_NODE_PATH = re.compile(r"^/nodes/(\d+)/(stop|start|faults)$")
_FAULT_TYPES = {"drop_deliveries": bool, "delivery_delay": float, "webhook_delay": float}


def apply_faults(network: SimNetwork, index: int, body: dict[str, Any]) -> dict[str, Any]:
    node = network.nodes[index]
    for name, value in body.items():
        kind = _FAULT_TYPES.get(name)
        if kind is None:
            raise ValueError(f"unknown fault {name!r}")
        if kind is bool and not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        if kind is float and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ValueError(f"{name} must be a number of seconds >= 0")
        setattr(node.faults, name, kind(value))
    return dict(node.faults.__dict__)


def _handler(network: SimNetwork) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("simnet control: " + format, *args)

        def _send(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/nodes":
                self._send(200, network.summaries())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path == "/blocks":
                network.make_block()
                self._send(200, {"block": network.chain.block})
                return
            match = _NODE_PATH.match(self.path)
            if match is None or int(match.group(1)) >= len(network.nodes):
                self._send(404, {"error": "not found"})
                return
            self._node_action(int(match.group(1)), match.group(2))

        def _node_action(self, index: int, action: str) -> None:
            node = network.nodes[index]
            if action == "stop":
                node.stop()
            elif action == "start":
                node.start()
            else:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if not isinstance(body, dict):
                        raise ValueError("expected a JSON object")
                    faults = apply_faults(network, index, body)
                except ValueError as exc:
                    self._send(400, {"error": str(exc)})
                    return
                self._send(200, {"node": index, "faults": faults})
                return
            self._send(200, {"node": index, "running": node.running})

    return Handler


class ControlServer:
    def __init__(self, network: SimNetwork, port: int) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(network))
        self._thread = threading.Thread(target=self._server.serve_forever, name="simnet-control", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
