"""``python -m bench.handshake``: complete handshakes per second, against bare-json requests in the same run.

One handshake = ``POST /api/v1/handshakes`` → the owner's answer posted by the node's webhook (as node 0 would
post it) → a real Celery worker judges it and sends the verdict through simnet node 0 to node 1 → the client polls
``GET /api/v1/handshakes/{id}`` until verified → ``POST …/session`` with the verifier. Each connection works on its
own name, owned by a fresh key. The figure is flows per second (and each flow's latency, issue to token); the
baseline is the cheapest Django answer, so the ratio says how many bare requests a handshake costs.

Served as ``bench`` serves everything: gunicorn (sync workers) on loopback, SQLite unless DATABASE_URL is set; the
broker is Redis when REDIS_URL is set, else the embedded filesystem broker (which polls, so latency is higher).
"""

import argparse
import http.client
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import harness, pipeline, scenarios

HOOK_SECRET = "bench-handshake-" + "h" * 32
POLL_SECONDS = 0.02
FLOW_TIMEOUT = 30.0


@dataclass(frozen=True)
class Owner:
    name: str
    key: str


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--out", type=Path, help="write the results here too (as JSON)")
    args = parser.parse_args()

    from simnet import SimNetwork

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    out_dir = harness.REPO / "var" / "bench"
    var_dir = out_dir / f"run-{stamp}-handshake"
    var_dir.mkdir(parents=True)
    with SimNetwork(nodes=2, block_interval=1.0) as net:
        gateway_node, user_node = net.nodes
        env = _env(var_dir, gateway_node.rpc_url, gateway_node.address)
        harness.prepared(env)
        owners = _seed(env, args.connections, gateway_node.publickey_hex)
        with (
            pipeline.background(env, var_dir / "worker.log", concurrency=args.worker_concurrency),
            harness.gunicorn(env, workers=args.workers) as (port, server),
        ):
            # not measured: each worker's first requests import the URL conf (seconds on a loaded machine)
            harness.load("warm-up", port, server.pid, _bare_json, connections=args.connections, seconds=3)
            baseline = harness.load(
                "bare-json",
                port,
                server.pid,
                _bare_json,
                connections=args.connections,
                seconds=args.seconds,
            )
            _flow(port, owners[0], user_node.address)  # warm up: the worker is up and answering
            result = _load(port, server.pid, owners, user_node.address, seconds=args.seconds)
    result.baseline, result.ratio = "bare-json", round(result.rps / baseline.rps, 4) if baseline.rps else None
    print(harness.table([baseline, result]))
    report = out_dir / f"{stamp}-handshake.json"
    results = [baseline.as_dict(), result.as_dict()]
    report.write_text(json.dumps({"when": stamp, "connections": args.connections, "results": results}, indent=2))
    if args.out:
        args.out.write_text(report.read_text())
    print(f"\nhandshakes/s = completed flows per second; p50/p99 = one flow, issue to token. Written to {report}")


def _bare_json(n: int) -> harness.Request:
    """The baseline request for the Python client here (``bench`` itself sends it with wrk)."""
    return "GET", "/bench/bare-json", b"", {}


def _env(var_dir: Path, rpc_url: str, address: str) -> dict[str, str]:
    return harness.bench_env(
        var_dir,
        MINIMA_RPC_URL=rpc_url,
        MNS_MAXIMA_ADDRESS=address,
        MAXIMA_HOOK_SECRET=HOOK_SECRET,
        MNS_HANDSHAKE_OPEN_PER_NAME="100",  # the API's and the hook's limits: already high in bench_env
    )


def _seed(env: dict[str, str], count: int, gateway_key: str) -> list[Owner]:
    """One active name per connection, each held by a fresh key (in this process, on the bench's database)."""
    os.environ.update(env)
    import django

    django.setup()
    from mns_client.protocol.codecs import public_key_hex, to_hex
    from mns_client.protocol.crypto import box_keypair, generate_maxima_keypair, maxsign
    from mns_client.protocol.statements import NameStatement, SignedStatement
    from registry import services

    owners = []
    for n in range(count):
        private, public = generate_maxima_keypair()
        name, key = f"bench-{secrets.token_hex(4)}-{n}", public_key_hex(public)
        statement = NameStatement(
            op="register",
            name=name,
            owner=key,
            seq=1,
            box_key=to_hex(box_keypair()[1]),
            gateway=gateway_key,
            issued_at=int(time.time() * 1000),
        )
        signed = SignedStatement(statement, maxsign(private, statement.canonical()))
        services.name_hold(signed=signed, gateway_key=gateway_key, source="api")
        services.name_activate(name=name)
        owners.append(Owner(name=name, key=key))
    return owners


def _load(port: int, server_pid: int, owners: list[Owner], reply_to: str, *, seconds: float) -> harness.Result:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def connection(owner: Owner) -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            ok = _flow(port, owner, reply_to)
            with lock:
                latencies.append(time.perf_counter() - started) if ok else None
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=connection, args=(owner,), daemon=True) for owner in owners]
    wall_started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall_started
    latencies.sort()
    count = len(latencies)
    return harness.Result(
        scenario="handshake",
        requests=count,
        errors=errors[0],
        seconds=round(wall, 2),
        rps=round(count / wall, 2),
        p50_ms=round(latencies[count // 2] * 1000, 2) if count else 0.0,
        p99_ms=round(latencies[min(count - 1, int(count * 0.99))] * 1000, 2) if count else 0.0,
        peak_rss_mb=harness.peak_rss_mb(server_pid),
    )


def _flow(port: int, owner: Owner, reply_to: str) -> bool:
    """One whole handshake; False if any step was refused or it did not verify in time."""
    from mns_client.protocol.handshake import Answer, new_verifier, verifier_hash

    verifier = new_verifier()
    status, started = _call(port, "POST", "/api/v1/handshakes", _json(owner.name, verifier_hash(verifier)))
    if status != 201:
        return False
    answer = Answer(challenge=started["id"], code=started["code"], reply_to=reply_to).to_bytes()
    status, _ = _call(port, "POST", f"/maxima/hook/{HOOK_SECRET}/", _webhook(owner.key, answer))
    if status != 200:
        return False
    deadline = time.monotonic() + FLOW_TIMEOUT
    while (state := _call(port, "GET", f"/api/v1/handshakes/{started['id']}")[1].get("status")) == "pending":
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)
    if state != "verified":
        return False
    body = json.dumps({"verifier": verifier}).encode()
    return _call(port, "POST", f"/api/v1/handshakes/{started['id']}/session", body)[0] == 201


def _json(name: str, verifier_hash: str) -> bytes:
    return json.dumps({"name": name, "purpose": "read", "verifier_hash": verifier_hash}).encode()


def _webhook(sender: str, data: bytes) -> bytes:
    """A node's MAXIMA post (the fixture's shape) of a message from ``sender``, with a fresh msgid and time."""
    event = json.loads(scenarios.HOOK_FIXTURE["raw_body"])
    event["data"].update(
        {
            "from": sender,
            "application": "mns",
            "data": "0x" + data.hex().upper(),
            "msgid": "0x" + secrets.token_hex(32).upper(),
            "timemilli": int(time.time() * 1000),
        }
    )
    return json.dumps(event, separators=(",", ":")).encode()


def _call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        data = reply.read()
        return reply.status, json.loads(data) if data else None
    except (OSError, ValueError):
        return 0, {}
    finally:
        conn.close()


if __name__ == "__main__":
    main()
