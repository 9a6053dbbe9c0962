"""``python -m bench [scenario …]`` (or ``make bench``): run the benchmarks and print one table.

Scenarios run against gunicorn (as gunicorn.conf.py serves it: gthread workers behind an admission limit) on
127.0.0.1 with the database and broker the environment names (PostgreSQL + Redis: set DATABASE_URL and REDIS_URL;
embedded SQLite otherwise, which says nothing about a real deployment). wrk loads it from a second process. Each
scenario is measured right after its baseline, served by the same gunicorn, so the ratio holds on a noisy machine.
The results also go to ``var/bench/<date>.json``. Nothing here is a test: it never fails on a time.

``--smoke`` runs three scenarios for one second each on a small seed, to prove the harness works (< 30 s).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import harness, pipeline, scenarios, wrk
from bench.harness import Result

WEB = list(scenarios.SCENARIOS)
ALL = [
    *WEB, "overload", "scale", "maxima", "maxima-backlog", "memory", "maxima-node", "node-pool", "handshake",
    "replication",
]  # fmt: skip
SMOKE = ["lookup", "deliver-rest-1k", "mailbox-read"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(ALL)}")
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario and per baseline (default 10)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3)")
    parser.add_argument(
        "--worker-class", default=None, help="gunicorn's worker class (default: gunicorn.conf.py's, gthread)"
    )
    parser.add_argument("--names", type=int, default=scenarios.LOOKUP_NAMES, help="names seeded for lookup")
    parser.add_argument(
        "--deliveries", type=int, default=100_000, help="Maxima deliveries of the memory scenario (default 100000)"
    )
    parser.add_argument(
        "--sender-threads", type=int, default=pipeline.SENDER_THREADS, help="the sender's threads in maxima-node"
    )
    parser.add_argument("--scale-names", type=int, default=1_000_000, help="names of the scale scenario's large world")
    parser.add_argument("--scale-messages", type=int, default=1_000_000, help="its stored messages")
    parser.add_argument("--smoke", action="store_true", help="three scenarios, 1 s each, 1000 names")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop gunicorn, worker and simnet
    if args.smoke:
        args.scenarios, args.seconds, args.names = args.scenarios or SMOKE, 1.0, 1000
    chosen = args.scenarios or ALL
    unknown = set(chosen) - set(ALL)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(ALL)}")
    if set(chosen) - {"maxima-node", "node-pool"}:  # these load the gateway from Python: they run without wrk
        wrk.require()

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    out_dir = harness.REPO / "var" / "bench"
    var_dir = out_dir / f"run-{stamp}"
    var_dir.mkdir(parents=True)
    env = harness.bench_env(var_dir)
    database = _database(env)
    served = f"{args.workers} {args.worker_class or 'gthread'} workers"
    print(f"bench: {database}; gunicorn {served}; wrk {args.connections} connections", flush=True)
    harness.prepared(env)
    ctx = scenarios.world(env, var_dir, names=args.names, lookups="lookup" in chosen)

    results: list[Result] = []
    web = [name for name in WEB if name in chosen]
    if "mailbox-read" in web and "deliver-rest-1k" not in web:
        web.insert(web.index("mailbox-read"), "deliver-rest-1k")  # it reads what that stored
    if web or "overload" in chosen:
        with harness.gunicorn(env, workers=args.workers, worker_class=args.worker_class) as (port, server):
            results += _web(web, ctx, port, server.pid, args, env)
            if "overload" in chosen:
                # gunicorn alone (its own admission queue refuses the excess), then the production shape: the
                # shipped HAProxy configuration in front, whose queue limit refuses in C (docs/performance.md).
                results += _stage(
                    "overload", pipeline.overload, ctx, port, server.pid, env, args.connections, args.seconds
                )
                if shutil.which("haproxy"):
                    results += _stage("overload-proxy", _overload_proxied, ctx, port, server.pid, env, args)
                else:
                    print("overload behind HAProxy: skipped, haproxy is not installed (Debian: haproxy)", flush=True)
    if "scale" in chosen:
        results += _stage("scale", _scale, env, ctx, args)
    if "maxima" in chosen or "memory" in chosen or "maxima-backlog" in chosen:
        results += _stage(
            "maxima",
            pipeline.maxima,
            env,
            var_dir,
            ctx,
            workers=args.workers,
            seconds=args.seconds,
            connections=args.connections,
            throughput="maxima" in chosen,
            deliveries=args.deliveries if "memory" in chosen else 0,
            backlog="maxima-backlog" in chosen,
        )
    if "maxima-node" in chosen:
        results += _stage(
            "maxima-node",
            pipeline.maxima_node,
            env,
            var_dir,
            ctx,
            workers=args.workers,
            seconds=args.seconds,
            threads=args.sender_threads,
        )
    if "node-pool" in chosen:
        results += _stage("node-pool", _node_pool, args, var_dir)
    if "handshake" in chosen:
        maxima = next((r for r in results if r.scenario == "maxima-e2e"), None)
        results += _stage("handshake", lambda: [_handshake(args, var_dir, maxima)])
    if "replication" in chosen:
        results += _stage("replication", _replication, env)

    print()
    print(harness.table(results))
    report = out_dir / f"{stamp}.json"
    load = os.getloadavg()
    report.write_text(
        json.dumps(
            {
                "when": stamp,
                "database": database,
                "gunicorn_workers": args.workers,
                "gunicorn_worker_class": args.worker_class or "gthread",
                "connections": args.connections,
                "seconds": args.seconds,
                "load_average": [round(x, 2) for x in load],
                "cpus": os.cpu_count(),
                "results": [r.as_dict() for r in results],
            },
            indent=2,
        )
    )
    print(f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; written to {report}")


def _web(
    names: list[str], ctx: scenarios.Context, port: int, pid: int, args: argparse.Namespace, env: dict[str, str]
) -> list[Result]:
    """Each scenario right after its baseline; a baseline on its own only when nothing chosen is measured
    against it."""
    wrk.run(port, scenarios.bare_json(ctx), connections=args.connections, seconds=2)  # every worker warm
    results = []
    compared = {scenarios.SCENARIOS[name].baseline for name in names}
    for name in names:
        scenario = scenarios.SCENARIOS[name]
        if name in compared:
            continue
        try:
            if name == "mailbox-read":
                pipeline.ready_to_read(env, port, ctx)
            baseline = None
            if scenario.baseline:
                lua = scenarios.SCENARIOS[scenario.baseline].lua(ctx)
                baseline = measure(scenario.baseline, lua, port, pid, args)
                results.append(baseline)
            result = measure(name, scenario.lua(ctx), port, pid, args)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:  # one scenario failed: say so, go on
            result = Result(name, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, notes=f"FAILED: {type(exc).__name__}: {exc}"[:300])
            baseline = None
        judge(result, baseline, scenario.target)
        results.append(result)
        print(f"  {name}: {result.rps:.1f}/s p99 {result.p99_ms:.1f} ms {result.notes[:100]}", flush=True)
    return results


_warm: set[str] = set()


def measure(name: str, lua: str, port: int, pid: int, args: argparse.Namespace, *, connections: int = 0) -> Result:
    warm(name, lua, port, args)
    before = harness.early_answers(port)
    load = wrk.run(port, lua, connections=connections or args.connections, seconds=args.seconds)
    result = Result.of_load(name, load, pid)
    after = harness.early_answers(port)
    # Answered before Django? A cold cache measures Django's answer, not the early one.
    share = ""
    if before is None or after is None:
        share = "answered early: unknown (/metrics did not answer)"
    elif (tried := sum(after) - sum(before)) > 0:
        early = after[0] - before[0]
        share = f"answered early {early / tried:.1%} ({early} of {tried})"
    result.notes = "; ".join(filter(None, [share, result.notes]))
    return result


def warm(name: str, lua: str, port: int, args: argparse.Namespace) -> None:
    """The first requests of a path in each worker import and connect: run once per scenario name, not measured."""
    if name in _warm:
        return
    for _ in range(5):  # on a loaded machine a worker's first request can take seconds
        load = wrk.run(port, lua, connections=args.connections, seconds=1)
        if load.ok >= 10 and load.p99_ms < 1000:
            break
    _warm.add(name)


def judge(result: Result, baseline: Result | None, target: scenarios.Target | None) -> None:
    if baseline is not None:
        result.baseline = baseline.scenario
        result.baseline_rps, result.baseline_p50_ms, result.baseline_p99_ms = (
            baseline.rps,
            baseline.p50_ms,
            baseline.p99_ms,
        )
        result.ratio = round(result.rps / baseline.rps, 3) if baseline.rps else None
    if target is None:
        return
    result.target = target.text
    checks = []
    if target.ratio is not None:
        checks.append(result.ratio is not None and result.ratio >= target.ratio)
    if target.p99_ms is not None:
        checks.append(result.requests > 0 and result.p99_ms <= target.p99_ms)
    if target.rate is not None:
        checks.append(result.rps >= target.rate)
    result.met = all(checks) and result.errors == 0


SCALE_SMALL = 20_000
SCALE_SCENARIOS = ("lookup", "deliver-rest-1k", "mailbox-read")
SCALE_ROUNDS = 3
# The lookups' answers kept in Redis are no longer served (registry.published's epoch moves), so that each lookup
# round measures both worlds from a cold cache: otherwise the 20k world's cache fills over the rounds (a name comes
# round again) and the million's hardly does, and the ratio measures the cache's reach, not the cost of a lookup.
FORGET_LOOKUPS = "import secrets; from registry import published; published.epoch_set(secrets.token_hex(8))"


def _scale(env: dict[str, str], ctx: scenarios.Context, args: argparse.Namespace) -> list[Result]:
    """Lookup, REST delivery and mailbox read in two worlds side by side: this run's database with 20 000 scale
    names and 20 000 stored messages, and a copy of it (``harness.database_copy``) grown to ``--scale-names``
    names and ``--scale-messages`` messages (bench.seed scale, timed). Each world has its own gunicorn, and the two
    are measured in turn, scenario by scenario, for SCALE_ROUNDS rounds with the order swapped every round
    (small then large, large then small, …), so that neither size gets the first round or the one right after a
    seed, and both see the same machine; each lookup round starts from a cold cache (FORGET_LOOKUPS). Each figure
    is the median of its rounds. Met: each large figure within 10 % of its small one (ratio >= 0.9), and its
    gunicorn's peak memory flat (at most 10 % more)."""
    import contextlib
    import dataclasses

    if min(args.scale_names, args.scale_messages) <= SCALE_SMALL or _size(args.scale_names) == _size(SCALE_SMALL):
        raise ValueError(f"--scale-names and --scale-messages must be more than {SCALE_SMALL}, the small world's size")
    ctx = dataclasses.replace(ctx, name_prefix="y", name_letters=5)
    harness.seed(env, "scale", str(SCALE_SMALL), str(SCALE_SMALL))
    large_size = _size(args.scale_names)
    pipeline.django_disconnect()  # the copy needs the database without sessions, this process's included
    with harness.database_copy(env, "scale_large") as large_env:
        started = time.monotonic()
        harness.seed(large_env, "scale", str(args.scale_names), str(args.scale_messages))
        seeding = time.monotonic() - started
        worlds = {
            "20k": (env, dataclasses.replace(ctx, names=SCALE_SMALL)),
            large_size: (large_env, dataclasses.replace(ctx, names=args.scale_names)),
        }
        rounds: dict[str, list[Result]] = {f"scale-{size}-{name}": [] for size in worlds for name in SCALE_SCENARIOS}
        with contextlib.ExitStack() as stack:
            served = {
                size: stack.enter_context(harness.gunicorn(world, workers=args.workers, worker_class=args.worker_class))
                for size, (world, _) in worlds.items()
            }
            for name in SCALE_SCENARIOS:  # every path warm in every worker first: then each lookup round is cold
                for size, (port, _) in served.items():
                    world_ctx = worlds[size][1]
                    if name == "mailbox-read":
                        world_ctx.message_uids = pipeline.message_uids(port, world_ctx)
                    warm(f"scale-{size}-{name}", scenarios.SCENARIOS[name].lua(world_ctx), port, args)
            for number in range(SCALE_ROUNDS):
                order = list(worlds) if number % 2 == 0 else list(reversed(worlds))
                for name in SCALE_SCENARIOS:
                    for size in order:
                        (port, server), world_ctx = served[size], worlds[size][1]
                        if name == "lookup":  # every round from a cold cache, in both worlds alike
                            harness.manage(worlds[size][0], "shell", "-c", FORGET_LOOKUPS)
                        if name == "mailbox-read":
                            world_ctx.message_uids = pipeline.message_uids(port, world_ctx)
                        label = f"scale-{size}-{name}"
                        result = measure(label, scenarios.SCENARIOS[name].lua(world_ctx), port, server.pid, args)
                        shown = f"{result.rps:.1f}/s p99 {result.p99_ms:.1f} ms"
                        print(f"  {label} (round {number + 1}): {shown}", flush=True)
                        rounds[label].append(result)
    results: list[Result] = []
    for name in SCALE_SCENARIOS:
        before, after = (_median(rounds[f"scale-{size}-{name}"]) for size in worlds)
        after.baseline, after.baseline_rps = before.scenario, before.rps
        after.baseline_p50_ms, after.baseline_p99_ms = before.p50_ms, before.p99_ms
        after.ratio = round(after.rps / before.rps, 3) if before.rps else None
        flat = after.peak_rss_mb <= 1.1 * before.peak_rss_mb
        after.target = "within 10 % of the 20k figure (>=0.9x), peak RSS flat (<=1.1x)"
        after.met = after.ratio is not None and after.ratio >= 0.9 and flat and after.errors == 0
        after.notes = (f"{after.notes}; " if after.notes else "") + (
            f"a copy grown to {args.scale_names} names and {args.scale_messages} messages in {seeding:.0f} s; "
            f"peak RSS {before.peak_rss_mb:.0f} -> {after.peak_rss_mb:.0f} MiB"
        )
        results += [before, after]
    return results


