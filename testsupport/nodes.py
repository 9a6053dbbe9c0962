"""The Minima nodes an end-to-end suite runs on: simnet by default, real nodes in interop mode.

``MNS_INTEROP_NODES=http://127.0.0.1:9005,http://127.0.0.1:10005,…`` (RPC URLs, the first the gateway's node; see
``docs/interop.md`` and ``python -m interop.nodes``) makes ``network`` yield those real nodes instead of starting
simnet. Both kinds have the same face: ``net.nodes[i]`` with ``rpc_url``, ``publickey``, ``publickey_hex``,
``address`` (the node's ``p2pidentity``) and ``net.wait_blocks``. What only simnet can do (faults, stopping a
node, private keys, fast blocks) is marked ``simnet_only`` and skipped in interop mode with the reason.

Without the variable nothing changes; the tests that need real nodes are skipped with "interop mode: set
MNS_INTEROP_NODES" (a plain skip: ``MNS_REQUIRE_SERVICES=1`` does not turn it into a failure, CI has no node).
"""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mns_client.protocol.codecs import from_hex
from mns_client.protocol.errors import NodeAuthError
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork, SimNode

INTEROP_ENV = "MNS_INTEROP_NODES"
SET_IT = f"interop mode: set {INTEROP_ENV} to the RPC URLs of real Minima nodes (docs/interop.md)"


def interop_urls() -> list[str]:
    """The real nodes' RPC URLs from ``MNS_INTEROP_NODES``, or none (simnet). Only loopback nodes are accepted."""
    urls = [url.strip().rstrip("/") for url in os.environ.get(INTEROP_ENV, "").split(",") if url.strip()]
    for url in urls:
        if not url.startswith(("http://127.", "http://localhost:")):
            raise ValueError(f"{INTEROP_ENV}: {url} is not on loopback; the tests talk to 127.0.0.0/8 only")
    return urls


def interop_mode() -> bool:
    return bool(interop_urls())


def simnet_only(reason: str) -> pytest.MarkDecorator:
    """Skip in interop mode: the test needs a power only simnet has (``reason`` says which)."""
    return pytest.mark.skipif(interop_mode(), reason=f"interop mode: {reason}")


def chain_timeout(seconds: float) -> float:
    """A wait for the chain: ``seconds`` on simnet's fast blocks; on real ``-test`` nodes (a block about every 20 s,
    coins spendable 3 blocks deep) at least 5 minutes."""
    return max(seconds, 300.0) if interop_mode() else seconds


def requires_interop() -> None:
    """Skip unless real nodes are given (a plain skip, also under ``MNS_REQUIRE_SERVICES=1``)."""
    if not interop_mode():
        pytest.skip(SET_IT)


@dataclass(frozen=True)
class InstalledDapp:
    uid: str
    conf: dict[str, Any]


@dataclass
class RealMDS:
    """A real node's MDS, as simnet's ``node.mds`` looks to a test: its address and password (the node says both in
    ``mds action:list``), install over RPC, the page address the MiniHUB opens, and the pending actions."""

    rpc_url: str
    url: str
    password: str

    def _mds(self, **params: str) -> Any:
        return MinimaRPC(self.rpc_url, timeout=120).command("mds", **params)

    def install(self, archive: Path, trust: str) -> InstalledDapp:
        """``mds action:install file:<absolute path> trust:<read|write>`` (the path is read by the node, which runs on
        this machine); the reply names the uid but no session id (``page_url`` asks ``mds action:list``)."""
        installed = self._mds(action="install", file=str(archive.resolve()), trust=trust)["installed"]
        return InstalledDapp(installed["uid"], installed["conf"])

    def uninstall(self, uid: str) -> None:
        self._mds(action="uninstall", uid=uid)

    def listed(self) -> list[dict[str, Any]]:
        """``mds action:list``: each MiniDapp's ``uid``, ``conf`` and ``sessionid``."""
        return list(self._mds(action="list")["minidapps"])

    def page_url(self, uid: str, page: str = "index.html") -> str:
        [session] = [d["sessionid"] for d in self.listed() if d["uid"] == uid]
        return f"{self.url}/{uid}/{page}?uid={session}"

    @property
    def pending(self) -> list[dict[str, Any]]:
        return list(self._mds(action="pending")["pending"])


