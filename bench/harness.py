"""Load a gunicorn-served gateway from this process over loopback and report throughput and latency.

Every figure is printed next to a baseline measured in the same run, served the same way, because these machines
are shared and noisy: only the ratio means something. Loops are bounded in time and stop by themselves.
"""

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

Request = tuple[str, str, bytes, dict[str, str]]  # method, path, body, headers


@dataclass
class Result:
    scenario: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    baseline: str = ""
    ratio: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 2) -> Iterator[tuple[int, subprocess.Popen]]:
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "mns_site.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
    try:
        _wait_listening(port, server)
        yield port, server
    finally:
        server.terminate()
        server.wait(timeout=20)


def _wait_listening(port: int, server: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("gunicorn exited: " + server.stderr.read().decode(errors="replace")[-2000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start listening")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process and its children, summed, in MiB."""
    total = 0
    for each in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def load(
    name: str, port: int, server_pid: int, make_request: Callable[[int], Request], *, connections: int, seconds: float
) -> Result:
    """``connections`` threads send requests back to back for ``seconds``; each request is made fresh by
    ``make_request(n)`` so that bodies can be unique (webhook msgids, message ids)."""
    latencies: list[float] = []
    errors = [0]
    counter = iter(range(10**12))
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < stop_at:
            with lock:
                n = next(counter)
            method, path, body, headers = make_request(n)
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request(method, path, body=body, headers=headers)
                reply = conn.getresponse()
                reply.read()
                conn.close()
                ok = 200 <= reply.status < 300
            except OSError:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed) if ok else None
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    count = len(latencies)
    return Result(
        scenario=name,
        requests=count,
        errors=errors[0],
        seconds=round(wall, 2),
        rps=round(count / wall, 1),
        p50_ms=round(latencies[count // 2] * 1000, 2) if count else 0.0,
        p99_ms=round(latencies[min(count - 1, int(count * 0.99))] * 1000, 2) if count else 0.0,
        peak_rss_mb=peak_rss_mb(server_pid),
    )


def table(results: list[Result]) -> str:
    header = f"{'scenario':<24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'RSS MiB':>9}"
    header += f"  {'baseline':<16}{'ratio':>7}"
    rows = [header, "-" * len(header)]
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        rows.append(
            f"{r.scenario:<24}{r.rps:>9.1f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}{r.peak_rss_mb:>9.1f}  "
            f"{r.baseline or '-':<16}{ratio:>7}"
        )
    return "\n".join(rows)


def bench_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MNS_VAR_DIR",)}
    env.update(
        {
            "MNS_BENCH": "true",
            "MNS_VAR_DIR": str(var_dir),
            "LOG_LEVEL": "warning",
            "DJANGO_SETTINGS_MODULE": "mns_site.settings",
        }
    )
    # One client address sends everything here: the limits stay in the path (their cost is measured) but high.
    for name in ("MNS_THROTTLE_PER_IP", "MNS_THROTTLE_LOOKUP", "MNS_THROTTLE_WRITE"):
        env[name] = "100000000/min"
    env["MNS_HOOK_RATE_PER_MINUTE"] = "100000000"
    env["MNS_HOOK_RATE_PER_SENDER_PER_MINUTE"] = "100000000"
    env.update(extra)
    return env