def _median(rounds: list[Result]) -> Result:
    """The round of median throughput (its latencies with it), with every round's throughput in its notes."""
    import dataclasses

    chosen = sorted(rounds, key=lambda result: result.rps)[len(rounds) // 2]
    shown = ", ".join(f"{result.rps:.0f}" for result in rounds)
    errors = sum(result.errors for result in rounds)
    notes = "; ".join(note for note in (chosen.notes, f"median of rounds {shown} /s") if note)
    return dataclasses.replace(chosen, errors=errors, notes=notes)


def _size(count: int) -> str:
    return f"{count // 1_000_000}m" if count % 1_000_000 == 0 else f"{count // 1000}k"


# The node-pool stage's sizes: a 1 KiB message (a receipt, a short letter), where on a small machine the gateway's
# CPU per send is the limit before the node's pipeline, and a 64 KiB letter, where the node's pipeline is (simnet's
# measured model: ~0.7 s a send), which is what a pool of nodes is for. (size, messages, label)
NODE_POOL_SIZES = ((1024, 600, "1k"), (65536, 80, "64k"))


def _node_pool(args: argparse.Namespace, var_dir: Path) -> list[Result]:
    """``bench.outbox`` in its own process (simnet, a private Redis), once per ``NODE_POOL_SIZES``: the node's own
    send rate, the gateway's through that node, and through a pool of two."""
    results = []
    for size, messages, label in NODE_POOL_SIZES:
        out = var_dir / f"node-pool-{label}.json"
        command = [sys.executable, "-m", "bench.outbox", "--seconds", str(args.seconds), "--out", out]
        command += ["--size", str(size), "--messages", str(messages)]
        subprocess.run(command, cwd=harness.REPO, check=True)  # noqa: S603
        data = json.loads(out.read_text())
        own, one, two = (
            data[key] for key in ("node_sends_per_second", "gateway_sends_per_second", "pool_of_two_sends_per_second")
        )
        node = Result(
            f"node-alone-{label}",
            int(own["per_second"] * args.seconds),
            0,
            args.seconds,
            own["per_second"],
            own["p50_ms"],
            0.0,
            0.0,
        )
        through_one = Result(f"node-pool-1-{label}", one["sent"], 0, one["span_s"], one["per_second"], 0.0, 0.0, 0.0)
        through_two = Result(f"node-pool-2-{label}", two["sent"], 0, two["span_s"], two["per_second"], 0.0, 0.0, 0.0)
        for result, baseline, ratio in ((through_one, node, 0.9), (through_two, through_one, 1.8)):
            result.baseline, result.baseline_rps = baseline.scenario, baseline.rps
            result.ratio = round(result.rps / baseline.rps, 3) if baseline.rps else None
            result.target = f">={ratio}x {baseline.scenario}"
            result.met = result.ratio is not None and result.ratio >= ratio
        results += [node, through_one, through_two]
    return results


def _handshake(args: argparse.Namespace, var_dir: Path, maxima: Result | None) -> Result:
    """Complete handshakes a second (``bench.handshake``). The issue's target is half the Maxima end-to-end rate of
    the same run (a handshake is one Maxima answer judged plus three requests); without that row it is only
    reported, against the bare-json of its own run."""
    out = var_dir / "handshake.json"
    seconds = str(args.seconds)
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.handshake", "--seconds", seconds, "--workers", str(args.workers), "--out", out],
        cwd=harness.REPO,
        check=True,
    )
    base, data = json.loads(out.read_text())["results"][-2:]
    result = Result(**{k: v for k, v in data.items() if k in Result.__dataclass_fields__})
    result.baseline_rps, result.baseline_p50_ms, result.baseline_p99_ms = base["rps"], base["p50_ms"], base["p99_ms"]
    if maxima is not None and maxima.rps:
        result.baseline, result.baseline_rps = maxima.scenario, maxima.rps
        result.baseline_p50_ms, result.baseline_p99_ms = maxima.p50_ms, maxima.p99_ms
        result.ratio = round(result.rps / maxima.rps, 3)
        result.target, result.met = ">=0.5x maxima-e2e", result.ratio >= 0.5
    return result


