"""The scenarios that need more than one load: overload (and recovery), Maxima end to end through a real Celery
worker (throughput, webhook-to-stored latency at half rate), and memory after many deliveries.

These read the bench database directly (Django set up in this process with the run's environment) to count what
was stored: "nothing accepted lost" and "stored" are facts of the database, not of the answers.
"""

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import harness, scenarios, wrk
from bench.harness import Result
from core.processes import SENDER_THREADS, SENDS_QUEUE, celery_sender_command, celery_worker_command
from testsupport.processes import process

CELERY_CONCURRENCY = 2
DRAIN_TIMEOUT = 300.0
_django_ready: list[bool] = []


def django(env: dict[str, str]) -> None:
    if not _django_ready:
        os.environ.update(env)
        import django as dj

        dj.setup()
        _django_ready.append(True)


def django_disconnect() -> None:
    """Close this process's own database connections (the checks that count what was stored use Django here)."""
    if _django_ready:
        from django.db import connections

        connections.close_all()


def _get(port: int, path: str, headers: dict[str, str]) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path, headers=headers)
        reply = conn.getresponse()
        return json.loads(reply.read())
    finally:
        conn.close()


def ready_to_read(env: dict[str, str], port: int, ctx: scenarios.Context) -> None:
    """The read scenario's world, after a delivery scenario filled the bench mailbox: its messages analyzed (as
    autovacuum would) and the ids the reads fetch."""
    harness.seed(env, "analyze", "mailboxes_message")
    ctx.message_uids = message_uids(port, ctx)


def message_uids(port: int, ctx: scenarios.Context) -> list[str]:
    """Ids of the bench mailbox's newest messages (what the owner's client would fetch), through the API."""
    auth = {"Authorization": f"MNS-Session {ctx.session_token}"}
    page = _get(port, f"/api/v1/mailboxes/{scenarios.BENCH_NAME}/messages?limit=200", auth)
    items = page.get("results", page) if isinstance(page, dict) else page
    return [item["id"] for item in items if isinstance(item, dict) and "id" in item]


# --- Overload ------------------------------------------------------------------------------------------------


def overload(
    ctx: scenarios.Context,
    port: int,
    pid: int,
    env: dict[str, str],
    connections: int,
    seconds: float,
    *,
    label: str = "overload",
) -> list[Result]:
    """REST delivery (1 KiB) at ``connections`` (saturated: the admitted requests are all busy well before 8), then
    at ten times that from clients that honour Retry-After, then at ``connections`` again for 5 s (recovery), then
    the ten-fold load again from clients that do not (shown). Every 2xx must be a stored message. During
    the ten-fold load a probe times requests of its own, one at a time on a fresh connection each, from connect to
    answer: the p99 of those refused is the time to refusal (target 5 ms)."""
    django(env)
    lua = scenarios.SCENARIOS["deliver-rest-1k"].lua(ctx)
    saturated = Result.of_load(f"{label}-saturated", wrk.run(port, lua, connections=connections, seconds=seconds), pid)
    before = _stored()
    with RefusalProbe(port) as probe:
        load = wrk.run(port, lua, connections=10 * connections, seconds=seconds, threads=2, polite=True)
    stored = _stored() - before
    result = Result.of_load(f"{label}-{10 * connections}c", load, pid)
    recovery = Result.of_load(f"{label}-recovery", wrk.run(port, lua, connections=connections, seconds=5), pid)
    hammer = _hammer(port, lua, connections, seconds, pid, saturated, label)
    refused = sum(n for s, n in load.statuses.items() if s in (429, 503))
    other_5xx = sum(n for s, n in load.statuses.items() if s >= 500 and s != 503)
    lost = load.ok - stored
    result.baseline, result.baseline_rps = saturated.scenario, saturated.rps
    result.baseline_p50_ms, result.baseline_p99_ms = saturated.p50_ms, saturated.p99_ms
    result.ratio = round(result.rps / saturated.rps, 3) if saturated.rps else None
    result.target = ">=0.9x saturated, 429/503+Retry-After within 5 ms (p99), no other 5xx, none lost, p99 back in 5 s"
    back = recovery.p99_ms <= max(1.5 * saturated.p99_ms, saturated.p99_ms + 5)
    refusal_p99 = probe.refusal_p99_ms()
    result.met = bool(
        result.ratio is not None
        and result.ratio >= 0.9
        and other_5xx == 0
        and load.socket_errors == 0
        and load.timeouts == 0
        and lost <= 0
        and refused == load.retry_after
        and back
        and refusal_p99 is not None
        and refusal_p99 <= 5
    )
    result.notes = (
        f"2xx {load.ok}, stored {stored} (lost {max(lost, 0)}), refused 429/503 {refused} "
        f"(with Retry-After {load.retry_after}), other 5xx {other_5xx}, socket errors {load.socket_errors}, "
        f"timeouts {load.timeouts}; recovery p99 {recovery.p99_ms:.1f} ms vs saturated {saturated.p99_ms:.1f} ms; "
        f"{probe.summary()}"
    )
    return [saturated, result, recovery, hammer]


