"""The benchmark scenarios: how to make the n-th request of each, and which baseline it is compared with."""

import hashlib
import hmac
import json
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.harness import REPO, Request

HOOK_FIXTURE = json.loads((REPO / "docs/vectors/maxima/11-webhook-maxima-received-nodeB.json").read_text())


@dataclass(frozen=True)
class Scenario:
    request: Callable[[int], Request]
    baseline: str | None = None
    seed: tuple[str, ...] = ()  # arguments of ``python -m bench.seed`` to run before serving


LOOKUP_NAMES = 100_000


def bare_json(n: int) -> Request:
    return "GET", "/bench/bare-json", b"", {}


def _hook_secret() -> str:
    """The secret the served gateway derives from the bench run's SECRET_KEY (see settings)."""
    import os

    secret_key = (REPO / "var" / "bench").glob("run-*/secret_key")
    path = max(secret_key, key=lambda p: p.stat().st_mtime)
    return (
        os.environ.get("MAXIMA_HOOK_SECRET")
        or hmac.new(path.read_text().strip().encode(), b"maxima-hook", hashlib.sha256).hexdigest()[:40]
    )


def webhook(n: int) -> Request:
    """A real node's MAXIMA post with a fresh msgid and timemilli, as each new message would have."""
    event = json.loads(HOOK_FIXTURE["raw_body"])
    event["data"]["msgid"] = "0x" + hashlib.sha256(f"bench-{time.time_ns()}-{n}".encode()).hexdigest().upper()
    event["data"]["timemilli"] = int(time.time() * 1000)
    headers = {"Content-type": "application/x-www-form-urlencoded", "User-Agent": "Minima/1.0"}
    return "POST", f"/maxima/hook/{_secret()}/", json.dumps(event, separators=(",", ":")).encode(), headers


_secret_cache: list[str] = []


def _secret() -> str:
    if not _secret_cache:
        _secret_cache.append(_hook_secret())
    return _secret_cache[0]


def lookup(n: int) -> Request:
    """A random one of the seeded names, so the database (not a hot cache line) answers."""
    from bench.seed import bench_names

    if not _names:
        _names.extend(bench_names(LOOKUP_NAMES))
    return "GET", f"/api/v1/names/{random.choice(_names)}", b"", {}


_names: list[str] = []


# --- Mailboxes ---------------------------------------------------------------------------------------------------
# A delivery of a 1 KiB ciphertext (a short sealed-box message), stored in the ``bench`` mailbox that the bare-insert
# baseline view makes on first use. The served gateway takes REST submissions, and its per-sender rate (one sender
# sends everything here) and quota are out of reach; they stay in the path, so their cost is measured.
os.environ.setdefault("MNS_REST_SUBMISSION", "true")
os.environ.setdefault("MNS_THROTTLE_SUBMIT", "100000000/min")
os.environ.setdefault("MNS_DELIVERY_RATE_PER_MINUTE", "100000000")
CIPHERTEXT = secrets.token_bytes(1024)
DELIVERY_HEADERS = {"Content-Type": "application/json"}


def _delivery_body() -> bytes:
    return json.dumps({"id": secrets.token_urlsafe(24), "scheme": "nacl-sealedbox-v1", "ciphertext": _hex()}).encode()


def _hex() -> str:
    return "0x" + CIPHERTEXT.hex().upper()


def bare_insert(n: int) -> Request:
    """The same body as deliver-rest, its ciphertext stored by one durable INSERT and nothing else."""
    return "POST", "/bench/bare-insert", _delivery_body(), DELIVERY_HEADERS


def deliver_rest(n: int) -> Request:
    """``POST /api/v1/names/bench/messages``: checked, deduplicated, counted against the quota, stored."""
    return "POST", "/api/v1/names/bench/messages", _delivery_body(), DELIVERY_HEADERS


def deliver_maxima(n: int) -> Request:
    """A node's MAXIMA webhook post carrying an ``mns`` ``deliver``: the hook stores the event, then (in the same
    request, as the worker would) the handler stores the message and queues the receipt."""
    deliver = {
        "v": 1,
        "type": "deliver",
        "id": secrets.token_urlsafe(24),
        "to": "bench",
        "scheme": "nacl-sealedbox-v1",
        "ciphertext": _hex(),
    }
    event = json.loads(HOOK_FIXTURE["raw_body"])
    event["data"]["application"] = "mns"
    event["data"]["data"] = "0x" + json.dumps(deliver, separators=(",", ":")).encode().hex().upper()
    event["data"]["msgid"] = "0x" + hashlib.sha256(f"bench-{time.time_ns()}-{n}".encode()).hexdigest().upper()
    event["data"]["timemilli"] = int(time.time() * 1000)
    headers = {"Content-type": "application/x-www-form-urlencoded", "User-Agent": "Minima/1.0"}
    return "POST", f"/bench/maxima-hook/{_secret()}/", json.dumps(event, separators=(",", ":")).encode(), headers


SCENARIOS: dict[str, Scenario] = {
    "bare-insert": Scenario(bare_insert),
    "deliver-rest": Scenario(deliver_rest, baseline="bare-insert"),
    "deliver-maxima": Scenario(deliver_maxima, baseline="bare-insert"),
    "lookup": Scenario(lookup, baseline="bare-json", seed=("names", str(LOOKUP_NAMES))),
    "bare-json": Scenario(bare_json),
    "webhook": Scenario(webhook, baseline="bare-json"),
}
