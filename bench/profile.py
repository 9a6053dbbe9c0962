"""``python -m bench.profile SCENARIO [--seconds N]``: where one gunicorn worker spends its time on a scenario.

One gunicorn worker as ``gunicorn.conf.py`` serves it (gthread), loaded by wrk (as ``bench`` does), sampled by
py-spy (``pip install py-spy``: a tool for the one profiling, not a requirement of the gateway). Prints the frames with
the largest share of samples, inclusive (the frame or anything it called) and self (the frame itself), and writes
the raw collapsed stacks next to the run for a flame graph. The samples are wall time, waits on the database and
Redis included; ``--cpu`` samples only the thread holding the GIL: where the worker's Python runs (C that releases
the GIL, such as libpq's I/O or hashing a large buffer, is not sampled)."""

import argparse
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime

from bench import harness, scenarios, wrk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenario", choices=sorted(scenarios.SCENARIOS))
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--names", type=int, default=scenarios.LOOKUP_NAMES, help="names seeded for lookup")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="sample only the thread that holds the GIL: where the worker's Python runs, without the waits on I/O",
    )
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(harness.REPO / ".venv/bin/py-spy")
    if not shutil.which(spy):
        raise SystemExit("bench.profile needs py-spy: .venv/bin/pip install py-spy")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    var_dir = harness.REPO / "var" / "bench" / f"profile-{stamp}"
    var_dir.mkdir(parents=True)
    env = harness.bench_env(var_dir)
    harness.prepared(env)
    ctx = scenarios.world(env, var_dir, names=args.names, lookups=args.scenario == "lookup")
    lua = scenarios.SCENARIOS[args.scenario].lua(ctx)
    raw = var_dir / f"{args.scenario}.collapsed"
    with harness.gunicorn(env, workers=1) as (port, server):
        if args.scenario == "mailbox-read":
            wrk.run(port, scenarios.SCENARIOS["deliver-rest-1k"].lua(ctx), connections=2, seconds=2)
            from bench.pipeline import ready_to_read

            ready_to_read(env, port, ctx)
            lua = scenarios.SCENARIOS[args.scenario].lua(ctx)
        wrk.run(port, lua, connections=args.connections, seconds=2)  # warm
        worker = harness.children(server.pid)[0]
        record = subprocess.Popen(  # noqa: S603
            [
                *(spy, "record", "-p", str(worker), "-d", str(int(args.seconds)), "-r", "200"),
                *(["--gil"] if args.cpu else []),
                *("-f", "raw", "-o", str(raw)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        load = wrk.run(port, lua, connections=args.connections, seconds=args.seconds)
        record.wait(timeout=args.seconds + 30)
    print(f"{args.scenario}: {load.goodput:.1f}/s on one worker, p50 {load.p50_ms:.1f} ms; statuses {load.statuses}")
    print(report(raw.read_text(), args.top))
    print(f"\nraw stacks: {raw}")


def report(collapsed: str, top: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")]
        if any("accept" in f and "gunicorn" in f for f in frames[-2:]) or frames[-1].startswith(
            ("wait ", "_worker (concurrent/futures/thread.py")
        ):
            continue  # idle: the worker waiting for a connection, or a gthread thread for a request to serve
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"{total} busy samples; inclusive % (frame and callees) | self %"]
    for frame, n in inclusive.most_common(top):
        lines.append(f"{100 * n / total:6.1f} {100 * own[frame] / total:6.1f}  {frame}")
    lines.append("\ntop self:")
    for frame, n in own.most_common(15):
        lines.append(f"{100 * n / total:6.1f}  {frame}")
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` with the path cut after site-packages or the repository."""
    for marker in ("site-packages/", str(harness.REPO) + "/", "lib/python3"):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return f"{head}({tail.split(marker, 1)[-1]}"
    return frame


if __name__ == "__main__":
    main()