def _hammer(port: int, lua: str, connections: int, seconds: float, pid: int, saturated: Result, label: str) -> Result:
    """The same ten-fold load from clients that ignore Retry-After and ask again at once (wrk as it is): shown,
    not a target; each refusal still costs the server a parsed request and an answer."""
    load = wrk.run(port, lua, connections=10 * connections, seconds=seconds, threads=2)
    result = Result.of_load(f"{label}-{10 * connections}c-hammer", load, pid)
    result.baseline, result.baseline_rps = saturated.scenario, saturated.rps
    result.ratio = round(result.rps / saturated.rps, 3) if saturated.rps else None
    result.target = "shown: clients that ignore Retry-After"
    return result


class RefusalProbe:
    """Times requests of its own while a load runs: a GET of the bench name, one at a time, each on a fresh
    connection (connect included), a short pause between them so that it adds little load."""

    def __init__(self, port: int, pause: float = 0.02) -> None:
        self.port, self.pause = port, pause
        self.timings: list[tuple[int, float]] = []  # (status, milliseconds)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RefusalProbe":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)

    def _run(self) -> None:
        while not self.stop.wait(self.pause):
            start = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                connection.request("GET", f"/api/v1/names/{scenarios.BENCH_NAME}")
                status = connection.getresponse().status
            except OSError:
                status = 0
            finally:
                connection.close()
            self.timings.append((status, 1000 * (time.perf_counter() - start)))

    def refusal_p99_ms(self) -> float | None:
        refused = sorted(ms for status, ms in self.timings if status in (429, 503))
        return round(refused[min(len(refused) - 1, int(0.99 * len(refused)))], 2) if refused else None

    def summary(self) -> str:
        refused = sorted(ms for status, ms in self.timings if status in (429, 503))
        served = sorted(ms for status, ms in self.timings if 200 <= status < 300)
        median = f", p50 {refused[len(refused) // 2]:.2f} ms" if refused else ""
        return (
            f"probe: {len(self.timings)} requests, {len(refused)} refused (time to refusal p99 "
            f"{self.refusal_p99_ms()} ms{median}), {len(served)} served"
        )


def _stored() -> int:
    from mailboxes.models import Message

    return Message.objects.filter(mailbox__record__name=scenarios.BENCH_NAME).count()


# --- Maxima end to end -----------------------------------------------------------------------------------------


@contextmanager
def background(env: dict[str, str], log: Path, concurrency: int = CELERY_CONCURRENCY, threads: int = SENDER_THREADS):
    """The gateway's background as deployed (docs/systemd): a worker of ``concurrency`` processes that leaves the
    sends, with beat (the sweeps re-enqueue what a lost task left pending), and a sender of ``threads`` threads that
    takes them. Yields both processes."""
    worker_command = celery_worker_command(
        concurrency=concurrency, loglevel="warning", beat_schedule=log.with_suffix(".schedule"), without_sends=True
    )
    sender_command = celery_sender_command(threads=threads, loglevel="warning")
    with (
        process(worker_command, env=env, log=log) as worker,
        process(sender_command, env=env, log=log.with_suffix(".sender.log")) as sender,
    ):
        yield worker, sender


