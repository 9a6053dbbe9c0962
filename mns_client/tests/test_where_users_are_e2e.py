"""Where users are (issue 17, points 1 and 2), for real: the ``mns`` client as a subprocess against a live gateway
(gunicorn, a Celery worker with beat, a private Redis) on simnet.

A user whose node cannot be reached directly (it advertises a port nobody answers; its host relays for it) does
everything through the reply address the client picks; a network restarted with its state (the same keys, new
ports: every ``Mx…@host:port`` moved) plays the whole walk-through again against the same gateway database.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mns_client.protocol.codecs import MaximaAddress
from mns_client.tests.test_cli_e2e import HOOK_SECRET, Run
from simnet import SimNetwork
from testsupport import REPO
from testsupport.processes import RedisServer, free_port, wait_for
from testsupport.stack import OPEN_THROTTLES, gateway_env, live_gateway, migrate, published_address

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


def settings_for(net: SimNetwork, tmp: Path, redis: str, django_db_blocker: Any) -> dict[str, str]:
    with django_db_blocker.unblock():  # gateway_env reads the test database's settings
        return gateway_env(
            net,
            tmp,
            redis_url=redis,
            hook_secret=HOOK_SECRET,
            DATABASE_URL=f"sqlite://{tmp / 'gateway.sqlite3'}",
            **OPEN_THROTTLES,
        )


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MNS_", "DJANGO_"))}
    return {**env, **extra}


def mns(home: Path, node: str, gateway: str, *args: str, stdin: bytes = b"") -> Run:
    env = child_env(MNS_HOME=str(home), MNS_GATEWAY=gateway, MNS_NODE=node)
    done = subprocess.run(
        [sys.executable, "-m", "mns_client", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=180,
        check=False,
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode())


def demo(gateway: str, net: SimNetwork, homes: Path) -> subprocess.CompletedProcess:
    """The walk-through as ``make run`` and ``make demo`` play it: alice on node 1, bob on node 2."""
    args = ["--gateway", gateway, "--alice-node", net.nodes[1].rpc_url, "--bob-node", net.nodes[2].rpc_url]
    args += ["--alice-home", str(homes / "alice"), "--bob-home", str(homes / "bob")]
    return subprocess.run(
        [sys.executable, "-m", "mns_client.demo", *args],
        capture_output=True,
        cwd=REPO,
        env=child_env(),
        timeout=600,
        check=False,
    )


def test_a_user_whose_node_cannot_be_reached_directly_registers_sends_gets_receipts_reads_and_has_mail_forwarded(
    tmp_path: Path, redis: str, django_db_blocker: Any
) -> None:
    with SimNetwork(nodes=3, block_interval=0.5, unreachable=[1]) as net:
        env = settings_for(net, tmp_path, redis, django_db_blocker)
        migrate(env)
        with live_gateway(net, tmp_path, env) as live:
            dora, bob = net.nodes[1], net.nodes[2]

            def as_dora(*args: str, stdin: bytes = b"") -> Run:
                return mns(tmp_path / "dora", dora.rpc_url, live.url, *args, stdin=stdin)

            def as_bob(*args: str, stdin: bytes = b"") -> Run:
                return mns(tmp_path / "bob", bob.rpc_url, live.url, *args, stdin=stdin)

            init = as_dora("init", "--json")
            registered = as_dora("register", "dora", "--json")
            from_bob = as_bob("send", "dora", "--json", "--subject", "hi", stdin=b"hello dora")
            to_herself = as_dora("send", "dora", "--json", stdin=b"a note to self")
            listed = as_dora("inbox", "--json")
            read = as_dora("read", from_bob.json["message_id"], "--json")
            forwarded = as_dora("forward", "--json", "--timeout", "30")
            corrected = as_dora("set-address", "--json")

    assert init.code == 0, init.err
    assert init.json["node"]["reply_via"] == "contact"
    assert MaximaAddress.parse(init.json["node"]["reply_address"]).port == net.nodes[0].p2p_port
    assert MaximaAddress.parse(init.json["node"]["address"]).port == dora.advertised_port
    assert (registered.code, registered.json["status"]) == (0, "active"), registered.err
    assert (from_bob.code, from_bob.json["status"]) == (0, "stored"), from_bob.err
    assert (to_herself.code, to_herself.json["status"]) == (0, "stored"), to_herself.err  # her receipt came back
    assert {m["id"] for m in listed.json["messages"]} == {from_bob.json["message_id"], to_herself.json["message_id"]}
    assert (read.code, read.json["body"]) == (0, "hello dora"), read.err
    assert forwarded.code == 0, forwarded.err + forwarded.out
    assert {item["body"] for item in forwarded.json["received"]} == {"hello dora", "a note to self"}
    assert (corrected.code, corrected.json["address"]) == (0, init.json["node"]["reply_address"]), corrected.err


def test_after_the_network_restarts_with_its_state_on_new_ports_the_walk_through_plays_again(
    tmp_path: Path, redis: str, django_db_blocker: Any
) -> None:
    state, homes = tmp_path / "simnet", tmp_path / "homes"
    with SimNetwork(nodes=3, block_interval=0.5, state_dir=state) as net:
        env = settings_for(net, tmp_path, redis, django_db_blocker)
        migrate(env)
        with live_gateway(net, tmp_path, env) as live:
            first = demo(live.url, net, homes)
            before = [node.address for node in net.nodes]

    with SimNetwork(nodes=3, block_interval=0.5, state_dir=state) as net:
        after = [node.address for node in net.nodes]
        env = {**env, "MINIMA_RPC_URL": net.nodes[0].rpc_url}  # the same gateway URL, as `make run` keeps it
        with live_gateway(net, tmp_path, env) as live:
            wait_for(
                lambda: published_address(live.url) == net.nodes[0].address,
                timeout=60,
                what="the gateway to publish where its node is now",
                log=live.worker_log,
            )
            second = demo(live.url, net, homes)
            again = demo(live.url, net, homes)  # `make demo` after the restart

    assert first.returncode == 0, first.stdout.decode() + first.stderr.decode()
    assert all(old != new for old, new in zip(before, after, strict=True))
    assert second.returncode == 0, second.stdout.decode() + second.stderr.decode()
    assert "already alice's (from an earlier run)" in second.stdout.decode()
    assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
