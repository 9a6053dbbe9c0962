"""The running stack and the traffic a fault test sends through it, with the exact count at the end.

A delivery is *acknowledged* when the gateway said ``stored``: a receipt over Maxima, or a 2xx to a REST
submission. It is *refused* when the gateway said so (a ``refused`` receipt, a 4xx other than 429). Anything else
(no receipt yet, a 429, a 5xx, a connection error) is unanswered, and the sender does what a client does: sends
the same delivery (the same id) again, until it has an answer. At the end every acknowledged delivery is in the
mailbox exactly once, and nothing refused is stored.
"""

import contextlib
import json
import os
import secrets
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from django.db import close_old_connections, connection

from mailboxes import selectors
from mailboxes.models import Mailbox, Message
from mns_client.protocol import batch
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.mailbox import Deliver, new_delivery_id
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork
from simnet.node import SimNode
from simnet.testing import WebhookReceiver
from testsupport.processes import RedisServer, children, wait_for

UNKNOWN = "nobody-here"  # every 20th delivery goes to a name that does not exist: it must be refused, not stored


@dataclass
class Stack:
    net: SimNetwork
    redis: RedisServer
    web_url: str
    hook_secret: str
    supervisor_pid: int
    logs: dict[str, Path]
    sender_inbox: WebhookReceiver
    env: dict[str, str]
    tmp: Path

    @property
    def gateway_node(self) -> SimNode:
        return self.net.nodes[0]

    @property
    def sender_node(self) -> SimNode:
        return self.net.nodes[1]

    @property
    def hook_url(self) -> str:
        return f"{self.web_url}/maxima/hook/{self.hook_secret}/"

    def worker_pid(self) -> int | None:
        """The Celery main process under the supervisor (it changes when the worker is restarted)."""
        found = children(self.supervisor_pid)
        return found[0] if found else None

    def pool_children(self) -> list[int]:
        pid = self.worker_pid()
        return children(pid) if pid else []

    def queued(self) -> int:
        """Tasks waiting in the broker's queue (what an earlier fault left behind)."""
        try:
            with redis.Redis.from_url(self.redis.url, socket_timeout=5) as client:
                return int(client.llen("celery"))
        except redis.RedisError:
            return -1


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def post(url: str, body: bytes, *, timeout: float = 30, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One HTTP POST: (status, JSON body or None, headers); status 0 when the connection failed."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, (json.loads(reply.read() or b"null"), dict(reply.headers))
    except urllib.error.HTTPError as refused:
        raw = refused.read()
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        return refused.code, (data, dict(refused.headers))
    except (OSError, ValueError):
        return 0, (None, {})


@dataclass
class Sent:
    id: str
    to: str
    via: str  # "maxima" (through the sender's node), "hook" (posted to the hook as the node would), "rest"
    body: dict[str, Any]
    attempts: int = 0
    last_try: float = 0.0
    outcome: str = ""  # "" unanswered, "stored", "refused"
    reason: str = ""  # a refusal's reason (a receipt's ``reason``, or the HTTP status of a REST refusal)
    acked_at: float = 0.0
    answers: Counter = field(default_factory=Counter)  # HTTP answers or send results seen, for the report


class Traffic:
    """Deliveries to one mailbox, sent over Maxima (the real path), straight to the hook, or over REST."""

    def __init__(self, stack: Stack, name: str, *, threads: int = 4) -> None:
        self.stack, self.name = stack, name
        self.sent: dict[str, Sent] = {}
        self.lock = threading.Lock()
        self._seen = 0
        self.pool = ThreadPoolExecutor(threads)
        self.hook_latencies: list[float] = []
        self.sender = MinimaRPC(stack.sender_node.rpc_url, timeout=30)

    # ---------------------------------------------------------------------------------------------- sending
    def new(self, via: str, index: int) -> Sent:
        to = UNKNOWN if index % 20 == 19 else self.name
        ident = new_delivery_id()
        if via == "rest":
            body = {"id": ident, "scheme": "nacl-sealedbox-v1", "ciphertext": to_hex(secrets.token_bytes(64))}
        else:
            body = Deliver(
                id=ident,
                to=to,
                scheme="nacl-sealedbox-v1",
                ciphertext=secrets.token_bytes(64),
                reply_to=self.stack.sender_node.address,
            ).to_dict()
        item = Sent(ident, to, via, body)
        with self.lock:
            self.sent[ident] = item
        return item

    def send(self, item: Sent) -> None:
        item.attempts += 1
        item.last_try = time.monotonic()
        try:
            {"maxima": self._maxima, "hook": self._hook, "rest": self._rest}[item.via](item)
        except Exception as exc:  # a send that failed is unanswered: it is sent again
            item.answers[type(exc).__name__] += 1

    def _maxima(self, item: Sent) -> None:
        reply = self.sender.maxima_send(
            to=self.stack.gateway_node.address, application="mns", data=json.dumps(item.body).encode()
        )
        item.answers["delivered" if reply.delivered else "not-delivered"] += 1

    def _hook(self, item: Sent) -> None:
        """What the node would post for a Maxima message from the sender's node."""
        event = {
            "event": "MAXIMA",
            "data": {
                "from": self.stack.sender_node.publickey_hex,
                "to": self.stack.gateway_node.publickey_hex,
                "time": "",
                "timemilli": int(time.time() * 1000),
                "random": "0x" + secrets.token_hex(32).upper(),
                "application": "mns",
                "data": to_hex(json.dumps(item.body).encode()),
                "msgid": "0x" + secrets.token_hex(32).upper(),
            },
        }
        started = time.monotonic()
        status, (_, headers) = post(self.stack.hook_url, json.dumps(event).encode(), timeout=60)
        with self.lock:
            self.hook_latencies.append(time.monotonic() - started)
        item.answers[status] += 1
        if status in (429, 503) and "Retry-After" not in headers:
            item.answers["no-retry-after"] += 1

    def _rest(self, item: Sent) -> None:
        url = f"{self.stack.web_url}/api/v1/names/{item.to}/messages"
        status, _ = post(url, json.dumps(item.body).encode(), headers={"Content-Type": "application/json"})
        item.answers[status] += 1
        if 200 <= status < 300:
            self._answer(item, "stored")
        elif 400 <= status < 500 and status != 429:
            self._answer(item, "refused", reason=str(status))

    def _answer(self, item: Sent, outcome: str, *, reason: str = "") -> None:
        if item.outcome != "stored":  # a later "stored" (a resend after a refusal) wins; a stored one stays stored
            item.outcome, item.reason = outcome, reason
            if outcome == "stored":
                item.acked_at = time.monotonic()

    def run(self, count: int, *, over: float, via: tuple[str, ...] = ("maxima", "rest")) -> None:
        """Send ``count`` new deliveries, spread evenly over ``over`` seconds, alternating the paths."""
        started = time.monotonic()
        futures = []
        for index in range(count):
            due = started + over * index / max(count, 1)
            time.sleep(max(0.0, due - time.monotonic()))
            futures.append(self.pool.submit(self.send, self.new(via[index % len(via)], index)))
        for future in futures:
            future.result()

    # ------------------------------------------------------------------------------------------- answers
    def read_receipts(self) -> None:
        requests = self.stack.sender_inbox.requests
        while self._seen < len(requests):
            request = requests[self._seen]
            self._seen += 1
            try:
                event = json.loads(request.body)
                if event.get("event") != "MAXIMA" or event["data"]["application"] != "mns":
                    continue
                # A receipt alone, or several in one batch (docs/protocol.md, "Batched replies").
                bodies = [json.loads(data) for data in batch.messages_of(from_hex(event["data"]["data"]))]
            except (ValueError, KeyError):
                continue
            for body in bodies:
                item = self.sent.get(body.get("id", "")) if body.get("type") == "receipt" else None
                if item is not None:
                    stored = body.get("status") == "stored"
                    self._answer(item, "stored" if stored else "refused", reason=str(body.get("reason", "")))

    def unanswered(self) -> list[Sent]:
        self.read_receipts()
        return [item for item in self.sent.values() if not item.outcome]

    def settle(self, *, timeout: float, resend_after: float = 10.0) -> float:
        """Wait until every delivery has an answer, sending again what has none after ``resend_after`` seconds,
        doubling up to 8 times that (what a client does: a gateway behind a backlog is not sent ever more copies);
        returns how long it took."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            waiting = self.unanswered()
            if not waiting:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                sample = [(item.id, item.via, dict(item.answers)) for item in waiting[:5]]
                raise AssertionError(f"{len(waiting)} deliveries never got an answer, e.g. {sample}")
            now = time.monotonic()
            stale = [item for item in waiting if now - item.last_try > resend_after * 2 ** min(item.attempts - 1, 3)]
            for item in stale[:50]:
                # Its clock starts now, not when the busy pool gets to it: one copy in flight at a time (without
                # this, a backed-up pool was handed the same delivery every half second: 40 copies of each).
                item.last_try = now
                self.pool.submit(self.send, item)
            time.sleep(0.5)

    # --------------------------------------------------------------------------------------------- count
    def count(self) -> dict[str, Any]:
        """The exact count; returns the figures for the report."""
        close_old_connections()
        connection.close()  # the database may have been restarted under this process
        mailbox = Mailbox.objects.get(record__name=self.name)
        stored = Counter(Message.objects.filter(mailbox=mailbox).values_list("delivery_id", flat=True))
        everywhere = Counter(
            Message.objects.filter(delivery_id__in=list(self.sent)).values_list("delivery_id", flat=True)
        )
        acked = [item for item in self.sent.values() if item.outcome == "stored"]
        refused = [item for item in self.sent.values() if item.outcome == "refused"]
        lost = [item.id for item in acked if stored[item.id] != 1]
        assert not lost, f"acknowledged but not stored exactly once: {[(i, stored[i]) for i in lost[:10]]}"
        leaked = [item.id for item in refused if everywhere[item.id]]
        assert not leaked, f"refused but stored: {leaked[:10]}"
        strangers = set(stored) - set(self.sent)
        assert not strangers, f"stored but never sent: {sorted(strangers)[:10]}"
        assert max(everywhere.values(), default=1) == 1, "a delivery was stored twice"
        assert selectors.mailbox_usage(mailbox_id=mailbox.id).messages == len(stored)
        wrongly = [(item.id, item.via, item.reason, item.attempts) for item in refused if item.to != UNKNOWN]
        assert not wrongly, f"deliveries to a real mailbox were refused: {wrongly[:10]}"
        latencies = sorted(self.hook_latencies)
        figures = {
            "sent": len(self.sent),
            "acknowledged": len(acked),
            "refused": len(refused),
            "stored": sum(stored.values()),
            "attempts": sum(item.attempts for item in self.sent.values()),
            "by_path": dict(Counter(item.via for item in self.sent.values())),
        }
        if latencies:
            figures["hook_answers"] = dict(sum((Counter(i.answers) for i in self.sent.values()), Counter()))
            figures["hook_p50_ms"] = round(latencies[len(latencies) // 2] * 1000, 1)
            figures["hook_max_ms"] = round(latencies[-1] * 1000, 1)
        return figures


def measured(fn: Any) -> float:
    started = time.monotonic()
    fn()
    return time.monotonic() - started


def wait_until(condition: Any, *, timeout: float, what: str, log: Path | None = None) -> Any:
    return wait_for(condition, timeout=timeout, what=what, log=log)
