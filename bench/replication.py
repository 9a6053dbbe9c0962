"""``python -m bench.replication`` (or ``python -m bench replication``): how fast the MNS network replicates.

Starts a three-gateway network (``testsupport.gateways.GatewayCluster``: gw-a, gw-b, gw-c, each with its own
PostgreSQL database, Redis database, worker, gunicorn and simnet node) and measures three figures, each next to a
baseline measured in the same run on the same machine (these machines are shared and noisy):

- **replication-apply**: operations per second applied at a peer. gw-c's worker is stopped (its node and web keep
  taking gw-a's pushes into its inbox) while gw-a stores ``--ops`` deliveries, each one operation of gw-a's log;
  then the worker starts and applies the backlog. The rate is counted from gw-c's own
  ``federation_operation.received_at`` stamps (first to last applied). Baseline **bare-insert-pg**: the same
  number of single-row INSERT transactions of the same size into gw-c's PostgreSQL from this process.
- **replication-catchup**: the issue's outage. gw-c is stopped (node and worker) while gw-a stores ``--ops``
  deliveries; then it starts and catches up by itself (the outbox's retries, its pulls): operations per second
  from its start to the last one applied. Same baseline.
- **replication-lag**: from a delivery stored at gw-a (its REST answer) to the message being in gw-c's database,
  ``--lag-samples`` deliveries one after the other; median and p99. Baseline **deliver-local**: the delivery's own
  time at gw-a (request to answer).

``--scale`` runs ``bench.network_scale`` instead: a million names and twenty gateways, simulated in one process
where live gateways would not fit (its own options follow ``--scale``; ``docs/scaling.md``).

Needs PostgreSQL (``DATABASE_URL=postgres://…``: any database of the server; the run makes its own and drops them)
and ``redis-server``. Prints the table of ``bench.harness`` and writes ``var/bench/<date>-replication.json``.
Nothing here is a test: it never fails on a time.
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import REPO, Result, table

KIB = 1024
MAILBOX = "benchrep"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def _deliver(gateway: object, size: int) -> tuple[str, float]:
    """One REST delivery to the bench mailbox at ``gateway``: (its delivery id, seconds it took)."""
    delivery_id = secrets.token_hex(16)
    body = {"id": delivery_id, "scheme": "nacl-sealedbox-v1", "ciphertext": "0x" + secrets.token_hex(size)}
    started = time.perf_counter()
    status, answer = gateway.api("POST", f"/api/v1/names/{MAILBOX}/messages", body)
    elapsed = time.perf_counter() - started
    if status != 201:
        raise RuntimeError(f"the delivery at {gateway.name} was refused: {status} {answer}")
    return delivery_id, elapsed


def _wait(condition: object, timeout: float, what: str, poll: float = 0.02) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.perf_counter()
        time.sleep(poll)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def bare_insert(gateway: object, count: int, size: int) -> Result:
    """``count`` single-row INSERT transactions of ``size`` bytes into the gateway's database, from here."""
    from testsupport.processes import pg_connect

    payload = secrets.token_bytes(size)
    with pg_connect(gateway.database_url) as conn:
        conn.execute(
            "CREATE TEMPORARY TABLE bench_bare (id bigserial PRIMARY KEY, origin text, seq bigint, data bytea)"
        )
        started = time.perf_counter()
        for seq in range(count):
            with conn.transaction():
                conn.execute("INSERT INTO bench_bare (origin, seq, data) VALUES (%s, %s, %s)", ("bench", seq, payload))
        elapsed = time.perf_counter() - started
    return Result("bare-insert-pg", count, 0, round(elapsed, 2), round(count / elapsed, 1), 0.0, 0.0, 0.0)


def _applied(gateway: object, origin: str) -> int:
    return gateway.scalar("SELECT count(*) FROM federation_operation WHERE origin = %s", origin)


