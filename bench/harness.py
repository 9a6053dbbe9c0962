"""Load a gunicorn-served gateway from this process over loopback and report throughput and latency.

Every figure is printed next to a baseline measured in the same run, served the same way, because these machines
are shared and noisy: only the ratio means something. Loops are bounded in time and stop by themselves.
"""

import contextlib
import http.client
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from core.limits import GUNICORN_LIMITS
from testsupport.processes import (
    children,
    database_at,
    free_port,
    haproxy,
    listening,
    pg_connect,
    process,
    wait_for,
)

if TYPE_CHECKING:
    from bench import wrk

REPO = Path(__file__).resolve().parent.parent
# The run's gunicorn serves /metrics with it (bench_env), so a stage can read what the gateway counted.
METRICS_TOKEN = secrets.token_hex(32)

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
    baseline_rps: float | None = None
    baseline_p50_ms: float | None = None
    baseline_p99_ms: float | None = None
    target: str = ""
    met: bool | None = None
    notes: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of_load(cls, name: str, load: "wrk.Load", pid: int) -> "Result":
        """A wrk run's row: its 2xx answers a second, latencies, and the other statuses in its notes."""
        statuses = {s: n for s, n in load.statuses.items() if not 200 <= s < 300}
        return cls(
            scenario=name,
            requests=load.ok,
            errors=load.errors,
            seconds=round(load.seconds, 2),
            rps=round(load.goodput, 1),
            p50_ms=round(load.p50_ms, 2),
            p99_ms=round(load.p99_ms, 2),
            peak_rss_mb=peak_rss_mb(pid),
            notes=f"non-2xx answers: {statuses}" if statuses else "",
        )


@contextmanager
def gunicorn(
    env: dict[str, str], *, workers: int = 3, worker_class: str | None = None
) -> Iterator[tuple[int, subprocess.Popen]]:
    """Serve the gateway as gunicorn.conf.py says (gthread workers with spare threads), or with ``worker_class``."""
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
        *(["--worker-class", worker_class] if worker_class else []),
        "--log-level",
        "warning",
        *GUNICORN_LIMITS,
    ]
    # Its log goes to a file: a pipe nobody reads fills up, and a worker blocked writing a warning to it holds
    # whatever its transaction locked (every other worker then waits on that row).
    log = Path(env.get("MNS_VAR_DIR", "/tmp")) / f"gunicorn-{port}.log"  # noqa: S108
    with log.open("ab") as out:
        server = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        _wait_listening(port, server, log)
        yield port, server
    finally:
        workers = children(server.pid)
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a worker stuck in a request: the run is over anyway
            server.kill()
            server.wait(timeout=10)
            for worker in workers:  # a master killed leaves its workers, and their database sessions, behind
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)


@contextmanager
def proxy(web_port: int, *, workers: int, env: dict[str, str]) -> Iterator[int]:
    """The shipped HAProxy configuration (docs/haproxy/mns.cfg) in front of the bench's gunicorn, sized as the
    README's "Running it in production" says: gunicorn is given what it runs at once (workers x ``MNS_WEB_ADMIT``;
    one a worker when admission is off, as a sync worker runs), twice that may wait, the rest is refused by the
    proxy at once. A request may wait in the proxy's queue as long as the gateway's shedding would let it wait
    (``MNS_SHED_AFTER_MS``), so there is one bound on waiting, not two. Yields the port clients use."""
    admit = int(env.get("MNS_WEB_ADMIT", "2"))
    inside = workers * (admit or 1)
    wait = f"{int(env.get('MNS_SHED_AFTER_MS') or 1000)}ms"
    port = free_port()
    command, proxy_env = haproxy(
        bind=f"127.0.0.1:{port}", backend=f"127.0.0.1:{web_port}", inside=inside, queue=2 * inside, wait=wait
    )
    log = Path(env.get("MNS_VAR_DIR", "/tmp")) / f"haproxy-{port}.log"  # noqa: S108
    with process(command, env=proxy_env, log=log):
        wait_for(lambda: listening(port), timeout=30, what="haproxy listening", log=log)
        yield port


