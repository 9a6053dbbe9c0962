"""The stack every fault runs against, started once: a private Redis, two simnet nodes (the gateway's and a
sender's), gunicorn, a supervised Celery worker and a Celery beat, on the private PostgreSQL ``python -m faults``
started. Each test opens a fresh mailbox (the database is not emptied between tests; see ``database``).
"""

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from faults.stack import Stack
from mailboxes.tests.support import Opened, Owner, open_mailbox
from maxima.models import NodeState
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork
from simnet.testing import WebhookReceiver
from testsupport.processes import RedisServer, free_port, wait_for
from testsupport.stack import gateway_env, live_gateway, private_broker

HOOK_SECRET = "faults-" + "h" * 40
LAUNCHED = bool(os.environ.get("MNS_FAULTS_PG_PORT"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Only ``python -m faults`` (``make faults``) runs these: it provides the PostgreSQL they may stop."""
    skip = pytest.mark.skip(reason="the fault suite runs only under `make faults` (python -m faults)")
    for item in items:
        if item.get_closest_marker("faults") and not LAUNCHED:
            item.add_marker(skip)


def settings_env(tmp: Path, redis_url: str, net: SimNetwork) -> dict[str, str]:
    """The stack's settings: the limits out of the way of a thousand deliveries from one sender, retries soon."""
    return gateway_env(
        net,
        tmp,
        redis_url=redis_url,
        hook_secret=HOOK_SECRET,
        REDIS_URL=redis_url,
        MNS_REST_SUBMISSION="true",
        MNS_INBOUND_SWEEP_AFTER_SECONDS="10",
        MNS_OUTBOX_BACKOFF_MAX_SECONDS="3",
        MNS_OUTBOX_MAX_ATTEMPTS="100",
        MNS_HEARTBEAT_EVERY="1",
        MNS_HOOK_RATE_PER_SENDER_PER_MINUTE="1000000",
        MNS_HOOK_RATE_PER_MINUTE="1000000",
        MNS_DELIVERY_RATE_PER_MINUTE="1000000",
        MNS_THROTTLE_SUBMIT="1000000/min",
        MNS_THROTTLE_PER_IP="1000000/min",
        MNS_MAILBOX_MAX_MESSAGES="1000000",
        LOG_LEVEL="info",
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, django_db_blocker: Any) -> Iterator[Stack]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed")
    tmp = tmp_path_factory.mktemp("faults")
    redis = RedisServer(free_port(), tmp)
    redis.start()
    with SimNetwork(nodes=2, block_interval=1.0) as net, WebhookReceiver() as sender_inbox:
        MinimaRPC(net.nodes[1].rpc_url).webhooks_add(hook=sender_inbox.url(), filter="MAXIMA")
        with django_db_blocker.unblock():
            # The private cluster's own database, migrated here (no pytest-django test database: its per-test flush
            # would run under the live stack).
            call_command("migrate", interactive=False, verbosity=0)
            env = settings_env(tmp, redis.url, net)
        with live_gateway(net, tmp, env, separate_beat=True, supervised=True, hook_timeout=90) as live:
            yield Stack(net, redis, live.url, HOOK_SECRET, live.worker.pid, live.logs, sender_inbox, env, tmp)
    redis.stop()


@pytest.fixture(autouse=True)
def database(stack: Stack, django_db_blocker: Any) -> Iterator[None]:
    """The test reads and writes the stack's database while the stack runs: committed at once, and never flushed
    after a test (a TRUNCATE of every table under the running worker and web deadlocks with them). Each test has
    its own mailbox, and counts only its own deliveries."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture(autouse=True)
def on_private_broker(stack: Stack) -> Iterator[None]:
    """What this test process queues (the new mailbox's access token) goes to the stack's worker, for real."""
    with private_broker(stack.redis.url):
        yield


@pytest.fixture
def mailbox(stack: Stack, database: None, request: pytest.FixtureRequest) -> Opened:
    """A fresh mailbox named after the test, once the queue an earlier fault left is drained (each fault starts
    from a quiet stack) and supervision has written the gateway's identity."""
    wait_for(lambda: stack.queued() == 0, timeout=300, what="the queue to drain", log=stack.logs["worker"])
    state = wait_for(
        lambda: NodeState.objects.filter(pk=1).exclude(p2pidentity="").first(),
        timeout=180,  # after a flood, supervision waits behind the backlog
        what="node supervision",
        log=stack.logs["worker"],
    )
    name = "f" + request.node.name.removeprefix("test_").replace("_", "")[:20]
    # The mailbox is opened here, in the test's process: with the stack's quota, not this process's default (1 000
    # messages, which a flood of 57/s x 20 s outgrew on a CI run: 83 deliveries refused over_quota).
    quota = int(stack.env["MNS_MAILBOX_MAX_MESSAGES"])
    with override_settings(MNS_MAILBOX_MAX_MESSAGES=quota):
        opened = open_mailbox(Owner.fresh(), name, gateway=state.publickey)
    assert opened.mailbox.max_messages == quota
    return opened


@pytest.fixture(scope="session")
def report() -> Iterator[dict[str, Any]]:
    """Counts and timings per fault, written where ``python -m faults`` says (the README quotes the last run)."""
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "faults": {}}
    yield results
    path = Path(os.environ.get("MNS_FAULTS_REPORT", "var/faults-report.json"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