def apply_rate(cluster: object, count: int, size: int) -> Result:
    """gw-c's worker alone is stopped while gw-a stores ``count`` deliveries: gw-c's node and web keep taking
    gw-a's pushes into its inbox. Then its worker starts and applies the backlog; the rate is counted from
    gw-c's own ``received_at`` stamps of those operations (first to last)."""
    a, _, c = cluster.gateways
    origin = a.identity
    before = _applied(c, origin)
    c.worker.stop()
    try:
        for _ in range(count):
            _deliver(a, size)
        _wait(
            lambda: (
                not a.scalar(
                    "SELECT count(*) FROM maxima_outboundmessage WHERE application = 'mns-sync' AND status <> 'sent' "
                    "AND idempotency_key LIKE 'fed-ops:%%'"
                )
            ),
            timeout=max(120, count),
            what="gw-a's pushes to reach gw-c's inbox",
            poll=0.2,
        )
    finally:
        cluster.start_gateway(c)
    _wait(lambda: _applied(c, origin) >= before + count, max(120, count), f"{count} operations at {c.name}", 0.2)
    first, last = c.sql(
        "SELECT min(received_at), max(received_at) FROM (SELECT received_at FROM federation_operation "
        "WHERE origin = %s ORDER BY seq DESC LIMIT %s) latest",
        origin,
        count,
    )[0]
    seconds = max((last - first).total_seconds(), 1e-3)
    rps = round((count - 1) / seconds, 1)
    return Result("replication-apply", count, 0, round(seconds, 2), rps, 0.0, 0.0, _worker_peak_mb(c))


def catch_up(cluster: object, count: int, size: int) -> Result:
    """gw-c is stopped (node and worker) while gw-a stores ``count`` deliveries; then it is started and catches
    up by itself (the outbox's retries and its own pulls): operations per second from its start to the last."""
    a, _, c = cluster.gateways
    origin = a.identity
    before = _applied(c, origin)
    cluster.stop_gateway(c)
    try:
        for _ in range(count):
            _deliver(a, size)
    finally:
        cluster.start_gateway(c, wait=False)
        started = time.perf_counter()
    done = _wait(lambda: _applied(c, origin) >= before + count, max(120, count), f"{c.name} to catch up", 0.05)
    seconds = max(done - started, 1e-3)
    return Result("replication-catchup", count, 0, round(seconds, 2), round(count / seconds, 1), 0.0, 0.0, 0.0)


def _worker_peak_mb(gateway: object) -> float:
    """Peak memory of the largest process of the gateway's Celery worker (supervise -> celery -> its pool)."""
    from bench import harness

    celery = harness.children(gateway.worker.pid) if gateway.worker.pid else []
    return harness.peak_rss_mb(celery[0]) if celery else 0.0


def lag(cluster: object, samples: int, size: int) -> tuple[Result, Result]:
    a, _, c = cluster.gateways
    local, lags, errors = [], [], 0
    started = time.perf_counter()
    for _ in range(samples):
        delivery_id, took = _deliver(a, size)
        stored = time.perf_counter()
        local.append(took)
        try:
            seen = _wait(
                lambda d=delivery_id: c.scalar("SELECT 1 FROM mailboxes_message WHERE delivery_id = %s", d),
                timeout=60,
                what="a delivery to reach gw-c",
            )
        except RuntimeError:
            errors += 1
            continue
        lags.append(seen - stored)
    wall = time.perf_counter() - started

    def result(name: str, values: list[float], errors: int) -> Result:
        return Result(
            name,
            len(values),
            errors,
            round(wall, 2),
            round(len(values) / wall, 1),
            round(statistics.median(values) * 1000, 2) if values else 0.0,
            round(_percentile(values, 0.99) * 1000, 2),
            0.0,
        )

    return result("deliver-local", local, 0), result("replication-lag", lags, errors)


def _compare(result: Result, baseline: Result, ratio: float | None) -> None:
    """The baseline's figures next to the result's, as ``bench.harness.table`` shows them."""
    result.baseline, result.ratio = baseline.scenario, ratio
    for name, value in (("baseline_rps", baseline.rps), ("baseline_p50_ms", baseline.p50_ms)):
        if hasattr(result, name):
            setattr(result, name, value)
    if hasattr(result, "baseline_p99_ms"):
        result.baseline_p99_ms = baseline.p99_ms


def _note(result: Result, text: str) -> None:
    if hasattr(result, "notes"):
        result.notes = text


