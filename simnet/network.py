"""SimNetwork: N simulated nodes on loopback sharing one chain, started and stopped together.

Ports: node i serves RPC on ``base_port + i`` and Maxima (P2P) on ``base_port + nodes + i``. With
``base_port=None`` a free block of ``3 * nodes`` consecutive ports is chosen, a new one on every run: like real
nodes that restart on another port or network, a network restarted with the same ``state_dir`` keeps its keys but
its nodes' ``Mx…@host:port`` addresses change (pass ``base_port`` to keep them). With ``state_dir`` the keys, hooks,
contacts and the chain are kept in JSON files there (private keys included, files mode 0600) and reloaded. A wallet
spends a coin only once it is ``confirmations`` blocks deep (3, as on real nodes); fast tests shorten
``block_interval``.

MDS (``mds_password``): node i also serves its MiniDapp system on ``base_port + 3 * nodes + i`` (HTTPS with a
self-signed certificate; see ``simnet.mds``), and the block of ports is ``4 * nodes`` long.

Nodes that cannot be reached directly (``unreachable``: behind NAT, on a phone; fixtures 180-188): such a node
advertises a ``p2pidentity`` on ``base_port + 2 * nodes + i``, where a socket is bound but never answers (mode
``refuse``: the connection is refused at once; mode ``silent``: it is accepted and never answered, so a sender
waits for its read timeout as in fixture 182b). Its Maxima host is node ``host_node`` (a reachable node; default
0), which relays messages for the node's per-host key: its ``contact`` (``Mx<per-host key>@<host's address>``) and
its MLS (the host, so ``MAX#<key>#<host's p2pidentity>`` resolves) reach it. Everything stays on loopback.
"""

import http.client
import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Collection
from pathlib import Path
from types import TracebackType
from typing import Any

from simnet.chain import Chain
from simnet.node import UNREACHABLE_MODES, SimNode
from simnet.registry import COMMANDS
from simnet.sending import SendTiming
from simnet.util import write_file_atomic

logger = logging.getLogger(__name__)

_PORT_RANGE = (20000, 60000)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_free_ports(host: str, count: int, attempts: int = 200) -> int:
    """A base port with ``count`` consecutive free ports (racy by nature: bind soon after)."""
    for _ in range(attempts):
        base = random.randrange(_PORT_RANGE[0], _PORT_RANGE[1] - count)
        if all(_port_free(host, base + i) for i in range(count)):
            return base
    raise OSError(f"no {count} consecutive free ports found")


# How long a restarted node's MAX# address stays dark: its MLS table is empty until its Maxima loop registers it
# again (measured on real 1.0.45 nodes: still failing at 242 s, resolving at 272 s; fixture 178b).
MLS_GAP_SECONDS = 255.0


