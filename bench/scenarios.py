"""The benchmark scenarios: the Lua ``request()`` wrk sends for each, its baseline, and its target (issue #11).

Every request is made fresh in Lua where the server would refuse a repeat (delivery ids, webhook msgids), so the
server does the work of a new message each time. The hex payloads are made here once and embedded in the script.
"""

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import harness
from bench.harness import REPO
from bench.wrk import lua_string

HOOK_FIXTURE = json.loads((REPO / "docs/vectors/maxima/11-webhook-maxima-received-nodeB.json").read_text())
LOOKUP_NAMES = 100_000
# Letters that no confusable fold touches, so every generated name has its own skeleton (bench.seed's names).
ALPHABET = "abdefghjkmnpstuwxyz"
SPREAD_MAILBOXES = 64  # the deliver-rest-1k-spread scenario's recipients: bench-0 … bench-63
BENCH_NAME = "bench"  # the mailbox the delivery scenarios write to (made by bench.seed)
KIB = 1024

# The served gateway takes REST submissions; one client address sends everything, so the rate limits stay in the
# path (their cost is measured) but out of reach. Set before the run's environment is made.
os.environ.setdefault("MNS_REST_SUBMISSION", "true")
os.environ.setdefault("MNS_THROTTLE_SUBMIT", "100000000/min")
os.environ.setdefault("MNS_THROTTLE_READ", "100000000/min")
os.environ.setdefault("MNS_DELIVERY_RATE_PER_MINUTE", "100000000")


@dataclass
class Context:
    """What the scripts need from the run: the hook secret, the bench mailbox's read session, message ids."""

    hook_secret: str = ""
    session_token: str = ""
    message_uids: list[str] = field(default_factory=list)
    names: int = LOOKUP_NAMES
    name_prefix: str = "x"  # the looked-up names: prefix and letters (bench.seed: x + 4, or the scale's y + 5)
    name_letters: int = 4


def world(env: dict[str, str], var_dir: Path, *, names: int, lookups: bool) -> Context:
    """The world the web scenarios read, seeded, and the context their scripts take: with ``lookups``, the ``names``
    looked-up names, published as a gateway warms its cache (``registry_publish``: the seed writes rows in bulk, so no
    lookup answer is in Redis yet, and the lookup would measure first lookups, not the published form); the bench
    mailboxes and the read session. ``python -m bench`` and ``bench.profile`` measure the same world."""
    if lookups:
        harness.seed(env, "names", str(names))
        harness.manage(env, "registry_publish")
    token_file = var_dir / "session-token"
    harness.seed(env, "mailbox", str(token_file))
    return Context(
        hook_secret=harness.hook_secret(env),
        session_token=token_file.read_text().strip(),
        names=names,
    )


@dataclass(frozen=True)
class Target:
    text: str
    ratio: float | None = None  # at least this x the baseline's throughput
    p99_ms: float | None = None  # at most
    rate: float | None = None  # at least this many per second


@dataclass(frozen=True)
class Scenario:
    lua: Callable[[Context], str]
    baseline: str | None = None
    target: Target | None = None


def _static(method: str, path: str) -> str:
    return f'request = function() return wrk.format("{method}", "{path}") end'


def bare_json(ctx: Context) -> str:
    return _static("GET", "/bench/bare-json")


def lookup(ctx: Context) -> str:
    """A random one of the seeded names (``x`` + four letters, or the scale world's ``y`` + five: bench.seed's
    order), so the database answers."""
    return f"""
local A = "{ALPHABET}"
request = function()
  local i = math.random(0, {ctx.names - 1})
  local s = ""
  for _ = 1, {ctx.name_letters} do
    local d = i % {len(ALPHABET)}
    s = A:sub(d + 1, d + 1) .. s
    i = math.floor(i / {len(ALPHABET)})
  end
  return wrk.format("GET", "/api/v1/names/{ctx.name_prefix}" .. s)
end
"""


def _ciphertext_hex(size: int) -> str:
    return "0x" + secrets.token_bytes(size).hex().upper()


def _delivery(path: str, size: int) -> Callable[[Context], str]:
    """A ``{"id", "scheme", "ciphertext"}`` body with a fresh id and ``size`` bytes of ciphertext (hex)."""

    def lua(ctx: Context) -> str:
        tail = f'","scheme":"nacl-sealedbox-v1","ciphertext":"{_ciphertext_hex(size)}"}}'
        return f"""
local H = {{["Content-Type"] = "application/json"}}
local TAIL = {lua_string(tail)}
request = function() return wrk.format("POST", "{path}", H, '{{"id":"' .. uid() .. TAIL) end
"""

    return lua


def _spread_delivery(size: int) -> Callable[[Context], str]:
    """As ``_delivery``, each to a random one of the 64 ``bench-N`` mailboxes (bench.seed), as real traffic
    spreads over names: deliveries to one mailbox queue on its counters row, one commit after the other."""

    def lua(ctx: Context) -> str:
        tail = f'","scheme":"nacl-sealedbox-v1","ciphertext":"{_ciphertext_hex(size)}"}}'
        return f"""
local H = {{["Content-Type"] = "application/json"}}
local TAIL = {lua_string(tail)}
request = function()
  local path = "/api/v1/names/{BENCH_NAME}-" .. math.random(0, {SPREAD_MAILBOXES - 1}) .. "/messages"
  return wrk.format("POST", path, H, '{{"id":"' .. uid() .. TAIL)
end
"""

    return lua