def _register(cluster: object, gateway: object) -> None:
    """The bench mailbox, registered with the mns SDK (the bench needs the mailbox only, not the access token: a
    gateway that confirms the name a moment after the handshake is fine here)."""
    from mns_client.protocol.errors import MNSError

    try:
        cluster.client(0, gateway).register(MAILBOX)
    except MNSError as exc:
        if exc.code != "mailbox_not_found":
            raise
        print(f"  (registration: {exc.code}; waiting for the network to confirm the name)", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--scale" in argv:  # the network past what fits here as live gateways: bench.network_scale
        from bench import network_scale

        network_scale.main([arg for arg in argv if arg != "--scale"])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", action="store_true", help="1 000 000 names, 20 gateways: bench.network_scale")
    parser.add_argument("--ops", type=int, default=int(os.environ.get("MNS_BENCH_REPLICATION_OPS", "300")))
    parser.add_argument("--lag-samples", type=int, default=int(os.environ.get("MNS_BENCH_REPLICATION_SAMPLES", "50")))
    parser.add_argument("--size", type=int, default=KIB, help="ciphertext bytes per delivery")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs) under var/bench/")
    args = parser.parse_args(argv)
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("bench.replication needs PostgreSQL: set DATABASE_URL=postgres://user@host:port/any-database")

    from testsupport.gateways import GatewayCluster

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    out_dir = REPO / "var" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    folder = out_dir / f"replication-{stamp}" if args.keep else Path(tempfile.mkdtemp(prefix="mns-bench-rep-"))
    fast = {"MNS_FEDERATION_SYNC_EVERY": "1"}
    print(f"starting three gateways in {folder} …", file=sys.stderr)
    with GatewayCluster(folder, gateways_count=3, users_count=1, pg_url=database_url, extra_env=fast) as cluster:
        a, _, c = cluster.gateways
        _register(cluster, a)
        _wait(
            lambda: c.scalar(
                "SELECT 1 FROM mailboxes_mailbox m JOIN registry_namerecord r ON r.id = m.record_id WHERE r.name = %s",
                MAILBOX,
            ),
            timeout=120,
            what="the bench mailbox to reach gw-c",
            poll=0.2,
        )
        print(f"measuring: {args.lag_samples} lag samples, then {args.ops} operations to apply …", file=sys.stderr)
        local, lagged = lag(cluster, args.lag_samples, args.size)
        baseline = bare_insert(c, args.ops, args.size)
        applied = apply_rate(cluster, args.ops, args.size)
        caught_up = catch_up(cluster, args.ops, args.size)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    _compare(applied, baseline, round(applied.rps / baseline.rps, 3) if baseline.rps else None)
    _compare(caught_up, baseline, round(caught_up.rps / baseline.rps, 3) if baseline.rps else None)
    _compare(lagged, local, round(lagged.p50_ms / local.p50_ms, 3) if local.p50_ms else None)
    _note(applied, f"gw-c's worker applies a backlog of gw-a's ops; baseline: {args.ops} bare INSERTs in gw-c's db")
    _note(caught_up, "gw-c (node + worker) back after an outage: from its start to the last op applied")
    _note(lagged, "delivery stored at gw-a -> in gw-c's db; ratio: median lag / median local delivery")
    results = [applied, caught_up, lagged]
    print(table(results))
    print(
        f"\napplied at a peer: {applied.rps:.1f} ops/s (bare INSERT {baseline.rps:.1f}/s), "
        f"{caught_up.rps:.1f} ops/s catching up after an outage; "
        f"lag gw-a -> gw-c: median {lagged.p50_ms:.0f} ms, p99 {lagged.p99_ms:.0f} ms "
        f"(local delivery median {local.p50_ms:.1f} ms, p99 {local.p99_ms:.1f} ms)"
    )
    report = out_dir / f"{stamp}-replication.json"
    report.write_text(
        json.dumps(
            {
                "when": stamp,
                "scenario": "replication",
                "ops": args.ops,
                "lag_samples": args.lag_samples,
                "size": args.size,
                "results": [r.as_dict() for r in results],
                "baselines": [r.as_dict() for r in (baseline, local)],
            },
            indent=2,
        )
    )
    print(f"written to {report}")


if __name__ == "__main__":
    main()
