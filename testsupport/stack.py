"""One gateway, live, for end-to-end tests: gunicorn and a Celery worker with beat on a private Redis, with a simnet
node as its Minima node; and this test process pointed at that Redis.

The e2e suites (transport, mailboxes, the CLI, the Dapp) and the fault suite start it the same way and differ only
in their settings; a network of several gateways is ``testsupport.gateways``.
"""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from core.processes import celery_beat_command
from mns_client.protocol.rpc import MinimaRPC
from testsupport import REPO
from testsupport.nodes import Network
from testsupport.processes import celery_worker, child_env, free_port, gunicorn, process, wait_for

# Periodic work every second or two, so a test sees a sweep, a retry or a supervision round without waiting long.
FAST = {
    "MNS_SWEEP_EVERY": "1",
    "MNS_INBOUND_SWEEP_AFTER_SECONDS": "2",
    "MNS_OUTBOX_BACKOFF_SECONDS": "1",
    "MNS_NODE_CHECK_EVERY": "2",
    "CELERY_VISIBILITY_TIMEOUT": "30",
}
# One client address sends everything in a test: the API's limits out of the way.
OPEN_THROTTLES = {
    "MNS_THROTTLE_WRITE": "10000/min",
    "MNS_THROTTLE_LOOKUP": "10000/min",
    "MNS_THROTTLE_PER_IP": "10000/min",
}


def gateway_env(net: Network, tmp: Path, *, redis_url: str, hook_secret: str, **settings: str) -> dict[str, str]:
    """The settings of a gateway on a free port of 127.0.0.1 whose node is ``net``'s node 0, with ``FAST``
    periodic work, overridden by ``settings``. Reads the test database's address: call it with the database
    unblocked (or give ``DATABASE_URL``)."""
    url = f"http://127.0.0.1:{free_port()}"
    return child_env(
        CELERY_BROKER_URL=redis_url,
        MNS_VAR_DIR=str(tmp),
        MINIMA_RPC_URL=net.nodes[0].rpc_url,
        MAXIMA_HOOK_SECRET=hook_secret,
        MNS_HOOK_BASE_URL=url,
        MNS_PUBLIC_URL=url,
        **{**FAST, **settings},
    )


def migrate(env: dict[str, str]) -> None:
    """Migrate the database ``env`` names, in a child process (for a gateway on a database of its own)."""
    command = [sys.executable, "manage.py", "migrate", "--verbosity", "0"]
    subprocess.run(command, cwd=REPO, env=env, check=True, timeout=300)


@dataclass
class LiveGateway:
    url: str
    env: dict[str, str]
    logs: dict[str, Path]  # web, worker, beat (the beat's own log only with ``separate_beat``)
    worker: subprocess.Popen  # the worker, or its supervisor

    @property
    def worker_log(self) -> Path:
        return self.logs["worker"]

    @property
    def hook_url(self) -> str:
        return f"{self.url}/maxima/hook/{self.env['MAXIMA_HOOK_SECRET']}/"


@contextmanager
def live_gateway(
    net: Network,
    tmp: Path,
    env: dict[str, str],
    *,
    separate_beat: bool = False,
    supervised: bool = False,
    hook_timeout: float = 60,
) -> Iterator[LiveGateway]:
    """gunicorn and a Celery worker (two processes; beat inside it, or its own process with ``separate_beat``;
    ``supervised``: restarted whenever it dies) on the settings of ``gateway_env``, yielded once supervision has
    registered the gateway's hook on its node and the gateway publishes its Maxima address. Everything is stopped
    when the block ends."""
    url = env["MNS_HOOK_BASE_URL"]
    logs = {name: tmp / f"{name}.log" for name in ("web", "worker", "beat")}
    worker = celery_worker(env=env, log=logs["worker"], concurrency=2, beat=not separate_beat, supervised=supervised)
    with ExitStack() as running:
        running.enter_context(process(gunicorn(bind=url.removeprefix("http://")), env=env, log=logs["web"]))
        worker_process = running.enter_context(process(worker, env=env, log=logs["worker"]))
        if separate_beat:
            running.enter_context(process(celery_beat_command(schedule=tmp / "beat"), env=env, log=logs["beat"]))
        gateway = LiveGateway(url, env, logs, worker_process)
        node = MinimaRPC(net.nodes[0].rpc_url)
        wait_for(
            lambda: f"MAXIMA#{gateway.hook_url}" in node.webhooks_list(),
            timeout=hook_timeout,
            what="supervision to register the gateway's hook",
            log=logs["worker"],
        )
        wait_for(
            lambda: published_address(url),
            timeout=hook_timeout,
            what="the gateway to learn its Maxima address",
            log=logs["worker"],
        )
        yield gateway


def published_address(url: str) -> str | None:
    """The Maxima address the gateway at ``url`` publishes, or None while it does not answer (a gateway restarted
    on a node that kept its hook entry is waited for here, not at the hook)."""
    try:
        return requests.get(url + "/.well-known/mns.json", timeout=5).json()["maxima"]["address"] or None
    except requests.RequestException:
        return None


@contextmanager
def private_broker(url: str) -> Iterator[None]:
    """What this test process queues goes to the live gateway's Redis, for its worker to run for real."""
    from mns_site.celery import app

    saved = app.conf.broker_url, app.conf.task_always_eager
    app.conf.broker_url, app.conf.task_always_eager = url, False
    _fresh_producer_pool(app)
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        _fresh_producer_pool(app)


def _fresh_producer_pool(app: Any) -> None:
    """Close the connections to the old broker and let the app open new pools: a pool once force-closed refuses
    every later acquire ("Acquire on closed pool"), and kombu keeps its pools in registries keyed by the broker's
    address, so the tests after this one would get the closed one back (even eager tasks acquire a producer)."""
    from kombu import pools

    pools.reset()  # closes every pool and empties the registries
    app._pool = None
    app.amqp._producer_pool = None