def real_mds(rpc_url: str) -> RealMDS | None:
    """The MDS of the real node at ``rpc_url``, or None when it runs none (started without ``-mdsenable``)."""
    listed = MinimaRPC(rpc_url, timeout=60).command("mds", action="list")
    if not listed.get("enabled"):
        return None
    url = str(listed["connect"]).rstrip("/")
    if not url.startswith(("https://127.", "https://localhost:")):
        raise ValueError(f"the node's MDS at {url} is not on loopback; the tests talk to 127.0.0.0/8 only")
    return RealMDS(rpc_url, url, str(listed["password"]))


@dataclass
class RealNode:
    """A real Minima node reached over its RPC; its Maxima identity read once, when first needed (with the password
    a suite may have given the node)."""

    index: int
    rpc_url: str
    password: str | None = None  # set by a suite that gives the node an RPC password at runtime
    _maxima: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def maxima(self) -> dict[str, Any]:
        if not self._maxima:
            self._maxima = MinimaRPC(self.rpc_url, password=self.password, timeout=30).command("maxima")
        return self._maxima

    @property
    def publickey_hex(self) -> str:
        return self.maxima["publickey"]

    @property
    def publickey(self) -> bytes:
        return from_hex(self.publickey_hex)

    @property
    def address(self) -> str:
        """``Mx…@host:port`` as simnet's ``address``: the node's ``p2pidentity``."""
        return self.maxima["p2pidentity"]

    @property
    def p2pidentity(self) -> str:
        return self.maxima["p2pidentity"]

    @property
    def contact_address(self) -> str:
        return self.maxima["contact"]

    @property
    def mds(self) -> RealMDS | None:
        """The node's MDS (None when it runs none), as simnet's ``node.mds``."""
        return real_mds(self.rpc_url)


class RealNetwork:
    """The nodes of ``MNS_INTEROP_NODES``, as a suite sees a ``SimNetwork``."""

    def __init__(self, urls: list[str]) -> None:
        self.nodes = [RealNode(index, url) for index, url in enumerate(urls)]

    def block(self) -> int:
        return int(MinimaRPC(self.nodes[0].rpc_url).command("block")["block"])

    def wait_blocks(self, n: int = 1, timeout: float | None = None) -> int:
        """Wait for ``n`` new blocks on node 0 (about 20 s each on a ``-test`` node)."""
        target, deadline = self.block() + n, time.monotonic() + (timeout or 60.0 * n)
        while (block := self.block()) < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no block {target} on {self.nodes[0].rpc_url} within the timeout")
            time.sleep(1)
        return block


Network = SimNetwork | RealNetwork
Node = SimNode | RealNode


def _hooks(node: RealNode) -> set[str] | None:
    """The node's webhooks, or None when it asks for a password we do not know (one a suite set in an earlier run)."""
    try:
        return set(MinimaRPC(node.rpc_url, password=node.password).webhooks_list())
    except NodeAuthError:
        return None


@contextmanager
def _hooks_removed_after(net: RealNetwork) -> Iterator[None]:
    """A real node keeps its webhooks: take off the ones the suite added, so no node posts to a closed port."""
    before = {node.index: _hooks(node) for node in net.nodes}
    try:
        yield
    finally:
        for node in net.nodes:
            kept, now = before[node.index], _hooks(node)
            if kept is None or now is None:
                continue
            rpc = MinimaRPC(node.rpc_url, password=node.password)
            for hook in now - kept:
                rpc.webhooks_remove(hook)


@contextmanager
def network(nodes: int, *, block_interval: float = 0.5, mds_password: str | None = None) -> Iterator[Network]:
    """``nodes`` Minima nodes, node 0 the gateway's: a fresh simnet, or the first ``nodes`` real ones in interop
    mode (skipped, with the reason, when fewer are given). With ``mds_password`` simnet nodes also serve MDS."""
    urls = interop_urls()
    if not urls:
        with SimNetwork(nodes=nodes, block_interval=block_interval, mds_password=mds_password) as net:
            yield net
        return
    if len(urls) < nodes:
        pytest.skip(f"interop mode: this suite needs {nodes} nodes, {INTEROP_ENV} gives {len(urls)}")
    net = RealNetwork(urls[:nodes])
    with _hooks_removed_after(net):
        yield net
