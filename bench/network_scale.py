"""``python -m bench.replication --scale`` (or ``python -m bench.network_scale``): the MNS network at a size that
does not fit on one machine as live gateways, measured where it can be and simulated where it must be.

What is **measured** in this process, on this machine, in this run:

- the reconciliation protocol itself (``mns_client.protocol.reconcile``) between simulated gateways, each a real
  ``Tree`` over ``--names`` (1 000 000) names: the exact requests, answers, rounds and bytes of a round with
  ``--difference`` (0.1 %) of the names differing, and of a new peer's round (which asks for whole subtrees);
- the CPU a receiving gateway spends per name it takes from a snapshot: the owner's signature checked
  (``SignedStatement.verify``, RSA-1024) and the statement parsed, on real signed statements;
- the bytes of one name on the wire (a real signed statement as a snapshot item carries it).

What is **simulated** from measured models:

- Maxima sends: ``simnet.sending.SendTiming`` (measured on real Minima 1.0.45 nodes: 0.03 s for 1 KB, 0.5 s for
  60 KB, 8.5-10 s for 245 KB, ~30 sends/s alone and ~52/s with 4 senders);
- HTTPS bulk transfer: ``--https-mbps`` (a conservative figure for a gateway's link; the snapshot endpoint's own
  rate on this machine is in the closing note of issue #20);
- ``--gateways`` (20) gateways: anti-entropy spreading a difference by random pairwise rounds (each gateway
  reconciles with one random peer per period), with each pair's cost the measured pairwise round's; a claim's
  latency as the time until a majority's acks are back, each send through its node's pipeline.

It prints one table and writes ``var/bench/<date>-network-scale.json``; ``--project`` adds the same figures for
100 gateways and 10 000 000 names from the measured per-item costs (``docs/scaling.md``). Nothing here is a test.
"""

import argparse
import json
import math
import random
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from bench.harness import REPO
from mns_client.protocol import reconcile
from mns_client.protocol.codecs import canonical_json, public_key_hex
from mns_client.protocol.crypto import generate_maxima_keypair, maxsign
from mns_client.protocol.statements import NameStatement, SignedStatement
from simnet.sending import FULL_BYTES, SendTiming

MAXIMA_SENDERS = 4  # concurrent senders a gateway runs per node (the measured sweet spot: ~52/s)
CLAIM_BYTES = 700  # a claim message with its owner key
ACK_BYTES = 120
PROCESS_SECONDS = 0.05  # a peer's webhook → worker → answer queued, at rest (the Maxima end-to-end bench's p50)


@dataclass
class Figures:
    names: int
    gateways: int
    difference: int
    item_bytes: int
    verify_ms_per_item: float
    round_bytes: int
    round_requests: int
    round_rounds: int
    round_compute_s: float
    new_peer_reconcile_bytes: int
    new_peer_snapshot_bytes: int
    new_peer_https_s: float
    new_peer_maxima_s: float
    new_peer_verify_s: float
    spread_periods: float
    spread_bytes: int
    same_round_bytes: int
    claim_p50_s: float
    claim_p99_s: float


# ------------------------------------------------------------------------------------------------- measured


def signed_statements(count: int) -> list[SignedStatement]:
    """``count`` real statements by a few real owners (RSA-1024), for sizes and verification costs."""
    owners = [generate_maxima_keypair() for _ in range(4)]
    gateway = public_key_hex(generate_maxima_keypair()[1])
    made = []
    for n in range(count):
        private, public = owners[n % len(owners)]
        statement = NameStatement(
            v=1, op="register", name=f"name{n:07d}", owner=public_key_hex(public), seq=1,
            issued_at=1_764_000_000_000 + n, gateway=gateway, box_key="0x" + f"{n:064X}",
        )  # fmt: skip
        made.append(SignedStatement(statement=statement, signature=maxsign(private, statement.canonical())))
    return made