def maxima(
    env: dict[str, str],
    var_dir: Path,
    ctx: scenarios.Context,
    *,
    workers: int,
    seconds: float,
    connections: int,
    throughput: bool,
    deliveries: int,
    backlog: bool = False,
) -> list[Result]:
    """Webhook POST → InboundEvent → the Celery worker runs the ``deliver`` handler → message stored and its
    receipt in the outbox (sent through simnet node 0 to node 1, the sender)."""
    from simnet import SendTiming, SimNetwork

    results = []
    # The gateway alone: its node sends at once (maxima-node measures the gateway against a node's send rate).
    with SimNetwork(nodes=2, block_interval=1.0, send_timing=SendTiming.instant()) as net:
        gateway, sender = net.nodes
        _contacts(gateway, sender)  # receipts go to the sender's key (no reply_to): a publickey send to a contact
        env = {**env, "MINIMA_RPC_URL": gateway.rpc_url, "MNS_MAXIMA_ADDRESS": gateway.address}
        django(env)
        _clean_queue(env)
        lua = scenarios.maxima_deliver_lua(f"/maxima/hook/{ctx.hook_secret}/", sender=sender.publickey_hex)
        if backlog:
            results.append(_backlog(env, var_dir, lua, workers=workers, seconds=seconds, connections=connections))
        with (
            background(env, var_dir / "celery-worker.log") as (worker, sender_worker),
            harness.gunicorn(env, workers=workers) as (
                port,
                server,
            ),
        ):
            _wait_worker(port, lua)
            if throughput:
                end_to_end = _throughput(port, server.pid, lua, connections, seconds)
                results += end_to_end
                results.append(_latency(port, sender.publickey_hex, ctx, end_to_end[0].rps, seconds))
            if deliveries:
                results.append(_memory(port, server.pid, [worker.pid, sender_worker.pid], lua, connections, deliveries))
    return results


def _backlog(env: dict[str, str], var_dir: Path, lua: str, *, workers: int, seconds: float, connections: int) -> Result:
    """The worker's own rate, without the webhook's: deliveries posted for ``seconds`` with no worker running
    (stored, their tasks queued), then a worker started; the figure is the events done over the time from the first
    claim to the last done (the worker's start excluded)."""
    from maxima.models import InboundEvent

    first_in, _ = _marks()
    with harness.gunicorn(env, workers=workers) as (port, _server):
        deadline = time.monotonic() + 60
        while _marks()[0] == first_in and time.monotonic() < deadline:  # the web workers are up (they load lazily)
            wrk.run(port, lua, connections=1, seconds=1)
        load = wrk.run(port, lua, connections=connections, seconds=seconds)
    events = InboundEvent.objects.filter(id__gt=first_in)
    stored = events.count()
    with background(env, var_dir / "celery-worker-backlog.log"):
        drained = _drain(first_in)
    done = events.filter(status="done")
    times = done.values_list("claimed_at", "processed_at")
    start = min((c for c, _ in times), default=None)
    end = max((p for _, p in times), default=None)
    span = (end - start).total_seconds() if start and end else 0.0
    rate = round(done.count() / span, 1) if span else 0.0
    return Result(
        scenario="maxima-backlog",
        requests=stored,
        errors=load.requests - load.ok,
        seconds=round(span, 2),
        rps=rate,
        p50_ms=load.p50_ms,
        p99_ms=load.p99_ms,
        peak_rss_mb=0.0,
        target=">=500 msg/s processed",
        met=rate >= 500 and drained,
        notes=f"{stored} deliveries stored with no worker, then {done.count()} done by a worker in {span:.1f} s "
        f"(first claim to last done){'' if drained else ' (NOT drained in time)'}",
    )


def _clean_queue(env: dict[str, str]) -> None:
    """Start from an empty queue: the webhook scenario stored events (not ``mns`` messages) with no worker
    running; they would be processed first and counted against this scenario's time."""
    from maxima.models import InboundEvent

    subprocess.run(
        [sys.executable, "-m", "celery", "-A", "mns_site", "purge", "-f"],
        cwd=harness.REPO,
        env=env,
        capture_output=True,
        check=False,
    )
    InboundEvent.objects.filter(status__in=["pending", "processing"]).update(
        status="ignored", last_error="bench: left by an earlier scenario"
    )


