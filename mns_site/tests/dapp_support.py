"""Building the MNS Dapp for the tests: ``npm ci`` (only when ``dapp/node_modules`` is missing) and ``build.mjs``.

Without Node.js/npm (or when the build fails) the Dapp's tests are skipped with the reason, except under
``MNS_REQUIRE_SERVICES=1`` (CI), where they fail.
"""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import _unavailable
from simnet import SimNetwork
from testsupport import REPO
from testsupport.nodes import Network, network
from testsupport.processes import RedisServer, free_port
from testsupport.stack import OPEN_THROTTLES, gateway_env, live_gateway, migrate

DAPP = REPO / "dapp"


@dataclass(frozen=True)
class Built:
    site: Path  # what /app/ serves
    zip: Path  # the MiniDapp


def node_tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("Node.js and npm are needed for the Dapp (apt-get install nodejs npm)")
    return node, npm  # type: ignore[return-value]


def installed() -> str:
    """``node``, once ``dapp/node_modules`` holds the locked packages (``npm ci`` when it does not)."""
    node, npm = node_tools()
    if not all((DAPP / "node_modules" / package).is_dir() for package in ("libsodium-wrappers", "playwright-core")):
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=DAPP, capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            _unavailable(f"npm ci failed in dapp/: {done.stderr[-2000:]}")
    return node


def build_dapp(out: Path) -> Built:
    node = installed()
    built = Built(site=out / "site", zip=out / "mns.mds.zip")
    args = [node, "build.mjs", "--out", str(built.site), "--zip", str(built.zip)]
    done = subprocess.run(args, cwd=DAPP, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        pytest.fail(f"the Dapp's build failed:\n{done.stdout}\n{done.stderr}")
    return built


CHROMIUM = os.environ.get("MNS_TEST_CHROMIUM", "/usr/bin/chromium")  # the Debian package `chromium`


@dataclass
class World:
    """A gateway (gunicorn, a Celery worker with beat, a private Redis) on node 0 (simnet's, or a real node's in
    interop mode), the Dapp built, and one user of the ``mns`` command line (``cli``: name, node index)."""

    net: Network
    url: str
    homes: Path
    built: Built
    cli: tuple[str, int]

    def mns_env(self, who: str, index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MNS_", "DJANGO_"))}
        env.update(MNS_HOME=str(self.homes / who), MNS_GATEWAY=self.url, MNS_NODE=self.net.nodes[index].rpc_url)
        return env

    def mns(self, *args: str) -> subprocess.CompletedProcess:
        """``python -m mns_client ARGS`` as the command-line user."""
        return subprocess.run(
            [sys.executable, "-m", "mns_client", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=self.mns_env(*self.cli),
            timeout=180,
            check=False,
        )


@contextmanager
def dapp_world(
    tmp: Path,
    django_db_blocker: Any,
    *,
    cli: tuple[str, int],
    hook_secret: str,
    nodes: int = 3,
    mds_password: str | None = None,
    prepare: Callable[[Network], None] = lambda net: None,
    interop: bool = False,
    **settings: str,
) -> Iterator[World]:
    """The world of the browser tests, on a database of its own (a fresh SQLite file, as the CLI's end-to-end test
    does); skipped with the reason when Chromium, Node.js or Redis is missing. ``interop``: on the real nodes of
    ``MNS_INTEROP_NODES`` when they are given (``testsupport.nodes.network``), else simnet."""
    if not Path(CHROMIUM).is_file():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)")
    node_tools()
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    built = build_dapp(tmp / "dapp")
    redis = RedisServer(free_port(), tmp)
    redis.start()
    try:
        nodes_of = network if interop else SimNetwork  # interop: MNS_INTEROP_NODES' real nodes, when given
        with nodes_of(nodes=nodes, block_interval=0.5, mds_password=mds_password) as net:
            prepare(net)
            with django_db_blocker.unblock():  # it reads the test database's settings
                env = gateway_env(
                    net,
                    tmp,
                    redis_url=redis.url,
                    hook_secret=hook_secret,
                    DATABASE_URL=f"sqlite://{tmp / 'gateway.sqlite3'}",
                    **{**OPEN_THROTTLES, **settings},
                )
            migrate(env)
            with live_gateway(net, tmp, env) as live:
                yield World(net, live.url, tmp / "homes", built, cli)
    finally:
        redis.stop()


def run_flow(args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    """Run the browser flow in its own process group, so a timeout also stops the Chromium it started."""
    with subprocess.Popen(
        args, cwd=DAPP, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as flow:
        try:
            out, err = flow.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(flow.pid, signal.SIGKILL)
            out, err = flow.communicate()
            pytest.fail(f"the browser flow took more than {timeout:.0f} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(args, flow.returncode, out, err)


def encodings(secret: str | bytes) -> list[str]:
    """How a secret could appear in a request: as is, hex (both cases), base64, base64url, percent-encoded."""
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = [raw.hex().upper(), raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    if isinstance(secret, str):
        forms += [secret, urllib.parse.quote(secret), urllib.parse.quote_plus(secret)]
    return [form.rstrip("=") for form in forms]


def carries(request: dict[str, Any], secret: str | bytes) -> bool:
    text = request["url"] + "\n" + request["body"] + "\n" + json.dumps(request["headers"])
    return any(form in text or form.lower() in text.lower() for form in encodings(secret))