class SimNetwork:
    """The simulated network. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        nodes: int = 2,
        base_port: int | None = None,
        host: str = "127.0.0.1",
        state_dir: str | Path | None = None,
        rpc_password: str | None = None,
        block_interval: float = 2.0,
        send_timing: SendTiming | None = None,
        mls_gap: float = MLS_GAP_SECONDS,
        confirmations: int = 3,
        unreachable: Collection[int] = (),
        unreachable_mode: str = "refuse",
        host_node: int = 0,
        mds_password: str | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("a network needs at least one node")
        unreachable = set(unreachable)
        if not unreachable <= set(range(nodes)):
            raise ValueError(f"unreachable nodes must be among 0 … {nodes - 1}")
        if host_node in unreachable or not 0 <= host_node < nodes:
            raise ValueError("the Maxima host of the unreachable nodes must be a reachable node")
        if unreachable_mode not in UNREACHABLE_MODES:
            raise ValueError(f"unreachable_mode must be one of {', '.join(UNREACHABLE_MODES)}")
        self.host = host
        self.block_interval = block_interval
        # How long each node's sends take, by size, and how many it gets through (simnet.sending; as measured on
        # real nodes unless given: fast tests pass SendTiming.instant() or a scaled one).
        self.send_timing = send_timing if send_timing is not None else SendTiming()
        self.mls_gap = mls_gap
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._save_lock = threading.Lock()
        self.mds_password = mds_password
        blocks = 4 if mds_password else 3  # with MDS, node i serves it on base + 3 * nodes + i
        self.base_port = base_port if base_port is not None else find_free_ports(host, blocks * nodes)
        self.chain = Chain(confirmations=confirmations)
        self._load_chain()
        self.nodes: list[SimNode] = [self._make_node(i, nodes, rpc_password) for i in range(nodes)]
        for index in sorted(unreachable):
            self.nodes[index].hide_behind(self.nodes[host_node], self.base_port + 2 * nodes + index, unreachable_mode)
        self._stop_blocks = threading.Event()
        self._block_thread: threading.Thread | None = None

    def _make_node(self, index: int, count: int, rpc_password: str | None) -> SimNode:
        state_file = None
        if self.state_dir is not None:
            state_file = self.state_dir / f"node-{index}.json"
        return SimNode(
            self,
            index,
            self.host,
            self.base_port + index,
            self.base_port + count + index,
            self.chain,
            COMMANDS,
            rpc_password=rpc_password,
            state_file=state_file,
            send_timing=self.send_timing,
            mds_port=self.base_port + 3 * count + index if self.mds_password else None,
            mds_password=self.mds_password,
        )

    # ------------------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "SimNetwork":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop for good: also remove what the nodes kept in temporary folders (MDS without a state directory)."""
        self.stop()
        for node in self.nodes:
            node.discard()

    def start(self, timeout: float = 10.0) -> "SimNetwork":
        """Start every node and the block timer; returns once every node answers on its RPC port."""
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.state_dir, 0o700)
        for node in self.nodes:
            node.start()
        self._stop_blocks.clear()
        self._block_thread = threading.Thread(target=self._block_loop, name="simnet-blocks", daemon=True)
        self._block_thread.start()
        self._wait_ready(timeout)
        return self

    def stop(self) -> None:
        self._stop_blocks.set()
        if self._block_thread is not None:
            self._block_thread.join(timeout=5)
            self._block_thread = None
        for node in self.nodes:
            node.stop()
        self.save_chain()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            while not self._answers(node):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"simnet node {node.index} did not answer on {node.rpc_url}")
                time.sleep(0.05)

    @staticmethod
    def _answers(node: SimNode) -> bool:
        """True once the RPC port answers at all (a 401 from a password-protected node counts)."""
        conn = http.client.HTTPConnection(node.host, node.rpc_port, timeout=2)
        try:
            conn.request("POST", "/", body=b"block", headers={"Connection": "close"})
            return conn.getresponse().status in (200, 401)
        except OSError:
            return False
        finally:
            conn.close()

    # ------------------------------------------------------------------------------------ blocks

    def _block_loop(self) -> None:
        while not self._stop_blocks.wait(self.block_interval):
            self.make_block()

    def cut(self, first: int, second: int, *, cut: bool = True) -> None:
        """Nodes ``first`` and ``second`` cannot reach each other (a partition: each one's connections to the
        other's P2P port are refused at once, MLS lookups and relays included); ``cut=False`` heals it."""
        one, other = self.nodes[first], self.nodes[second]
        for node, far in ((one, other), (other, one)):
            ports = {far.p2p_port} | ({far.advertised_port} if far.advertised_port else set())
            if cut:
                node.cut_off |= ports
            else:
                node.cut_off -= ports

    def make_block(self) -> None:
        """Mine one block now and tell every running node about the coins it changed."""
        changes = self.chain.mine()
        info = self.chain.block_info()
        for node in self.nodes:
            if node.running:
                node.on_block(changes, info)
        self.save_chain()

    def wait_blocks(self, n: int = 1, timeout: float | None = None) -> int:
        """Wait until ``n`` more blocks are made; returns the new block number."""
        limit = timeout if timeout is not None else max(10.0, (n + 2) * self.block_interval * 3)
        with self.chain.block_event:
            target = self.chain.block + n
            deadline = time.monotonic() + limit
            while self.chain.block < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no block {target} within {limit:.1f}s")
                self.chain.block_event.wait(remaining)
            return self.chain.block

    # ------------------------------------------------------------------------------------ state

    def summaries(self) -> list[dict[str, Any]]:
        return [node.summary() for node in self.nodes]

    def _load_chain(self) -> None:
        if self.state_dir is None:
            return
        path = self.state_dir / "chain.json"
        if path.exists():
            self.chain.load_dict(json.loads(path.read_text()))

    def save_chain(self) -> None:
        if self.state_dir is None or not self.state_dir.exists():
            return
        with self._save_lock:  # the block timer, a test's make_block and stop may save at once
            write_file_atomic(self.state_dir / "chain.json", json.dumps(self.chain.to_dict()))