@contextmanager
def database_copy(env: dict[str, str], suffix: str) -> Iterator[dict[str, str]]:
    """``env`` for a second world beside the run's: a copy of its PostgreSQL database (``CREATE DATABASE …
    TEMPLATE``, a file copy) named with ``suffix``, and a Redis database of its own (the next one, which must be
    empty, and is emptied after), so that neither world's cache, limits or broker ever hold the other's rows.
    Dropped when the block ends. The source must have no connections while it is copied (PostgreSQL's rule): start
    its servers afterwards."""
    import psycopg
    import redis

    url = env.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        raise RuntimeError("a second world needs PostgreSQL (DATABASE_URL=postgres://…)")
    source = unquote(urlsplit(url).path.lstrip("/"))
    name = f"{source}_{suffix}"
    server = database_at(url, "postgres")
    copy = {**env, "DATABASE_URL": database_at(url, quote(name, safe=""))}
    cache = None
    if env.get("REDIS_URL"):
        parts = urlsplit(env["REDIS_URL"])
        number = int(parts.path.lstrip("/") or 0)
        number = number + 1 if number < 15 else number - 1
        copy["REDIS_URL"] = copy["CELERY_BROKER_URL"] = parts._replace(path=f"/{number}").geturl()
        cache = redis.Redis.from_url(copy["REDIS_URL"])
        if cache.dbsize():  # someone else's, or a killed run's: never emptied without asking
            cache.close()
            raise RuntimeError(
                f"Redis database {number} (the second world's) holds keys already: empty it (redis-cli -n {number} "
                "flushdb) if they are a killed run's, or set REDIS_URL to another database"
            )

    def copied() -> bool:
        with pg_connect(server) as conn:
            try:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
            except psycopg.errors.ObjectInUse:  # a connection of the source's is still closing
                return False
        return True

    with pg_connect(server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    try:
        wait_for(copied, timeout=60, what=f"a copy of {source}")
    except AssertionError:
        with pg_connect(server) as conn:
            sessions = conn.execute(
                "SELECT pid, application_name, client_port, state, left(query, 80) FROM pg_stat_activity "
                "WHERE datname = %s",
                [source],
            ).fetchall()
        raise RuntimeError(f"{source} kept sessions open, so it could not be copied: {sessions}") from None
    try:
        yield copy
    finally:
        if cache is not None:
            cache.flushdb()
            cache.close()
        with pg_connect(server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_listening(port: int, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("gunicorn exited: " + log.read_text(errors="replace")[-2000:])
        if not listening(port):
            time.sleep(0.1)
            continue
        # The master listens before its workers have loaded the application (seconds on a loaded machine): wait
        # for an answer, so that the first measured seconds are not the workers' start.
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=max(deadline - time.monotonic(), 1))
            connection.request("GET", "/api/v1/health")
            connection.getresponse().read()
            connection.close()
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start listening")


def early_answers(port: int) -> tuple[int, int] | None:
    """(answered early, answered by Django) of the requests an early answer was tried for, as the gateway's
    ``/metrics`` counts them so far (``mns_early_answers_total``, summed over routes and web processes); None when
    they cannot be read (the stage's own figures stand without them)."""
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        reply = connection.getresponse()
        text = reply.read().decode()
        if reply.status != 200:
            return None
        counts = {"early": 0, "other": 0}
        for family in text_string_to_metric_families(text):
            for sample in family.samples if family.name == "mns_early_answers" else ():
                if sample.name.endswith("_total"):
                    counts["early" if sample.labels["outcome"] == "early" else "other"] += int(sample.value)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        connection.close()
    return counts["early"], counts["other"]


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of the largest of a server's processes (its workers, or itself), in MiB."""
    peak = 0
    for each in children(pid) or [pid]:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return round(peak / 1024, 1)


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
    """One row per scenario: its figures, its baseline's figures in the same run, the ratio, the target, met?"""
    header = (
        f"{'scenario':<20}{'thru/s':>9}{'p50 ms':>8}{'p99 ms':>9}{'errs':>6}{'RSS MiB':>8}  "
        f"{'baseline':<16}{'base/s':>8}{'b.p50':>7}{'b.p99':>8}{'ratio':>7}  {'target':<36}{'met':>4}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        base = [f"{x:.1f}" if x is not None else "-" for x in (r.baseline_rps, r.baseline_p50_ms, r.baseline_p99_ms)]
        rows.append(
            f"{r.scenario:<20}{r.rps:>9.1f}{r.p50_ms:>8.2f}{r.p99_ms:>9.2f}{r.errors:>6}{r.peak_rss_mb:>8.1f}  "
            f"{r.baseline or '-':<16}{base[0]:>8}{base[1]:>7}{base[2]:>8}{ratio:>7}  {r.target or '-':<36}{met:>4}"
        )
        if r.notes:
            rows.append(f"{'':<20}  {r.notes}")
    return "\n".join(rows)


def rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of one process now, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def prepared(env: dict[str, str]) -> None:
    """The bench's database migrated, and vacuumed where the server has no autovacuum (``bench.seed.vacuum``)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
    seed(env, "vacuum")


def seed(env: dict[str, str], *args: str) -> None:
    """``python -m bench.seed *args`` on the bench's database (its time said when it is long)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "bench.seed", *args], cwd=REPO, env=env, check=True)  # noqa: S603
    if time.monotonic() - started > 5:
        print(f"  seed {' '.join(args[:1])}: {time.monotonic() - started:.0f} s", flush=True)


def manage(env: dict[str, str], *args: str) -> None:
    """``manage.py *args`` on the bench's database."""
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True)  # noqa: S603


def hook_secret(env: dict[str, str]) -> str:
    """The secret the served gateway uses (MAXIMA_HOOK_SECRET, or the one settings derive)."""
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.MAXIMA_HOOK_SECRET)",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[-1]


def bench_env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MNS_VAR_DIR",)}
    env.update(
        {
            "MNS_BENCH": "true",
            "MNS_VAR_DIR": str(var_dir),
            "LOG_LEVEL": "warning",
            "DJANGO_SETTINGS_MODULE": "mns_site.settings",
            "MNS_METRICS_TOKEN": METRICS_TOKEN,
        }
    )
    # One client address sends everything here: the limits stay in the path (their cost is measured) but high.
    for name in ("MNS_THROTTLE_PER_IP", "MNS_THROTTLE_LOOKUP", "MNS_THROTTLE_WRITE"):
        env[name] = "100000000/min"
    env["MNS_HOOK_RATE_PER_MINUTE"] = "100000000"
    env["MNS_HOOK_RATE_PER_SENDER_PER_MINUTE"] = "100000000"
    # Served as behind a front proxy that stamps requests (wrk does, bench/wrk.py): a request that waited in the
    # backlog longer than this is shed with 503 + Retry-After (README "Limits"). Well above a saturated p99.
    env.setdefault("MNS_SHED_AFTER_MS", "250")
    env.update(extra)
    return env