def _broker_empty(timeout: float = DRAIN_TIMEOUT) -> bool:
    """Wait until the worker and the sender have taken every queued task (Redis broker; the embedded one is not
    looked at)."""
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("redis"):
        return True
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    deadline = time.monotonic() + timeout
    while client.llen(settings.CELERY_TASK_DEFAULT_QUEUE) + client.llen(SENDS_QUEUE) > 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _marks() -> tuple[int, int]:
    from maxima.models import InboundEvent, OutboundMessage

    last_in = InboundEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    last_out = OutboundMessage.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return last_in, last_out


def _drain(after: int, timeout: float = DRAIN_TIMEOUT) -> bool:
    from maxima.models import InboundEvent

    deadline = time.monotonic() + timeout
    waiting = InboundEvent.objects.filter(id__gt=after, status__in=["pending", "processing"])
    while waiting.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _wait_worker(port: int, lua: str) -> None:
    """One second of load, then wait until the worker has processed it: the pipeline is up and warm. Again until
    the hook stored something: on the embedded default the worker's start holds the SQLite database for seconds,
    and a warm-up that stored nothing proves nothing (the measured load then met a pipeline still starting)."""
    first, _ = _marks()
    deadline = time.monotonic() + 60
    while _marks()[0] == first:
        if time.monotonic() > deadline:
            raise RuntimeError("the hook stored none of the warm-up deliveries within 60 s")
        wrk.run(port, lua, connections=1, seconds=1)
    if not _drain(first, timeout=60):
        raise RuntimeError("the Celery worker did not process the warm-up deliveries within 60 s")


def _throughput(port: int, pid: int, lua: str, connections: int, seconds: float) -> list[Result]:
    from mailboxes.models import Message
    from maxima.models import InboundEvent, OutboundMessage

    first_in, first_out = _marks()
    load = wrk.run(port, lua, connections=connections, seconds=seconds)
    drained = _drain(first_in)
    events = InboundEvent.objects.filter(id__gt=first_in)
    done = events.filter(status="done")
    times = done.values_list("received_at", "processed_at")
    start = min(r for r, _ in times) if times else None
    end = max(p for _, p in times) if times else None
    span = (end - start).total_seconds() if start and end else 0.0
    stored = Message.objects.filter(received_at__gte=start).count() if start else 0
    receipts = OutboundMessage.objects.filter(id__gt=first_out).count()
    rate = round(done.count() / span, 1) if span else 0.0
    result = Result.of_load("maxima-e2e", load, pid)
    webhook_rate = result.rps
    result.rps = rate
    result.target = ">=500 msg/s stored; webhook answer p99 <=5 ms"
    result.met = rate >= 500 and result.p99_ms <= 5 and drained
    others = dict(Counter(events.exclude(status="done").values_list("status", flat=True)))
    sent_all = _outbox_drained(first_out)  # after the measured span: what became of the receipts
    sends = dict(Counter(OutboundMessage.objects.filter(id__gt=first_out).values_list("status", flat=True)))
    result.notes = (
        f"webhook answered {load.ok} ({webhook_rate:.0f}/s; p50/p99 above are the webhook's answer); "
        f"{done.count()} events done, {stored} messages stored, {receipts} receipts queued in {span:.1f} s"
        f"{'' if drained else ' (NOT drained in time)'}; not done: {others or 'none'}; the receipts in the "
        f"end: {sends or 'none'}{'' if sent_all else ' (the outbox NOT drained in time)'}"
    )
    return [result]