def item_bytes(statements: list[SignedStatement]) -> int:
    """A name as a snapshot carries it: its key, and the owner-signed statement."""
    sizes = [len(canonical_json({"key": s.statement.name, "item": s.to_dict()})) for s in statements]
    return round(statistics.mean(sizes))


def verify_ms(statements: list[SignedStatement]) -> float:
    started = time.perf_counter()
    for signed in statements:
        SignedStatement.from_dict(signed.to_dict()).verify()
    return 1000 * (time.perf_counter() - started) / len(statements)


def tree_pairs(names: int, rng: random.Random) -> list[tuple[str, bytes]]:
    return [(f"name{n:07d}", rng.randbytes(32)) for n in range(names)]


def pairwise_round(holder: reconcile.Tree, asker: reconcile.Tree) -> tuple[reconcile.Difference, int, int, float]:
    """One reconciliation round of ``asker`` against ``holder`` as the wire carries it: the difference, the bytes
    both ways (compact JSON, as the endpoints send), the requests, and the seconds both sides computed."""
    sent = {"bytes": 0, "requests": 0}

    def ask(prefixes: list[str]) -> dict[str, Any]:
        request = canonical_json({"prefixes": prefixes})
        answer = reconcile.answer(holder, reconcile.check_prefixes(json.loads(request)["prefixes"]))
        sent["bytes"] += len(request) + len(canonical_json({"nodes": answer}))
        sent["requests"] += 1
        return answer

    started = time.perf_counter()
    difference = reconcile.find_missing(asker, ask)
    return difference, sent["bytes"], sent["requests"], time.perf_counter() - started


# ------------------------------------------------------------------------------------------------ simulated


def maxima_seconds(total_bytes: int, *, nodes: int = 1, timing: SendTiming | None = None) -> float:
    """Bulk bytes over Maxima through ``nodes`` nodes, in the messages that carry the most per second under the
    measured send model (``MAXIMA_SENDERS`` senders per node)."""
    timing = timing or SendTiming()
    best = max(range(5_000, FULL_BYTES + 1, 5_000), key=lambda size: size * timing.rate(MAXIMA_SENDERS, size))
    per_node = best * timing.rate(MAXIMA_SENDERS, best)
    return total_bytes / (per_node * nodes)


def spread(gateways: int, rng: random.Random, trials: int = 200) -> tuple[float, float, float]:
    """Anti-entropy spreading what one gateway had alone: each period, every gateway reconciles with one peer
    chosen at random (both end up with the union). The means over ``trials`` of the periods until every gateway
    holds it, of the rounds that carried the difference (one side held it, the other did not) and of the rounds
    that found nothing (both the same: one request for the root)."""
    periods, carrying, idle = [], [], []
    for _ in range(trials):
        holding, count, full, empty = {0}, 0, 0, 0
        while len(holding) < gateways:
            count += 1
            for gateway in range(gateways):
                peer = rng.randrange(gateways - 1)
                peer += peer >= gateway
                if (gateway in holding) != (peer in holding):
                    full += 1
                    holding |= {gateway, peer}
                else:
                    empty += 1
        periods.append(count)
        carrying.append(full)
        idle.append(empty)
    return statistics.mean(periods), statistics.mean(carrying), statistics.mean(idle)


def claim_latency(gateways: int, rng: random.Random, trials: int = 2000) -> tuple[float, float]:
    """From a claim queued to a majority of acks back: the claimant's node sends the claim to every peer through
    its pipeline (``MAXIMA_SENDERS`` at a time), each peer processes it and sends its ack through its own node."""
    timing = SendTiming()
    majority = gateways // 2 + 1
    results = []
    for _ in range(trials):
        lanes = [0.0] * MAXIMA_SENDERS
        arrivals = []
        for _peer in range(gateways - 1):
            lane = min(range(MAXIMA_SENDERS), key=lanes.__getitem__)
            serial = timing.serial_seconds(CLAIM_BYTES, waiting=MAXIMA_SENDERS - 1)
            lanes[lane] += max(timing.seconds(CLAIM_BYTES), serial) * rng.uniform(0.7, 1.6)
            ack = PROCESS_SECONDS * rng.uniform(0.5, 3) + timing.seconds(ACK_BYTES) * rng.uniform(0.7, 1.6)
            arrivals.append(lanes[lane] + ack)
        arrivals.sort()
        results.append(arrivals[majority - 2])  # the claimant's own ack counts: majority - 1 peers
    results.sort()
    return statistics.median(results), results[int(len(results) * 0.99)]


