"""``python -m bench.outbox``: the gateway's Maxima sends per second through its node, next to that node's own send
rate measured right before in the same run.

The node's own rate: ``maxima action:send`` of ``--size`` bytes from the gateway's node to the user's node, one at
a time, for ``--seconds``. The gateway's: ``--messages`` outbox rows queued at once (``outbound_enqueue``), sent
by a real Celery worker (``--concurrency`` processes) on a private Redis through the same node; the rate is the
rows sent over the span from the first send to the last.

The nodes come from ``testsupport.nodes.network``: simnet by default, the real nodes of ``MNS_INTEROP_NODES`` in
interop mode (``docs/interop.md``). SQLite unless ``DATABASE_URL`` is set.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import harness
from mns_client.protocol.rpc import MinimaRPC
from testsupport.nodes import interop_mode, network
from testsupport.processes import RedisServer, celery_worker, free_port, process, wait_for


def node_rate(rpc_url: str, to: str, size: int, seconds: float) -> dict[str, float]:
    rpc, data = MinimaRPC(rpc_url, timeout=60), os.urandom(size)
    times, began = [], time.monotonic()
    while time.monotonic() - began < seconds:
        start = time.monotonic()
        rpc.maxima_send(to=to, application="bench-node", data=data)
        times.append(time.monotonic() - start)
    elapsed, times = time.monotonic() - began, sorted(times)
    return {"per_second": round(len(times) / elapsed, 1), "p50_ms": round(1000 * times[len(times) // 2], 1)}


def gateway_rate(to: str, count: int, size: int, tag: str, timeout: float) -> dict[str, float]:
    from maxima.models import OutboundMessage
    from maxima.services import outbound_enqueue

    payload = os.urandom(size)
    for n in range(count):
        outbound_enqueue(destination=to, application="bench-outbox", payload=payload, idempotency_key=f"{tag}-{n}")
    rows = OutboundMessage.objects.filter(idempotency_key__startswith=f"{tag}-")
    wait_for(lambda: rows.filter(status="sent").count() == count, timeout=timeout, what=f"{count} sends")
    sent = sorted(rows.values_list("sent_at", flat=True))
    first_claim = min(rows.values_list("claimed_at", flat=True))
    span = (sent[-1] - first_claim).total_seconds()
    return {"per_second": round(count / span, 1), "span_s": round(span, 2), "sent": len(sent)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=10.0, help="for the node's own rate")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker processes")
    args = parser.parse_args()

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    var_dir = harness.REPO / "var" / "bench" / f"run-{stamp}-outbox"
    var_dir.mkdir(parents=True)
    redis = RedisServer(free_port(), var_dir)
    redis.start()
    try:
        with network(2, block_interval=1.0) as net:
            gateway, user = net.nodes
            own = node_rate(gateway.rpc_url, user.address, args.size, args.seconds)
            env = harness.bench_env(
                var_dir, MINIMA_RPC_URL=gateway.rpc_url, REDIS_URL=redis.url, CELERY_BROKER_URL=redis.url
            )
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=harness.REPO, env=env, check=True)
            os.environ.update(env)
            import django

            django.setup()
            log = var_dir / "worker.log"
            with process(celery_worker(env=env, log=log, concurrency=args.concurrency), env=env, log=log):
                gateway_rate(user.address, 4, args.size, f"warm-{stamp}", timeout=120)  # the worker is up
                through = gateway_rate(user.address, args.messages, args.size, stamp, timeout=600)
    finally:
        redis.stop()
    result = {
        "when": stamp,
        "nodes": "real (MNS_INTEROP_NODES)" if interop_mode() else "simnet",
        "size": args.size,
        "messages": args.messages,
        "worker_concurrency": args.concurrency,
        "node_sends_per_second": own,
        "gateway_sends_per_second": through,
        "load_average": os.getloadavg()[0],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
