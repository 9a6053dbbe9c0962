"""``python -m bench.outbox``: the gateway's Maxima sends per second through one node, and through a pool of two, next
to that node's own send rate measured right before in the same run.

The node's own rate: ``maxima action:send`` of ``--size`` bytes from the gateway's node to the user's node, one at a
time, for ``--seconds``. The gateway's: ``--messages`` outbox rows to a user (application ``mns``, which the pool
spreads) queued at once (``outbound_enqueue``), sent by a real sender (a Celery worker of ``--threads`` threads on
the sends' queue, as deployed: ``core.processes.celery_sender_command``) on a private Redis; the rate is the rows
sent over the span from the first claim to the last send. First through node 0 alone (``MINIMA_RPC_URL`` = its URL),
then through nodes 0 and 1 (both URLs: the pool, both supervised first so that node 1's key is published and it may
send), the sender restarted with each setting. Targets: through one node >= 0.9 x the node's own rate, through two
>= 1.8 x through one.

The nodes come from ``testsupport.nodes.network``: simnet by default (each node with its one send pipeline,
``simnet.sending.SendTiming``), the real nodes of ``MNS_INTEROP_NODES`` in interop mode (``docs/interop.md``).
SQLite unless ``DATABASE_URL`` is set. ``--nodes 1`` skips the pool.
"""

import argparse
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import harness
from core.processes import SENDER_THREADS, celery_sender_command
from mns_client.protocol.rpc import MinimaRPC
from testsupport.nodes import interop_mode, network
from testsupport.processes import RedisServer, free_port, process, wait_for


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
        outbound_enqueue(destination=to, application="mns", payload=payload, idempotency_key=f"{tag}-{n}")
    rows = OutboundMessage.objects.filter(idempotency_key__startswith=f"{tag}-")
    wait_for(lambda: rows.filter(status="sent").count() == count, timeout=timeout, what=f"{count} sends")
    sent = sorted(rows.values_list("sent_at", flat=True))
    first_claim = min(rows.values_list("claimed_at", flat=True))
    span = (sent[-1] - first_claim).total_seconds()
    return {"per_second": round(count / span, 1), "span_s": round(span, 2), "sent": len(sent)}


def through(env: dict[str, str], var_dir: Path, to: str, args: argparse.Namespace, tag: str) -> dict[str, float]:
    """The gateway's rate with the nodes ``env`` names, through a sender started for them."""
    from django.conf import settings

    from maxima.tasks import supervise_node

    settings.MINIMA_RPC_URL = env["MINIMA_RPC_URL"]
    supervise_node()  # every node's key known (and published) before the pool may spread over it
    log = var_dir / f"sender-{tag}.log"
    with process(celery_sender_command(threads=args.threads), env=env, log=log):
        gateway_rate(to, 4, args.size, f"warm-{tag}", timeout=120)  # the sender is up
        return gateway_rate(to, args.messages, args.size, tag, timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=10.0, help="for the node's own rate")
    parser.add_argument("--threads", type=int, default=SENDER_THREADS, help="the sender's threads")
    parser.add_argument("--nodes", type=int, choices=(1, 2), default=2, help="2: also through a pool of two")
    parser.add_argument("--out", type=Path, help="also write the result (JSON) here")
    args = parser.parse_args()

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    var_dir = harness.REPO / "var" / "bench" / f"run-{stamp}-outbox"
    var_dir.mkdir(parents=True)
    redis = RedisServer(free_port(), var_dir)
    redis.start()
    rates: dict[str, dict[str, float]] = {}
    try:
        with network(1 + args.nodes, block_interval=1.0) as net:
            gateway, *pool, user = net.nodes
            own = node_rate(gateway.rpc_url, user.address, args.size, args.seconds)
            env = harness.bench_env(
                var_dir, MINIMA_RPC_URL=gateway.rpc_url, REDIS_URL=redis.url, CELERY_BROKER_URL=redis.url
            )
            harness.prepared(env)
            os.environ.update(env)
            import django

            django.setup()
            rates["one_node"] = through(env, var_dir, user.address, args, f"one-{stamp}")
            if pool:
                urls = ",".join(node.rpc_url for node in (gateway, *pool))
                rates["two_nodes"] = through(
                    {**env, "MINIMA_RPC_URL": urls}, var_dir, user.address, args, f"two-{stamp}"
                )
    finally:
        redis.stop()
    one = rates["one_node"]["per_second"]
    result = {
        "when": stamp,
        "nodes": "real (MNS_INTEROP_NODES)" if interop_mode() else "simnet",
        "size": args.size,
        "messages": args.messages,
        "sender_threads": args.threads,
        "node_sends_per_second": own,
        "gateway_sends_per_second": rates["one_node"],
        "one_node_vs_node": round(one / own["per_second"], 3),
        "load_average": os.getloadavg()[0],
    }
    if "two_nodes" in rates:
        result["pool_of_two_sends_per_second"] = rates["two_nodes"]
        result["two_nodes_vs_one"] = round(rates["two_nodes"]["per_second"] / one, 3)
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
