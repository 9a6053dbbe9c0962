"""Start, check and stop N real Minima nodes on loopback for the interop mode (``docs/interop.md``).

    python -m interop.nodes start --minima PATH --nodes 3 --base-port 9001 --dir var/interop
    python -m interop.nodes status --dir var/interop
    python -m interop.nodes stop --dir var/interop

``PATH`` is what the user provides: a Minima release jar (``minima.jar``, dependencies inside) or a checkout of the
Minima source (github.com/minima-global/Minima), which is compiled once with the JDK's ``javac`` into
``DIR/classes`` against BouncyCastle from the system (Debian: ``libbcprov-java libbcpkix-java libbcutil-java``) and
the checkout's own ``lib/*.jar``. Nothing is downloaded.

Every node runs in test mode on 127.0.0.1 and can reach no one else: node 0 creates the chain with ``-nop2p``
(``-genesis`` on its first start), the others ``-connect 127.0.0.1:<node 0's port>``, all advertise
``-host 127.0.0.1``. With P2P off, Minima builds no P2P manager, so neither its seed list nor its internet check
runs. ``MINIMA_*`` variables are removed from the nodes' environment, because Minima reads its options from them.
Node ``i`` uses ports ``base + i * step`` (P2P) to ``+ 4`` (RPC); its data, log and pid are under ``DIR/node<i>``.

Once every node answers and the others list node 0 among their Maxima hosts, node 0 (the gateway's) is made its own
MLS with its key permanent, so it has a ``MAX#`` address, and node 0 (which holds the new chain's coins) sends the
others a few coins and waits until they are spendable (3 blocks deep). One JSON line per node is printed, as
``manage.py simnet`` does. ``sendrate`` measures one node's own Maxima send rate. Standard library only: no Django.
"""

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
NODE_FLAGS = ["-test", "-rpcenable", "-allowallip", "-daemon", "-nodefaultminidapps", "-host", HOST]
SYSTEM_JARS = Path("/usr/share/java")
MAX_OUTPUTS = 15  # Minima refuses to send a transaction with more outputs (GeneralParams.MAX_RELAY_OUTPUTCOINS)
BOUNCYCASTLE = ("bcprov.jar", "bcpkix.jar", "bcutil.jar")
# BouncyCastle 1.71 moved the GMSS Winternitz classes Minima 1.0.45 imports to ``pqc.legacy``; these subclasses give
# a newer bcprov (Debian 12 has 1.72) the old names, so the source compiles unchanged.
SHIM_PACKAGE = "org.bouncycastle.pqc.crypto.gmss.util"
SHIMS = {
    "WinternitzOTSignature": "(byte[] seed, org.bouncycastle.crypto.Digest digest, int w) { super(seed, digest, w); }",
    "WinternitzOTSVerify": "(org.bouncycastle.crypto.Digest digest, int w) { super(digest, w); }",
}


class NodeError(RuntimeError):
    pass


# ------------------------------------------------------------------------------------------------ the node's RPC


def rpc(url: str, command: str, timeout: float = 30) -> Any:
    """One command, POSTed as ASCII (the node reads the body unencoded); the ``response`` of a successful reply."""
    request = urllib.request.Request(url, data=command.encode("ascii"), method="POST")  # noqa: S310 (loopback)
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310 (a loopback URL we built)
        answer = json.loads(reply.read())
    if not answer.get("status"):
        raise NodeError(f"{command.split()[0]}: {answer.get('error') or answer}")
    return answer.get("response")


def answers(url: str) -> bool:
    try:
        rpc(url, "status", timeout=5)
    except (OSError, ValueError, NodeError):
        return False
    return True


def asks_for_password(url: str) -> bool:
    try:
        rpc(url, "status", timeout=5)
    except urllib.error.HTTPError as refused:
        return refused.code == 401
    except (OSError, ValueError, NodeError):
        return False
    return False


