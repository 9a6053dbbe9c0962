"""``python -m bench [scenario …]`` (or ``make bench``): run the benchmarks and print one table.

Scenarios run against gunicorn (sync workers) on 127.0.0.1 with the database and broker the environment names
(embedded SQLite by default; set DATABASE_URL/REDIS_URL for PostgreSQL + Redis). The results also go to
``var/bench/<date>.json``. Nothing here is a test: it never fails on a time.
"""

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import harness, scenarios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scenarios", nargs="*", default=list(scenarios.SCENARIOS))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(scenarios.SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; known: {sorted(scenarios.SCENARIOS)}")

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S")
    out_dir = harness.REPO / "var" / "bench"
    var_dir = out_dir / f"run-{stamp}"
    var_dir.mkdir(parents=True)
    env = harness.bench_env(var_dir)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=harness.REPO, env=env, check=True)
    for seed in {scenarios.SCENARIOS[name].seed for name in args.scenarios} - {()}:
        subprocess.run([sys.executable, "-m", "bench.seed", *seed], cwd=harness.REPO, env=env, check=True)  # noqa: S603

    results = []
    with harness.gunicorn(env) as (port, server):
        for name in args.scenarios:
            scenario = scenarios.SCENARIOS[name]
            baseline = (
                harness.load(
                    scenario.baseline,
                    port,
                    server.pid,
                    scenarios.SCENARIOS[scenario.baseline].request,
                    connections=args.connections,
                    seconds=args.seconds,
                )
                if scenario.baseline
                else None
            )
            time.sleep(0.5)
            result = harness.load(
                name, port, server.pid, scenario.request, connections=args.connections, seconds=args.seconds
            )
            if baseline is not None:
                result.baseline, result.ratio = (
                    baseline.scenario,
                    round(result.rps / baseline.rps, 3) if baseline.rps else None,
                )
                results.append(baseline)
            results.append(result)
    print(harness.table(results))
    report = out_dir / f"{stamp}.json"
    report.write_text(
        json.dumps(
            {
                "when": stamp,
                "connections": args.connections,
                "seconds": args.seconds,
                "results": [r.as_dict() for r in results],
            },
            indent=2,
        )
    )
    print(f"\nwritten to {report.relative_to(Path.cwd()) if report.is_relative_to(Path.cwd()) else report}")


if __name__ == "__main__":
    main()
