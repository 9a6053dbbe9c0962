"""The load generator: wrk (the Debian package) in a second process on loopback, driven by a small Lua script.

wrk is C: it leaves both cores to the server, where a Python client would take one of them. Each scenario gives
the Lua body of a ``request()`` function (bodies and ids made fresh per request in Lua); the common part counts
answers by status and ``Retry-After``, and ``done()`` prints one JSON line that :func:`run` reads. Every run is
bounded: ``-d`` seconds and ``-c`` connections, and wrk stops by itself.
"""

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

WRK = "wrk"

COMMON = r"""
threads = {}
statuses = {}
retry_after = 0
counter = 0
tid = 0
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  math.randomseed(os.time() + tid * 7919)
end
function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if headers["Retry-After"] or headers["retry-after"] then retry_after = retry_after + 1 end
end
function uid()
  counter = counter + 1
  return string.format("b%d%x%08x%06x", tid, os.time(), counter, math.random(0, 16777215))
end
-- Every request carries the time it was sent, as a front proxy stamps it (nginx: X-Request-Start "t=${msec}"),
-- so the gateway's load shedding (MNS_SHED_AFTER_MS) sees how long it waited in the listen backlog.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]
local clock = ffi.new("bench_timeval")
local unstamped_format = wrk.format
wrk.format = function(method, path, headers, body)
  local stamped = {}
  for k, v in pairs(headers or wrk.headers) do stamped[k] = v end
  ffi.C.gettimeofday(clock, nil)
  stamped["X-Request-Start"] = string.format("t=%d%06d", tonumber(clock.tv_sec), tonumber(clock.tv_usec))
  return unstamped_format(method, path, stamped, body)
end
function done(summary, latency, requests)
  local counts, retries = {}, 0
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("statuses")) do counts[k] = (counts[k] or 0) + v end
    retries = retries + thread:get("retry_after")
  end
  local parts = {}
  for k, v in pairs(counts) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"retry_after":%d,"socket_errors":%d,"timeouts":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, retries, e.connect + e.read + e.write, e.timeout,
    table.concat(parts, ",")))
end
"""


# A client that honours Retry-After: after a 429/503 that carries it, the connection waits that long before its next
# request (wrk calls delay() right after response() for the same connection). wrk itself does not wait.
POLITE = r"""
local refused_wait = 0
local counting_response = response
function response(status, headers, body)
  counting_response(status, headers, body)
  local after = tonumber(headers["Retry-After"] or headers["retry-after"] or "")
  refused_wait = ((status == 429 or status == 503) and after) and math.floor(after * 1000) or 0
end
function delay()
  return refused_wait
end
"""


@dataclass
class Load:
    """What wrk saw: answers by status, latency percentiles of every answer, and the wall time."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    retry_after: int = 0
    socket_errors: int = 0
    timeouts: int = 0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def goodput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.requests - self.ok + self.socket_errors + self.timeouts


def available() -> str | None:
    return shutil.which(WRK)


def require() -> str:
    path = available()
    if path is None:
        raise SystemExit(
            "bench: wrk is not installed (it is the load generator; Debian/Ubuntu: apt-get install wrk). "
            "Nothing was measured."
        )
    return path


def lua_string(text: str) -> str:
    """A Lua long string holding ``text`` exactly (no escapes are processed inside ``[==[ … ]==]``)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def run(
    port: int,
    request_lua: str,
    *,
    connections: int,
    seconds: float,
    threads: int | None = None,
    timeout: int = 10,
    polite: bool = False,
) -> Load:
    """Load ``127.0.0.1:port`` for ``seconds`` with ``connections`` connections; ``request_lua`` defines
    ``request()`` (it may use ``uid()``, ``tid`` and ``wrk.format``). ``polite``: each connection waits out the
    ``Retry-After`` of a refusal before its next request, as a well-behaved client does."""
    threads = threads or (1 if connections <= 8 else 2)
    script = COMMON + "\n" + request_lua + (POLITE if polite else "")
    args = [
        require(),
        "-t",
        str(min(threads, connections)),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        f"{timeout}s",
        f"http://127.0.0.1:{port}/",
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-") as file:  # wrk loads it once per thread
        file.write(script)
        file.flush()
        args[-1:-1] = ["-s", file.name]
        done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + timeout + 30)  # noqa: S603
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        said = done.stderr[-2000:] or done.stdout[-2000:]
        raise RuntimeError(f"wrk gave no summary (exit {done.returncode}): {said}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    return Load(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        statuses={int(k): v for k, v in data["statuses"].items()},
        retry_after=data["retry_after"],
        socket_errors=data["socket_errors"],
        timeouts=data["timeouts"],
    )