def wait_until(check: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise NodeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


# ------------------------------------------------------------------------------------------------ the node's code


def classpath(minima: Path, state: Path, jars: Path) -> str:
    """The class path for a release jar, or for a source checkout (compiled into ``state/classes`` once)."""
    if minima.is_file():
        return str(minima)
    if not (minima / "src" / "org" / "minima" / "Minima.java").exists():
        raise NodeError(f"{minima} is neither a Minima jar nor a Minima source checkout (no src/org/minima)")
    bouncycastle = [jars / name for name in BOUNCYCASTLE]
    missing = [str(path) for path in bouncycastle if not path.exists()]
    if missing:
        raise NodeError(f"BouncyCastle not found: {', '.join(missing)} (Debian: libbcprov-java libbcpkix-java "
                        "libbcutil-java, or give --jars)")  # fmt: skip
    own = [jar for jar in sorted((minima / "lib").glob("*.jar")) if not jar.name.startswith(("bc", "junit"))]
    path = [str(p) for p in (*bouncycastle, *own)]
    classes = state / "classes"
    if not (classes / "org" / "minima" / "Minima.class").exists():
        compile_source(minima, classes, path)
    return os.pathsep.join([str(classes), str(minima / "resources"), *path])


def compile_source(minima: Path, classes: Path, path: list[str]) -> None:
    shims = classes.parent / "shims"
    (shims / SHIM_PACKAGE.replace(".", "/")).mkdir(parents=True, exist_ok=True)
    for name, body in SHIMS.items():
        legacy = SHIM_PACKAGE.replace(".pqc.", ".pqc.legacy.")
        source = f"package {SHIM_PACKAGE};\npublic class {name} extends {legacy}.{name} {{\n  public {name}{body}\n}}\n"
        (shims / SHIM_PACKAGE.replace(".", "/") / f"{name}.java").write_text(source)
    sources = [str(p) for p in sorted((minima / "src").rglob("*.java"))]
    sources += [str(p) for p in sorted(shims.rglob("*.java"))]
    listing = classes.parent / "sources.txt"
    listing.write_text("\n".join(sources) + "\n")
    classes.mkdir(parents=True, exist_ok=True)
    print(f"compiling {len(sources)} files of {minima} into {classes} (a few minutes)", file=sys.stderr)
    # Some of Minima's sources are Windows-1252 text; -nowarn keeps its deprecation notes out of the way.
    command = ["javac", "-nowarn", "-encoding", "Cp1252", "--release", "11", "-cp", os.pathsep.join(path)]
    command += ["-d", str(classes), f"@{listing}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (our own list)
    if done.returncode != 0:
        raise NodeError(f"javac failed:\n{done.stderr[-4000:]}")


# ------------------------------------------------------------------------------------------------ one node


class Node:
    def __init__(self, state: Path, index: int, p2p_port: int, mds_password: str = "") -> None:
        self.index, self.p2p_port, self.mds_password = index, p2p_port, mds_password
        self.dir = state / f"node{index}"

    @property
    def mds_url(self) -> str:
        """The node's MiniDapp system (MDS): HTTPS with a self-signed certificate on the P2P port + 2."""
        return f"https://{HOST}:{self.p2p_port + 2}"

    @property
    def rpc_url(self) -> str:
        return f"http://{HOST}:{self.p2p_port + 4}"

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            with contextlib.suppress(ChildProcessError):  # reap it if we started it, so it is not a zombie
                os.waitpid(pid, os.WNOHANG)
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def command(self, java: list[str], first: int) -> list[str]:
        data = self.dir / "data"
        network = ["-nop2p"] if self.index == 0 else ["-connect", f"{HOST}:{first}"]
        if self.index == 0 and not (data / "1.0").exists():
            network.append("-genesis")  # the chain is created once; a restart keeps it
        mds = ["-mdsenable", "-mdspassword", self.mds_password] if self.mds_password else []
        return [*java, "-data", str(data), "-port", str(self.p2p_port), *NODE_FLAGS, *network, *mds]

    def start(self, java: list[str], first: int) -> None:
        if self.pid():
            raise NodeError(f"node {self.index} already runs (pid {self.pid()})")
        if answers(self.rpc_url):
            raise NodeError(f"something else answers on {self.rpc_url}: choose another --base-port")
        self.dir.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.upper().startswith("MINIMA_")}
        with (self.dir / "node.log").open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 (our own argument list)
                self.command(java, first), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip
        self.pid_file.write_text(str(process.pid))

    def summary(self) -> dict[str, Any]:
        maxima = rpc(self.rpc_url, "maxima")
        line = {
            "node": self.index,
            "rpc_url": self.rpc_url,
            "p2p": f"{HOST}:{self.p2p_port}",
            "publickey": maxima["publickey"],
            "p2pidentity": maxima["p2pidentity"],
            "contact": maxima["contact"],
            "version": rpc(self.rpc_url, "status")["version"],
        }
        if self.mds_password:
            line["mds_url"] = self.mds_url
        if maxima.get("staticmls") and maxima.get("mls") == maxima["p2pidentity"]:
            line["max_address"] = f"MAX#{maxima['publickey']}#{maxima['p2pidentity']}"
        return line

    def stop(self, timeout: float = 30) -> None:
        pid = self.pid()
        if pid is None:
            return
        signals: list[signal.Signals | None] = [signal.SIGTERM, signal.SIGKILL]
        with contextlib.suppress(OSError, ValueError, NodeError):
            rpc(self.rpc_url, "quit", timeout=5)  # Minima saves its databases and exits
            signals.insert(0, None)  # (a node with an RPC password we do not know gets SIGTERM at once)
        for sig in signals:
            if sig is not None:
                os.kill(pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.pid() is not None:
                time.sleep(0.5)
            if self.pid() is None:
                break
        self.pid_file.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ the network


def nodes_in(state: Path) -> list[Node]:
    saved = json.loads((state / "nodes.json").read_text()) if (state / "nodes.json").exists() else []
    return [Node(state, item["node"], item["p2p_port"], item.get("mds_password", "")) for item in saved]


def sees(node: Node, first: Node) -> bool:
    try:
        hosts = rpc(node.rpc_url, "maxima action:hosts")["hosts"]
    except (OSError, ValueError, NodeError):
        return False
    return any(h["host"] == f"{HOST}:{first.p2p_port}" and h.get("connected") for h in hosts)


def permanent_address(gateway: Node) -> None:
    """Node 0 serves its own MLS and lets anyone resolve its key: ``MAX#<its key>#<its p2pidentity>``."""
    maxima = rpc(gateway.rpc_url, "maxima")
    rpc(gateway.rpc_url, f"maxextra action:staticmls host:{maxima['p2pidentity']}")
    rpc(gateway.rpc_url, f"maxextra action:addpermanent publickey:{maxima['publickey']}")


def sendable(node: Node) -> float:
    balance = rpc(node.rpc_url, "balance")
    return sum(float(row["sendable"]) for row in balance if row["tokenid"] == "0x00")


def fund(network: list[Node], *, amount: int, coins: int, timeout: float) -> None:
    """Each other node gets ``coins`` coins of ``amount`` Minima from node 0 in one transaction (node 0 made the
    chain and holds its coins), then we wait until they are spendable: 3 blocks deep, about a minute in -test."""
    poor = [node for node in network[1:] if sendable(node) < amount]
    if not poor:
        return
    coins = max(1, min(coins, (MAX_OUTPUTS - 1) // len(poor)))  # and one output is node 0's change
    outputs = [f'"{rpc(node.rpc_url, "getaddress")["address"]}:{amount * coins}"' for node in poor]
    first = network[0]
    wait_until(lambda: sendable(first) > amount * coins * len(poor), timeout=timeout, what="node 0's coins to confirm")
    command = f"send multi:[{','.join(outputs)}] split:{coins}"  # split: each output becomes ``coins`` coins
    rpc(first.rpc_url, command, timeout=timeout)  # it mines the transaction first
    for node in poor:
        wait_until(lambda n=node: sendable(n) >= amount * coins, timeout=timeout, what=f"node {node.index}'s funds")


def start(args: argparse.Namespace) -> None:
    state: Path = args.dir.resolve()
    state.mkdir(parents=True, exist_ok=True)
    if any(node.pid() for node in nodes_in(state)):
        raise NodeError(f"nodes of {state} are running: stop them first")
    java = ["java", f"-Xmx{args.heap}", "-cp", classpath(args.minima.resolve(), state, args.jars), "org.minima.Minima"]
    network = [
        Node(state, i, args.base_port + i * args.port_step, args.mds_password if i else "") for i in range(args.nodes)
    ]  # node 0 is the gateway's; the others are users' nodes, which run MiniDapps
    (state / "nodes.json").write_text(
        json.dumps([{"node": n.index, "p2p_port": n.p2p_port, "mds_password": n.mds_password} for n in network])
    )
    first = network[0]
    try:
        first.start(java, first.p2p_port)
        wait_until(lambda: answers(first.rpc_url), timeout=args.timeout, what="node 0 to answer status")
        for node in network[1:]:
            node.start(java, first.p2p_port)
        for node in network[1:]:
            wait_until(lambda n=node: answers(n.rpc_url), timeout=args.timeout, what=f"node {node.index} to answer")
            wait_until(lambda n=node: sees(n, first), timeout=args.timeout, what=f"node {node.index} to see node 0")
        permanent_address(first)
        if args.fund:
            fund(network, amount=args.fund, coins=args.coins, timeout=args.timeout)
        for node in network:
            print(json.dumps(node.summary()), flush=True)
    except BaseException:
        for node in reversed(network):
            node.stop()
        raise


def status(args: argparse.Namespace) -> int:
    down = 0
    for node in nodes_in(args.dir.resolve()):
        if node.pid() and answers(node.rpc_url):
            print(json.dumps(node.summary()))
        elif node.pid() and asks_for_password(node.rpc_url):  # a suite set one at runtime (until it restarts)
            print(json.dumps({"node": node.index, "rpc_url": node.rpc_url, "running": True, "rpc_password": True}))
        else:
            down += 1
            print(json.dumps({"node": node.index, "rpc_url": node.rpc_url, "running": node.pid() is not None}))
    return 1 if down else 0


def stop(args: argparse.Namespace) -> None:
    for node in reversed(nodes_in(args.dir.resolve())):
        node.stop()


def send_rate(args: argparse.Namespace) -> None:
    """The node's own Maxima send rate: ``--concurrent`` callers (default 1), each sending one ``maxima action:send``
    at a time (the next when the last answered) of ``--size`` bytes from node ``--sender`` to node ``--to``'s
    ``p2pidentity``, for ``--seconds``; one JSON line."""
    network = nodes_in(args.dir.resolve())
    sender, receiver = network[args.sender], network[args.to]
    to = rpc(receiver.rpc_url, "maxima")["p2pidentity"]
    data = "0x" + os.urandom(args.size).hex()
    times: list[float] = []
    delivered = [0]
    began = time.monotonic()

    def caller() -> None:
        while time.monotonic() - began < args.seconds:
            start = time.monotonic()
            reply = rpc(sender.rpc_url, f"maxima action:send to:{to} application:interop-rate data:{data}", timeout=60)
            times.append(time.monotonic() - start)
            delivered[0] += bool(reply.get("delivered"))

    callers = [threading.Thread(target=caller) for _ in range(args.concurrent)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    elapsed = time.monotonic() - began
    times.sort()
    print(json.dumps({
        "sender": args.sender, "to": args.to, "size": args.size, "concurrent": args.concurrent, "sends": len(times),
        "delivered": delivered[0],
        "seconds": round(elapsed, 2), "per_second": round(len(times) / elapsed, 1),
        "p50_ms": round(1000 * times[len(times) // 2], 1), "p99_ms": round(1000 * times[int(len(times) * 0.99)], 1),
    }))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m interop.nodes", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    begin = commands.add_parser("start", help="start the nodes and print one JSON line each")
    begin.add_argument("--minima", type=Path, required=True, help="a Minima release jar or source checkout")
    begin.add_argument("--nodes", type=int, default=3)
    begin.add_argument("--base-port", type=int, default=9001, help="node 0's P2P port; its RPC is this + 4")
    begin.add_argument("--port-step", type=int, default=1000, help="node i's ports are base + i * step")
    begin.add_argument("--jars", type=Path, default=SYSTEM_JARS, help="where bcprov/bcpkix/bcutil .jar are")
    begin.add_argument("--heap", default="384m", help="each node's Java heap")
    begin.add_argument("--timeout", type=float, default=180, help="seconds to wait for each step")
    begin.add_argument("--fund", type=int, default=1000, help="Minima per coin sent to each other node (0: none)")
    begin.add_argument("--coins", type=int, default=4, help="coins sent to each other node (at most 14 in all)")
    begin.add_argument(
        "--mds-password", default="", help="enable MDS (the MiniDapp system) on the users' nodes with this password"
    )
    commands.add_parser("status", help="one JSON line per node of --dir; exit 1 if one is down")
    commands.add_parser("stop", help="stop the nodes of --dir")
    rate = commands.add_parser("sendrate", help="measure one node's own Maxima send rate")
    rate.add_argument("--sender", type=int, default=1, help="the sending node (default 1)")
    rate.add_argument("--to", type=int, default=0, help="the receiving node (default 0, the gateway's)")
    rate.add_argument("--size", type=int, default=1024, help="bytes of data per message (default 1024)")
    rate.add_argument("--seconds", type=float, default=10.0)
    rate.add_argument("--concurrent", type=int, default=1, help="callers sending at once (default 1)")
    for sub in commands.choices.values():
        sub.add_argument("--dir", type=Path, default=Path("var/interop"), help="the nodes' data, logs and pids")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            start(args)
        elif args.action == "status":
            return status(args)
        elif args.action == "sendrate":
            send_rate(args)
        else:
            stop(args)
    except NodeError as exc:
        print(f"interop: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
