"""The benchmark scenarios: how to make the n-th request of each, and which baseline it is compared with."""

import hashlib
import hmac
import json
import random
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


SCENARIOS: dict[str, Scenario] = {
    "lookup": Scenario(lookup, baseline="bare-json", seed=("names", str(LOOKUP_NAMES))),
    "bare-json": Scenario(bare_json),
    "webhook": Scenario(webhook, baseline="bare-json"),
}