def _overload_proxied(
    ctx: scenarios.Context, port: int, pid: int, env: dict[str, str], args: argparse.Namespace
) -> list[Result]:
    """The overload scenario behind the shipped HAProxy configuration, in front of the same gunicorn."""
    with harness.proxy(port, workers=args.workers, env=env) as proxied:
        return pipeline.overload(ctx, proxied, pid, env, args.connections, args.seconds, label="overload-proxy")


def _stage(name: str, run: object, *args: object, **kwargs: object) -> list[Result]:
    """One group of scenarios; if it breaks, its row says how and the others still run and are reported."""
    try:
        return run(*args, **kwargs)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        return [Result(name, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, notes=f"FAILED: {type(exc).__name__}: {exc}"[:300])]


def _replication(env: dict[str, str]) -> list[Result]:
    """Federation's own bench (``bench.replication``: three gateways), run as it is and its rows added here."""
    if not env.get("DATABASE_URL", "").startswith("postgres"):
        print("  replication: skipped, it needs PostgreSQL (DATABASE_URL)", flush=True)
        return []
    started = time.time()
    subprocess.run([sys.executable, "-m", "bench.replication"], cwd=harness.REPO, check=True)
    reports = [p for p in (harness.REPO / "var" / "bench").glob("*-replication.json") if p.stat().st_mtime >= started]
    if not reports:
        return []
    rows = json.loads(max(reports, key=lambda p: p.stat().st_mtime).read_text())["results"]
    return [Result(**{k: v for k, v in row.items() if k in Result.__dataclass_fields__}) for row in rows]


def _database(env: dict[str, str]) -> str:
    url = env.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return "SQLite (embedded default; set DATABASE_URL for PostgreSQL)"
    shown = (
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                "from django.db import connection as c; cur = c.cursor(); "
                "print(*[(cur.execute(f'SHOW {k}'), cur.fetchone()[0])[1] "
                "for k in ('fsync', 'synchronous_commit', 'autovacuum')])",
            ],
            cwd=harness.REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.splitlines()[-1]
        .split()
    )  # the last line: Django's shell may say what it imported first
    broker = "Redis" if env.get("REDIS_URL") else "filesystem broker"
    return f"PostgreSQL (fsync={shown[0]}, synchronous_commit={shown[1]}, autovacuum={shown[2]}) + {broker}"


if __name__ == "__main__":
    main()