# ------------------------------------------------------------------------------------------------------ run


def measure(names: int, gateways: int, fraction: float, https_mbps: float, seed: int) -> Figures:
    rng = random.Random(seed)
    statements = signed_statements(200)
    per_item = item_bytes(statements)
    verify = verify_ms(statements)
    pairs = tree_pairs(names, rng)
    difference = max(1, round(names * fraction))
    holder = reconcile.Tree(pairs)
    changed = set(rng.sample(range(names), difference))
    asker = reconcile.Tree(
        (key, rng.randbytes(32) if n in changed else hashed) for n, (key, hashed) in enumerate(pairs)
    )
    found, round_bytes, requests, compute = pairwise_round(holder, asker)
    if sorted(found.keys) != sorted(pairs[n][0] for n in changed):
        raise RuntimeError("the round did not find exactly the names that differ")
    fresh, fresh_bytes, _fresh_requests, _ = pairwise_round(holder, reconcile.Tree([]))
    if sum(holder.fingerprint(prefix).count for prefix in fresh.prefixes) != names:
        raise RuntimeError("a new peer's round did not ask for every name")
    snapshot = names * per_item
    claim_p50, claim_p99 = claim_latency(gateways, rng)
    periods, carrying, idle = spread(gateways, rng)
    _same, same_bytes, _requests, _ = pairwise_round(holder, holder)
    return Figures(
        names=names,
        gateways=gateways,
        difference=difference,
        item_bytes=per_item,
        verify_ms_per_item=round(verify, 3),
        round_bytes=round_bytes,
        round_requests=requests,
        round_rounds=found.rounds,
        round_compute_s=round(compute, 2),
        new_peer_reconcile_bytes=fresh_bytes,
        new_peer_snapshot_bytes=snapshot,
        new_peer_https_s=round(snapshot * 8 / (https_mbps * 1e6), 1),
        new_peer_maxima_s=round(maxima_seconds(snapshot), 1),
        new_peer_verify_s=round(names * verify / 1000, 1),
        spread_periods=round(periods, 2),
        spread_bytes=round(round_bytes * carrying + same_bytes * idle),
        same_round_bytes=same_bytes,
        claim_p50_s=round(claim_p50, 2),
        claim_p99_s=round(claim_p99, 2),
    )


def _requests(difference: int, names: int) -> tuple[int, int]:
    """A round's requests and levels at another size: each level of the trie asks about the differing nodes of
    the level above (at most 16^level, at most the difference), ``reconcile.MAX_PREFIXES`` to a request."""
    levels = max(1, math.ceil(math.log(max(names / reconcile.LEAF_ITEMS, 1), 16)) + 1)
    requests = sum(math.ceil(min(16**level, difference) / reconcile.MAX_PREFIXES) for level in range(levels))
    return requests, levels