def _latency(port: int, sender: str, ctx: scenarios.Context, sustained: float, seconds: float) -> Result:
    """Deliveries at half the goal rate (250/s; half the measured sustained rate when that is below the goal, so
    that the queue does not grow without end), paced; latency = processed_at - received_at of each event."""
    from maxima.models import InboundEvent

    rate = 250.0 if sustained >= 500 else max(1.0, round(sustained / 2, 1))
    _broker_empty()  # the receipts' send tasks of the throughput run go first, or they would be measured here
    first_in, _ = _marks()
    sent, refused = _paced(port, ctx, sender, rate, seconds)
    _drain(first_in)
    delays = sorted(
        (processed - received).total_seconds() * 1000
        for received, processed in InboundEvent.objects.filter(id__gt=first_in, status="done").values_list(
            "received_at", "processed_at"
        )
    )
    count = len(delays)
    return Result(
        scenario="maxima-half-rate",
        requests=count,
        errors=refused,
        seconds=seconds,
        rps=rate,
        p50_ms=round(delays[count // 2], 1) if count else 0.0,
        p99_ms=round(delays[min(count - 1, int(count * 0.99))], 1) if count else 0.0,
        peak_rss_mb=0.0,
        target="webhook-to-stored p99 <=2000 ms",
        met=bool(count) and delays[min(count - 1, int(count * 0.99))] <= 2000 and refused == 0,
        notes=f"offered {rate}/s for {seconds:.0f} s ({sent} sent); p50/p99 = webhook received -> message stored",
    )


def _paced(port: int, ctx: scenarios.Context, sender: str, rate: float, seconds: float) -> tuple[int, int]:
    """Send deliveries at ``rate`` per second from 4 threads on a fixed schedule (no coordinated omission: a late
    request does not push the next one back)."""
    import secrets

    template = json.loads(scenarios.HOOK_FIXTURE["raw_body"])
    ciphertext = "0x" + secrets.token_bytes(scenarios.KIB).hex().upper()
    path = f"/maxima/hook/{ctx.hook_secret}/"
    counts = [0, 0]
    lock = threading.Lock()
    threads_n = 4
    start = time.monotonic() + 0.2

    def body() -> bytes:
        deliver = {"v": 1, "type": "deliver", "id": secrets.token_urlsafe(18), "to": scenarios.BENCH_NAME}
        deliver |= {"scheme": "nacl-sealedbox-v1", "ciphertext": ciphertext}
        event = json.loads(json.dumps(template))
        event["data"] |= {
            "from": sender,
            "application": "mns",
            "data": "0x" + json.dumps(deliver).encode().hex().upper(),
            "msgid": "0x" + secrets.token_hex(32).upper(),
            "timemilli": int(time.time() * 1000),
        }
        return json.dumps(event).encode()

    def run(offset: int) -> None:
        n = 0
        while True:
            due = start + (offset + n * threads_n) / rate
            if due > start + seconds:
                return
            time.sleep(max(0.0, due - time.monotonic()))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                conn.request("POST", path, body=body(), headers={"Content-type": "application/x-www-form-urlencoded"})
                ok = conn.getresponse().status == 200
            except OSError:
                ok = False
            finally:
                conn.close()
            with lock:
                counts[0 if ok else 1] += 1
            n += 1

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts[0], counts[1]


# --- Through one node, against the node's own send rate -----------------------------------------------------


def maxima_node(
    env: dict[str, str],
    var_dir: Path,
    ctx: scenarios.Context,
    *,
    workers: int,
    seconds: float,
    threads: int = SENDER_THREADS,
) -> list[Result]:
    """How many messages a second the gateway gets through one node, against that node's own send rate measured in
    the same run. Simnet's nodes send as real ones do (simnet.sending: time by size, one send pipeline per node).

    First the node alone: ``maxima send`` of a receipt's size to the sender's node from 1, 2, 4 threads and as many
    as the sender has ``threads`` (the figure the gateway is compared with). Then the gateway: deliveries over
    the webhook, offered faster than the node can send their receipts, each stored by the worker and its receipt
    sent through the node by the outbox; the rate is the receipts sent over the time from the first delivery
    received to the last receipt sent.
    """
    from simnet import SendTiming, SimNetwork

    with SimNetwork(nodes=2, block_interval=1.0, send_timing=SendTiming()) as net:
        gateway, sender = net.nodes
        _contacts(gateway, sender)  # receipts go to the sender's key (no reply_to): a publickey send to a contact
        env = {**env, "MINIMA_RPC_URL": gateway.rpc_url, "MNS_MAXIMA_ADDRESS": gateway.address}
        django(env)
        _clean_queue(env)
        log = var_dir / "celery-worker-node.log"
        with background(env, log, threads=threads), harness.gunicorn(env, workers=workers) as (port, _):
            warm_in, warm_out = _marks()
            _paced(port, ctx, sender.publickey_hex, 20.0, 2.0)  # warm: Python load, so this runs without wrk
            if not _drain(warm_in, timeout=60):
                raise RuntimeError("the Celery worker did not process the warm-up deliveries within 60 s")
            _broker_empty()
            _outbox_drained(warm_out)
            size = _receipt_size(warm_out)
            counts = sorted({1, 2, 4, threads})
            results = [_node_rate(gateway.rpc_url, sender.address, size, n, min(seconds, 5)) for n in counts]
            node_rate = results[counts.index(threads)].rps  # as many senders as the sender has threads
            first_in, first_out = _marks()
            before = (gateway.sends.sent, gateway.sends.queued)
            offered = max(10.0, round(1.5 * max(r.rps for r in results)))
            accepted, refused = _paced(port, ctx, sender.publickey_hex, offered, seconds)
            drained = _drain(first_in) and _outbox_drained(first_out)
            results.append(
                _through_node(
                    first_in, first_out, (threads, node_rate), offered, accepted, refused, drained, gateway, before
                )
            )
    return results


def _contacts(node: Any, other: Any, timeout: float = 30.0) -> None:
    from mns_client.protocol.rpc import MinimaRPC

    MinimaRPC(node.rpc_url).command("maxcontacts", action="add", contact=other.address)
    deadline = time.monotonic() + timeout
    while not any(c.publickey == other.publickey_hex for c in node.contacts):
        if time.monotonic() > deadline:
            raise RuntimeError("the sender's node did not become a contact of the gateway's node")
        time.sleep(0.1)


def _receipt_size(after: int) -> int:
    from django.db.models import Avg

    from maxima.models import OutboundMessage

    return int(OutboundMessage.objects.filter(id__gt=after).aggregate(size=Avg("size"))["size"] or 512)


def _outbox_drained(after: int, timeout: float = DRAIN_TIMEOUT) -> bool:
    from maxima.models import OutboundMessage

    deadline = time.monotonic() + timeout
    waiting = OutboundMessage.objects.filter(id__gt=after, status__in=["queued", "sending"])
    while waiting.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _node_rate(url: str, to: str, size: int, senders: int, seconds: float) -> Result:
    """``senders`` threads each sending one message after the other for ``seconds``: sends a second, latencies."""
    from mns_client.protocol.rpc import MinimaRPC

    latencies: list[float] = []
    failed = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        client = MinimaRPC(url, timeout=60)
        data = b"x" * size
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                client.maxima_send(to=to, application="mns-bench", data=data)
            except Exception:  # counted, not raised: the figure says how many failed
                with lock:
                    failed[0] += 1
                continue
            with lock:
                latencies.append((time.monotonic() - started) * 1000)

    started = time.monotonic()
    threads = [threading.Thread(target=run, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    latencies.sort()
    count = len(latencies)
    result = Result(
        scenario=f"node-send-{senders}",
        requests=count,
        errors=failed[0],
        seconds=round(wall, 2),
        rps=round(count / wall, 1) if wall else 0.0,
        p50_ms=round(latencies[count // 2], 1) if count else 0.0,
        p99_ms=round(latencies[min(count - 1, int(count * 0.99))], 1) if count else 0.0,
        peak_rss_mb=0.0,
        target="real node: ~30/s alone, 52/s with 4",
        notes=f"the gateway's node alone: maxima send of {size} bytes from {senders} thread(s)",
    )
    print(f"  {result.scenario}: {result.rps}/s p99 {result.p99_ms} ms", flush=True)
    return result


def _through_node(
    first_in: int,
    first_out: int,
    node: tuple[int, float],
    offered: float,
    accepted: int,
    refused: int,
    drained: bool,
    gateway: Any,
    before: tuple[int, int],
) -> Result:
    senders, node_rate = node
    from maxima.models import InboundEvent, OutboundMessage

    events = list(InboundEvent.objects.filter(id__gt=first_in).values_list("received_at", "processed_at"))
    sent = list(OutboundMessage.objects.filter(id__gt=first_out, status="sent").values_list("sent_at", flat=True))
    received = [r for r, _ in events]
    processed = [p for _, p in events if p is not None]
    span = (max(sent) - min(received)).total_seconds() if sent and received else 0.0
    rate = round(len(sent) / span, 1) if span else 0.0
    stored_span = (max(processed) - min(received)).total_seconds() if processed else 0.0
    sending_span = (max(sent) - min(sent)).total_seconds() if len(sent) > 1 else 0.0
    sends, queued = gateway.sends.sent - before[0], gateway.sends.queued - before[1]
    result = Result(
        scenario="maxima-through-node",
        requests=len(sent),
        errors=refused,
        seconds=round(span, 1),
        rps=rate,
        p50_ms=0.0,
        p99_ms=0.0,
        peak_rss_mb=0.0,
        baseline=f"node-send-{senders}",
        baseline_rps=node_rate,
        ratio=round(rate / node_rate, 3) if node_rate else None,
        target="the node's own rate (the node, not the gateway, is the limit)",
        met=drained and bool(node_rate) and rate >= 0.8 * node_rate,
    )
    result.notes = (
        f"sender of {senders} threads; offered {offered}/s for deliveries, {accepted} accepted ({refused} "
        f"refused); {len(sent)} receipts sent through the node in {span:.1f} s from the first delivery received "
        "(sending: "
        f"{len(sent) / sending_span if sending_span else 0:.1f}/s from the first receipt sent; the worker stored "
        f"{len(processed)} in {stored_span:.1f} s); the node's pipeline: {sends} sends, {queued} waited behind "
        f"another{'' if drained else ' (NOT drained in time)'}"
    )
    print(f"  maxima-through-node: {rate}/s against the node's {node_rate}/s ({result.notes})", flush=True)
    return result


# --- Memory ----------------------------------------------------------------------------------------------------


def _memory(port: int, server_pid: int, celery_pids: list[int], lua: str, connections: int, deliveries: int) -> Result:
    """Deliver ``deliveries`` messages over the webhook through the worker, in rounds; after each round sample
    the resident memory of every gunicorn worker and Celery process (the worker's, its pool's, the sender's).
    Growth = last sample - first."""
    from maxima.models import InboundEvent

    first_in, _ = _marks()
    samples: list[tuple[int, float, float]] = []  # (delivered, max web worker RSS, max celery process RSS)
    delivered = 0
    started = time.monotonic()
    chunk = max(2.0, min(15.0, deliveries / 400))
    while delivered < deliveries:
        wrk.run(port, lua, connections=connections, seconds=chunk)
        _drain(first_in)
        delivered = InboundEvent.objects.filter(id__gt=first_in, status="done").count()
        web = max((harness.rss_mb(p) for p in harness.children(server_pid)), default=0.0)
        celery = max((harness.rss_mb(p) for pid in celery_pids for p in [pid, *harness.children(pid)]), default=0.0)
        samples.append((delivered, web, celery))
        print(f"  memory: {delivered} delivered, web worker {web} MiB, celery {celery} MiB", flush=True)
    wall = time.monotonic() - started
    first, last = samples[0], samples[-1]
    peak_web, peak_celery = max(s[1] for s in samples), max(s[2] for s in samples)
    trend = " ".join(f"{d}:{w:.0f}/{c:.0f}" for d, w, c in [*samples[:: max(1, len(samples) // 8)], last])
    return Result(
        scenario="memory",
        requests=delivered,
        errors=0,
        seconds=round(wall, 1),
        rps=round(delivered / wall, 1),
        p50_ms=0.0,
        p99_ms=0.0,
        peak_rss_mb=peak_web,
        target="web <=120 MiB, celery <=150 MiB, no growth",
        met=peak_web <= 120 and peak_celery <= 150 and last[1] - first[1] <= 5 and last[2] - first[2] <= 5,
        notes=(
            f"after {delivered} deliveries: web worker {first[1]:.0f} -> {last[1]:.0f} MiB (peak {peak_web:.0f}), "
            f"celery {first[2]:.0f} -> {last[2]:.0f} MiB (peak {peak_celery:.0f}); "
            f"trend delivered:web/celery {trend}"
        ),
    )
