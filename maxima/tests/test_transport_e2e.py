"""The transport end to end: two simnet nodes (or real ones in interop mode, ``testsupport.nodes``), the gateway
served by gunicorn, a real Celery worker and beat on a real Redis that the test can stop. A message from a user's
node reaches the inbox exactly once whatever fails in between; a message to a stopped node is sent when it comes
back."""

import json
import os
import re
import shutil
import signal
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from maxima.models import InboundEvent, OutboundMessage
from maxima.services import outbound_enqueue
from mns_client.protocol.rpc import MinimaRPC
from simnet.testing import WebhookReceiver
from testsupport.nodes import Network, network, simnet_only
from testsupport.processes import RedisServer, free_port, wait_for
from testsupport.stack import gateway_env, live_gateway, private_broker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

HOOK_SECRET = "e2e-" + "s" * 40


@dataclass
class Gateway:
    net: Network
    redis: RedisServer
    web_url: str
    handler_log: Path
    worker_log: Path
    node0_copy: WebhookReceiver  # a second hook on the gateway's node: the raw bodies it posts

    @property
    def hook_url(self) -> str:
        return f"{self.web_url}/maxima/hook/{HOOK_SECRET}/"

    def user_sends(self, application: str, data: bytes) -> str:
        reply = MinimaRPC(self.net.nodes[1].rpc_url, timeout=30).maxima_send(
            to=self.net.nodes[0].address, application=application, data=data
        )
        return reply.msgid


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: None, django_db_blocker: object
) -> Iterator[Gateway]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    tmp = tmp_path_factory.mktemp("e2e")
    redis = RedisServer(free_port(), tmp)
    redis.start()
    with network(2, block_interval=0.5) as net, WebhookReceiver() as copy:
        MinimaRPC(net.nodes[0].rpc_url).webhooks_add(hook=copy.url(), filter="MAXIMA")
        with django_db_blocker.unblock():
            env = gateway_env(
                net,
                tmp,
                redis_url=redis.url,
                hook_secret=HOOK_SECRET,
                MNS_TEST_APPS="true",
                MNS_TEST_HANDLER_LOG=str(tmp / "handler.log"),
            )
        with live_gateway(net, tmp, env, supervised=True) as live:
            yield Gateway(net, redis, live.url, tmp / "handler.log", live.worker_log, copy)
    redis.stop()


@pytest.fixture
def on_private_broker(gateway: Gateway) -> Iterator[None]:
    """This test process publishes to the gateway's Redis too, for real (not eagerly)."""
    with private_broker(gateway.redis.url):
        yield


def processed(msgid: str) -> InboundEvent | None:
    return InboundEvent.objects.filter(msgid=msgid).exclude(status__in=["pending", "processing"]).first()


def test_a_message_arrives_once_even_when_the_webhook_is_posted_twice(gateway: Gateway) -> None:
    msgid = gateway.user_sends("e2e-plain", b'{"hello":"gateway"}')
    event = wait_for(lambda: processed(msgid), timeout=30, what="the worker to process it", log=gateway.worker_log)
    assert (event.status, event.last_error) == ("ignored", "no handler for application 'e2e-plain'")
    assert bytes(event.data) == b'{"hello":"gateway"}'
    assert event.sender == gateway.net.nodes[1].publickey_hex
    raw = next(r.body for r in gateway.node0_copy.requests if json.loads(r.body)["data"]["msgid"] == msgid)
    request = urllib.request.Request(gateway.hook_url, data=raw, method="POST")  # the node posting it again
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert json.loads(reply.read())["stored"] is False
    assert InboundEvent.objects.filter(msgid=msgid).count() == 1


def test_a_worker_killed_mid_task_loses_nothing_and_does_the_work_once(gateway: Gateway) -> None:
    msgid = gateway.user_sends("test-slow", b"slow work")
    started = wait_for(
        lambda: re.search(rf"start {msgid} pid (\d+)", _read(gateway.handler_log)), timeout=30, what="the handler"
    )
    os.kill(int(started[1]), signal.SIGKILL)  # the pool child running the task dies
    event = wait_for(lambda: processed(msgid), timeout=60, what="the task to be redelivered", log=gateway.worker_log)
    assert event.status == "done"
    assert event.attempts == 2
    log = _read(gateway.handler_log)
    assert log.count(f"start {msgid}") == 2
    assert log.count(f"end {msgid}") == 1


def test_a_message_that_arrives_while_the_broker_is_down_is_processed_when_it_is_back(gateway: Gateway) -> None:
    gateway.redis.stop()
    try:
        msgid = gateway.user_sends("e2e-outage", b"during the outage")
        stored = wait_for(lambda: InboundEvent.objects.filter(msgid=msgid).first(), timeout=30, what="the hook")
        assert stored.status == "pending"
    finally:
        gateway.redis.start()
    event = wait_for(lambda: processed(msgid), timeout=90, what="the sweep after the outage", log=gateway.worker_log)
    assert event.status == "ignored"
    assert InboundEvent.objects.filter(msgid=msgid).count() == 1


@simnet_only("stops and restarts the user's node")
def test_a_message_to_a_stopped_node_is_retried_and_sent_when_it_comes_back(
    gateway: Gateway, on_private_broker: None
) -> None:
    user = gateway.net.nodes[1]
    with WebhookReceiver() as inbox:
        MinimaRPC(user.rpc_url).webhooks_add(hook=inbox.url(), filter="MAXIMA")
        user.stop()
        try:
            message = outbound_enqueue(
                destination=user.address, application="mns", payload=b"for later", idempotency_key="e2e-1"
            )
            wait_for(
                lambda: OutboundMessage.objects.filter(id=message.id, attempts__gte=1, status="queued").exists(),
                timeout=30,
                what="a failed first attempt",
                log=gateway.worker_log,
            )
        finally:
            user.start()
        sent = wait_for(
            lambda: OutboundMessage.objects.filter(id=message.id, status="sent").first(), timeout=60, what="the retry"
        )
        assert sent.last_error == ""
        arrived = inbox.wait_for(1, timeout=10)
        assert [json.loads(r.body)["data"]["msgid"] for r in arrived] == [sent.msgid]


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