def webhook(ctx: Context) -> str:
    """A real node's MAXIMA post (the fixture) with a fresh msgid and timemilli, as each new message would have:
    checked, stored, queued — the answer the node waits for."""
    data = json.loads(HOOK_FIXTURE["raw_body"])["data"]
    return _hook_lua(f"/maxima/hook/{ctx.hook_secret}/", data["application"], data["data"])


def maxima_deliver_lua(path: str, size: int = KIB, sender: str | None = None) -> str:
    """A MAXIMA post carrying an ``mns`` ``deliver`` to the bench mailbox; msgid, delivery id (hex-encoded in
    Lua, inside the data) and timemilli fresh per request."""
    deliver = {"v": 1, "type": "deliver", "id": "@ID@", "to": BENCH_NAME, "scheme": "nacl-sealedbox-v1"}
    deliver["ciphertext"] = _ciphertext_hex(size)
    before, after = json.dumps(deliver, separators=(",", ":")).split("@ID@")
    return _hook_lua(path, "mns", "0x" + before.encode().hex().upper() + "@ID@" + after.encode().hex().upper(), sender)


def _hook_lua(path: str, application: str, data_hex: str, sender: str | None = None) -> str:
    """The fixture's MAXIMA post with ``application`` and ``data``; Lua fills in a fresh msgid, timemilli and
    (where ``data_hex`` has ``@ID@``) the hex of a fresh delivery id."""
    event = json.loads(HOOK_FIXTURE["raw_body"])
    event["data"].update({"application": application, "data": data_hex, "msgid": "@MSGID@", "timemilli": 0})
    if sender:
        event["data"]["from"] = sender
    text = json.dumps(event, separators=(",", ":")).replace('"@MSGID@"', "@MSGID@")
    text = text.replace('"timemilli":0', '"timemilli":@TIME@')
    parts = [lua_string(p) for p in _split(text, ("@MSGID@", "@ID@", "@TIME@"))]
    return f"""
local H = {{["Content-type"] = "application/x-www-form-urlencoded", ["User-Agent"] = "Minima/1.0"}}
local P = {{{", ".join(parts)}}}
local function hex(s) return (s:gsub(".", function(c) return string.format("%02X", c:byte()) end)) end
request = function()
  local id = uid()
  local msgid = string.format('"0x%08X%08X%08X%040X"', tid, os.time(), counter, math.random(0, 2147483647))
  local fill = {{["@MSGID@"] = msgid, ["@ID@"] = hex(id), ["@TIME@"] = string.format("%d", os.time() * 1000)}}
  local out = {{}}
  for i, piece in ipairs(P) do
    if i % 2 == 1 then out[#out + 1] = piece else out[#out + 1] = fill[piece] end
  end
  return wrk.format("POST", "{path}", H, table.concat(out))
end
"""


def _split(text: str, markers: tuple[str, ...]) -> list[str]:
    """``text`` as [literal, marker, literal, marker, …, literal]."""
    out, rest = [], text
    while True:
        found = [(rest.find(m), m) for m in markers if m in rest]
        if not found:
            return [*out, rest]
        index, marker = min(found)
        out += [rest[:index], marker]
        rest = rest[index + len(marker) :]


def maxima_hook(ctx: Context) -> str:
    return maxima_deliver_lua(f"/maxima/hook/{ctx.hook_secret}/")


def mailbox_read(ctx: Context) -> str:
    """The owner's client with a ``read`` session: list the newest messages, then fetch one, alternately."""
    uids = ", ".join(f'"{uid}"' for uid in ctx.message_uids[:2000]) or '"none"'
    return f"""
local H = {{["Authorization"] = "MNS-Session {ctx.session_token}"}}
local U = {{{uids}}}
request = function()
  counter = counter + 1
  if counter % 2 == 1 then
    return wrk.format("GET", "/api/v1/mailboxes/{BENCH_NAME}/messages?limit=20", H)
  end
  return wrk.format("GET", "/api/v1/mailboxes/{BENCH_NAME}/messages/" .. U[math.random(1, #U)], H)
end
"""


# The targets are issue #18's, row for row (its table: "Where it stands").
SCENARIOS: dict[str, Scenario] = {
    "bare-json": Scenario(bare_json),
    "lookup": Scenario(lookup, "bare-json", Target("≥0.7x bare-json, p99 ≤10 ms", ratio=0.7, p99_ms=10)),
    "bare-insert-1k": Scenario(_delivery("/bench/bare-insert", KIB)),
    "deliver-rest-1k": Scenario(
        _delivery(f"/api/v1/names/{BENCH_NAME}/messages", KIB),
        "bare-insert-1k",
        Target("≥0.5x bare-insert-1k (one mailbox)", ratio=0.5),
    ),
    "deliver-rest-1k-spread": Scenario(
        _spread_delivery(KIB),
        "bare-insert-1k",
        Target("≥0.7x bare-insert-1k, p99 ≤15 ms", ratio=0.7, p99_ms=15),
    ),
    "bare-insert-64k": Scenario(_delivery("/bench/bare-insert", 64 * KIB)),
    "deliver-rest-64k": Scenario(
        _delivery(f"/api/v1/names/{BENCH_NAME}/messages", 64 * KIB),
        "bare-insert-64k",
        Target("≥0.8x bare-insert-64k", ratio=0.8),
    ),
    "mailbox-read": Scenario(mailbox_read, "bare-json", Target("≥0.5x bare-json", ratio=0.5)),
    "webhook": Scenario(webhook, "bare-insert-1k", Target("≥0.8x bare-insert-1k, p99 ≤10 ms", ratio=0.8, p99_ms=10)),
}
