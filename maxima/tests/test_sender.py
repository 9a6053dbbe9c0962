"""The sends' own queue, for real: a worker of threads (``core.processes.celery_sender_command``) waits on many
node RPCs at once, and a worker started ``without_sends`` leaves the sends to it. Simnet only: what shows sends in
flight together is its node's send pipeline, which counts every send that found another one ahead of it."""

import os
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from core.models import Heartbeat
from core.processes import SENDS_QUEUE, celery_sender_command, celery_worker_command
from maxima.models import OutboundMessage
from maxima.services import outbound_enqueue
from mns_site.celery import app as celery_app
from simnet import SimNetwork
from testsupport.processes import child_env, process, wait_for
from testsupport.stack import private_broker

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

SENDS = 12


def queued(redis_url: str, queue: str) -> int:
    return redis_lib.Redis.from_url(redis_url).llen(queue)


def test_a_sender_of_threads_has_many_sends_in_flight_at_once(tmp_path: Path, redis_url: str, settings: Any) -> None:
    redis_lib.Redis.from_url(redis_url).delete(SENDS_QUEUE)
    with SimNetwork(nodes=2, block_interval=5) as net:
        gateway, user = net.nodes
        settings.MINIMA_RPC_URL = gateway.rpc_url
        env = child_env(CELERY_BROKER_URL=redis_url, MNS_VAR_DIR=str(tmp_path), MINIMA_RPC_URL=gateway.rpc_url)
        log = tmp_path / "sender.log"
        with private_broker(redis_url), process(celery_sender_command(threads=8), env=env, log=log):
            for n in range(SENDS):
                outbound_enqueue(
                    destination=user.address, application="mns", payload=os.urandom(1024), idempotency_key=f"lane-{n}"
                )
            sent = OutboundMessage.objects.filter(status=OutboundMessage.Status.SENT)
            wait_for(lambda: sent.count() == SENDS, timeout=60, what=f"{SENDS} sends", log=log)

        # one worker process at a time would have found the node's pipeline free every time
        assert gateway.sends.sent == SENDS
        assert gateway.sends.queued > 0


def test_a_worker_without_the_sends_leaves_them_to_the_sender(tmp_path: Path, redis_url: str) -> None:
    redis_lib.Redis.from_url(redis_url).delete(SENDS_QUEUE, "celery")
    env = child_env(CELERY_BROKER_URL=redis_url, MNS_VAR_DIR=str(tmp_path))
    worker_log, sender_log = tmp_path / "worker.log", tmp_path / "sender.log"
    worker = celery_worker_command(concurrency=1, without_sends=True)
    with private_broker(redis_url), process(worker, env=env, log=worker_log):
        celery_app.send_task("core.heartbeat_sends")  # routed to the sends' queue by its name
        celery_app.send_task("core.heartbeat")  # after it, on the worker's own queue
        wait_for(
            lambda: Heartbeat.objects.filter(name="worker").exists(), timeout=60, what="the worker", log=worker_log
        )

        assert not Heartbeat.objects.filter(name="sender").exists()
        assert queued(redis_url, SENDS_QUEUE) == 1  # still waiting for whoever takes the sends
        with process(celery_sender_command(threads=2), env=env, log=sender_log) as sender:
            beat = wait_for(
                lambda: Heartbeat.objects.filter(name="sender").first(), timeout=60, what="the sender", log=sender_log
            )
    assert beat.pid == sender.pid  # the thread pool runs its tasks in its own process
    assert queued(redis_url, SENDS_QUEUE) == 0


@pytest.mark.parametrize("broker", ["redis", "filesystem"])
def test_a_worker_started_without_queue_options_takes_the_sends_as_well(
    tmp_path: Path, redis_url: str, broker: str
) -> None:
    # what every deployment started before the sends had a queue of their own runs, and the embedded default
    env = child_env(MNS_VAR_DIR=str(tmp_path))
    if broker == "redis":
        env["CELERY_BROKER_URL"] = redis_url
    else:
        for variable in ("CELERY_BROKER_URL", "REDIS_URL"):
            env.pop(variable, None)
    log = tmp_path / "worker.log"
    with process(celery_worker_command(concurrency=1, beat_schedule=tmp_path / "beat"), env=env, log=log):
        wait_for(
            lambda: Heartbeat.objects.filter(name="sender").exists(), timeout=60, what="the sends' heartbeat", log=log
        )
    assert Heartbeat.objects.filter(name="worker").exists()