def project(measured: Figures, names: int, gateways: int, https_mbps: float, seed: int) -> Figures:
    """The same figures at another size, from the measured per-item costs: bytes and verification scale with the
    items; a round's bytes with the difference times the trie's depth (log16 of the size), from the measured one."""

    rng = random.Random(seed)
    difference = max(1, round(names * measured.difference / measured.names))
    depth = math.log(names, 16) / math.log(measured.names, 16)
    round_bytes = round(measured.round_bytes * (difference / measured.difference) * depth)
    snapshot = names * measured.item_bytes
    claim_p50, claim_p99 = claim_latency(gateways, rng)
    periods, carrying, idle = spread(gateways, rng, trials=100)
    requests, levels = _requests(difference, names)
    model_then, _ = _requests(measured.difference, measured.names)
    requests = round(requests * measured.round_requests / model_then)  # calibrated by the measured round
    return Figures(
        names=names,
        gateways=gateways,
        difference=difference,
        item_bytes=measured.item_bytes,
        verify_ms_per_item=measured.verify_ms_per_item,
        round_bytes=round_bytes,
        round_requests=requests,
        round_rounds=levels,
        round_compute_s=round(measured.round_compute_s * difference / measured.difference, 2),
        new_peer_reconcile_bytes=measured.new_peer_reconcile_bytes,
        new_peer_snapshot_bytes=snapshot,
        new_peer_https_s=round(snapshot * 8 / (https_mbps * 1e6), 1),
        new_peer_maxima_s=round(maxima_seconds(snapshot), 1),
        new_peer_verify_s=round(names * measured.verify_ms_per_item / 1000, 1),
        spread_periods=round(periods, 2),
        spread_bytes=round(round_bytes * carrying + measured.same_round_bytes * idle),
        same_round_bytes=measured.same_round_bytes,
        claim_p50_s=round(claim_p50, 2),
        claim_p99_s=round(claim_p99, 2),
    )


def _human(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _mb(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"


def render(rows: list[tuple[str, Figures]]) -> str:
    lines = [
        "| figure | " + " | ".join(label for label, _ in rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]

    def row(title: str, value: Any) -> None:
        lines.append(f"| {title} | " + " | ".join(value(f) for _, f in rows) + " |")

    row("names, gateways", lambda f: f"{f.names:,}, {f.gateways}")
    row("a name on the wire (signed statement)", lambda f: f"{f.item_bytes} B")
    row("anti-entropy round, names differing", lambda f: f"{f.difference:,}")
    row("… its bytes (both ways)", lambda f: _mb(f.round_bytes))
    row("… its requests (each one round trip)", lambda f: f"{f.round_requests}")
    row("… its compute (both sides, one core)", lambda f: _human(f.round_compute_s))
    row("… bytes of the full set, for comparison", lambda f: _mb(f.names * f.item_bytes))
    row("new peer: reconciliation bytes", lambda f: _mb(f.new_peer_reconcile_bytes))
    row("new peer: snapshot bytes", lambda f: _mb(f.new_peer_snapshot_bytes))
    row("new peer: over HTTPS (transfer)", lambda f: _human(f.new_peer_https_s))
    row("new peer: over Maxima, one node", lambda f: _human(f.new_peer_maxima_s))
    row("new peer: signatures checked (one core)", lambda f: _human(f.new_peer_verify_s))
    row("a difference reaches every gateway (periods)", lambda f: f"{f.spread_periods}")
    row("… network bytes meanwhile (all rounds)", lambda f: _mb(f.spread_bytes))
    row("a round that finds nothing", lambda f: f"{f.same_round_bytes} B")
    row("claim: majority's acks back, p50 / p99", lambda f: f"{f.claim_p50_s} s / {f.claim_p99_s} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--gateways", type=int, default=20)
    parser.add_argument("--difference", type=float, default=0.001, help="share of names differing (0.1 %%)")
    parser.add_argument("--https-mbps", type=float, default=100.0, help="the bulk link's megabits a second")
    parser.add_argument("--project", action="store_true", help="also 100 gateways and 10 000 000 names")
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    measured = measure(args.names, args.gateways, args.difference, args.https_mbps, args.seed)
    rows = [(f"measured ({args.names:,})", measured)]
    if args.project:
        rows.append(("projected (10,000,000)", project(measured, 10_000_000, 100, args.https_mbps, args.seed)))
    print(render(rows))
    print(f"\n(in {time.perf_counter() - started:.0f} s; send model {SendTiming()})")
    out = REPO / "var" / "bench" / f"{datetime.now(UTC):%Y-%m-%dT%H-%M-%S}-network-scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({label: asdict(figures) for label, figures in rows}, indent=1))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
