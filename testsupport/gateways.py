"""A network of live MNS gateways for end-to-end tests and benchmarks: N gateways, each a complete stack.

Each gateway has its own PostgreSQL database (made from one migrated template on the machine's server, dropped at
the end), its own Redis database on a private ``redis-server`` (broker and cache), its own supervised Celery worker
with beat, its own gunicorn, and its own simnet node. Every node — the gateways' and the users' — is in one
``SimNetwork``, so they reach each other over simulated Maxima. Some gateways have a permanent ``MAX#`` address
(their node is its own MLS and lists its key as permanent); the others are reachable only as contacts, by their
``Mx…@host:port`` address, and mesh with the permanent ones (``maxcontacts add``, ``staticmls``).

Once every gateway answers, they are made peers of each other with ``manage.py peers add`` (the federation
contract), and the cluster waits until each ``/api/v1/health`` says ok::

    with GatewayCluster(tmp_path, gateways_count=3, users_count=2, pg_url=…) as cluster:
        a, b, c = cluster.gateways
        alice = cluster.client(0, a)          # the mns SDK, on user node 0, talking to gateway a
        alice.register("alice")
        cluster.stop_gateway(b)               # its node and its worker; its database stays
        ...
        cluster.start_gateway(b)

One gateway of it is the live stack the single-gateway e2e tests start for themselves, on the test database itself
(SQLite or PostgreSQL), so the test can check what it stored with the ORM::

    GatewayCluster(tmp, gateways_count=1, users_count=2, peer=False, database_urls=[processes.database_url()])

Without ``database_urls`` it needs PostgreSQL (``pg_url``: a URL to any database of the server, used for CREATE and
DROP DATABASE); it always needs ``redis-server``. In pytest, ``require_postgres()`` skips without them (fails under
``MNS_REQUIRE_SERVICES=1``, which CI sets in its PostgreSQL pass only).
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from core.limits import GUNICORN_LIMITS
from core.processes import celery_worker_command
from testsupport import REPO, stack
from testsupport.processes import (
    RedisServer,
    children,
    database_at,
    database_url,
    free_port,
    pg_connect,
    wait_for,
)

GATEWAY_NAMES = "abcdefghijklmnopqrstuvwxyz"
REQUIRE_SERVICES = os.environ.get("MNS_REQUIRE_SERVICES", "") == "1"

# Fast loops: the tests wait on these, and they are a few seconds in production. The single gateway's set
# (testsupport.stack), and the loops a network's health and catch-up wait on as well.
MLS_GAP = 3.0
FAST = {
    **stack.FAST,
    "MNS_OUTBOX_BACKOFF_MAX_SECONDS": "2",
    "MNS_HEARTBEAT_EVERY": "2",
    "MNS_MESSAGE_EXPIRE_EVERY": "5",
    "MNS_HEALTH_CACHE_SECONDS": "0",
}
# Every client here is 127.0.0.1: the limits stay on but far away (the tests of the limits set their own).
UNTHROTTLED = {
    "MNS_THROTTLE_PER_IP": "100000/min",
    "MNS_THROTTLE_LOOKUP": "100000/min",
    "MNS_THROTTLE_WRITE": "100000/min",
    "MNS_THROTTLE_SUBMIT": "100000/min",
    "MNS_HOOK_RATE_PER_MINUTE": "1000000",
    "MNS_HOOK_RATE_PER_SENDER_PER_MINUTE": "1000000",
    "MNS_DELIVERY_RATE_PER_MINUTE": "1000000",
}


class ServiceMissing(Exception):
    """PostgreSQL or redis-server is not there: the caller skips (or fails, in CI)."""


def require_postgres() -> str:
    """In a pytest run: the server URL of the test database, which must be PostgreSQL; otherwise skip the test
    with the reason (fail it under ``MNS_REQUIRE_SERVICES=1``, which CI sets only in its PostgreSQL pass)."""
    import pytest
    from django.db import connection

    reason = ""
    if connection.vendor != "postgresql":
        reason = "the test database is not PostgreSQL (set DATABASE_URL=postgres://… to run the gateway network)"
    elif shutil.which("redis-server") is None:
        reason = "redis-server is not installed (the gateway network runs one)"
    if reason:
        if REQUIRE_SERVICES:
            pytest.fail(f"MNS_REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    return database_at(database_url(), "postgres")


class _Child:
    """One long-running process in its own session, so that stopping it stops everything it started."""

    def __init__(self, args: list[str], *, env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.popen: subprocess.Popen | None = None
        self.log_offset = 0  # where this start's output begins in the log

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.args, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self, *, kill: bool = False, timeout: float = 20) -> None:
        if not kill:
            self.ask_to_stop()
        self.wait_stopped(timeout=0 if kill else timeout)

    def ask_to_stop(self) -> None:
        """SIGTERM to the leader, which passes it on (supervise, gunicorn and celery all stop their children)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()

    def wait_stopped(self, *, timeout: float) -> None:
        """Up to ``timeout`` seconds for a clean exit, then SIGKILL to whatever is left of the session."""
        child, self.popen = self.popen, None
        if child is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()

    def output(self) -> str:
        """What this start of the process has written so far."""
        if not self.log.exists():
            return ""
        with self.log.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")


@dataclass
class Gateway:
    """One gateway of the cluster, and how to talk to it."""

    index: int
    name: str
    node: Any  # its SimNode
    permanent: bool
    database: str
    database_url: str
    redis_url: str
    web_url: str
    var_dir: Path
    env: dict[str, str]
    web: _Child
    worker: _Child
    hook_secret: str

    @property
    def identity(self) -> str:
        """The gateway's Maxima identity key (its node's), ``0x…``."""
        return self.node.publickey_hex

    @property
    def address(self) -> str:
        """Where peers and users send to: ``MAX#key#mls`` when permanent, else the node's ``Mx…@host:port``."""
        if self.permanent:
            return f"MAX#{self.node.publickey_hex}#{self.node.address}"
        return self.node.address

    @property
    def worker_log(self) -> Path:
        return self.worker.log

    @property
    def web_log(self) -> Path:
        return self.web.log

    @property
    def running(self) -> bool:
        return self.node.running and self.worker.running

    def worker_children(self) -> list[int]:
        """The pids under the Celery main process (supervise -> celery -> these): its pool processes and its
        embedded beat, for tests that kill the work in flight (the supervisor and Celery itself stay)."""
        celery = children(self.worker.pid) if self.worker.pid else []
        return [pid for main in celery for pid in children(main)]

    # -- HTTP

    def api(self, method: str, path: str, data: Any = None, auth: str | None = None) -> tuple[int, Any]:
        """One request to its REST API: (status, decoded JSON or None)."""
        body = None if data is None else json.dumps(data).encode()
        request = urllib.request.Request(self.web_url + path, data=body, method=method)  # noqa: S310 - http only
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - our own loopback server
                raw = reply.read()
                return reply.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as refused:
            raw = refused.read()
            try:
                return refused.code, json.loads(raw) if raw else None
            except ValueError:
                return refused.code, raw.decode(errors="replace")

    def health(self) -> dict[str, Any]:
        """``/api/v1/health`` (an empty dict while the web server does not answer)."""
        try:
            return self.api("GET", "/api/v1/health")[1] or {}
        except OSError:
            return {}

    # -- its database and its manage.py

    def sql(self, query: str, *params: Any) -> list[tuple]:
        """Rows of a query (``%s`` placeholders) on this gateway's own database (what it stored, seen from outside)."""
        if self.database_url.startswith("sqlite://"):
            import sqlite3

            with contextlib.closing(sqlite3.connect(self.database_url.removeprefix("sqlite://"), timeout=20)) as conn:
                return conn.execute(query.replace("%s", "?"), params).fetchall()
        with pg_connect(self.database_url) as conn:
            return conn.execute(query, params).fetchall()

    def scalar(self, query: str, *params: Any) -> Any:
        rows = self.sql(query, *params)
        return rows[0][0] if rows else None

    def manage(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """``python manage.py …`` with this gateway's settings."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{self.name}: manage.py {' '.join(args)} exited {done.returncode}\n{done.stderr}")
        return done

    def tail(self, chars: int = 3000) -> str:
        parts = []
        for child in (self.worker, self.web):
            if child.log.exists():
                parts.append(f"--- {child.log.name}\n" + child.log.read_text(errors="replace")[-chars:])
        return "\n".join(parts)


@dataclass
class User:
    """A user's node and the mns client's home folder (box keys, tokens, settings) for it."""

    index: int
    node: Any
    home: Path

    @property
    def key(self) -> str:
        return self.node.publickey_hex


@dataclass
class GatewayCluster:
    """N live gateways and M user nodes in one simnet network; see the module's docstring."""

    folder: Path
    gateways_count: int = 3
    users_count: int = 2
    pg_url: str = "postgres://postgres@127.0.0.1:5432/postgres"
    permanent: Iterable[bool] | None = None  # per gateway; default: all but the last one
    database_urls: list[str] | None = None  # use these (migrated) databases instead of making and dropping some
    peer: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    gateway_env: dict[int, dict[str, str]] = field(default_factory=dict)  # per gateway index, after extra_env
    web_workers: int = 2
    worker_concurrency: int = 2
    block_interval: float = 0.5
    ready_timeout: float = 90.0
    held_back: int = 0  # the last ones are made (node, database) but start and join only at ``add_gateway()``
    api_urls: bool = True  # peers know each other's API URL; without, they reconcile over Maxima only

    gateways: list[Gateway] = field(init=False, default_factory=list)
    users: list[User] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        flags = list(self.permanent) if self.permanent is not None else None
        if flags is None:
            flags = [True] * self.gateways_count
            if self.gateways_count > 1:
                flags[-1] = False
        if len(flags) != self.gateways_count or not any(flags):
            raise ValueError("permanent needs one flag per gateway, and at least one permanent gateway")
        if self.database_urls is not None and len(self.database_urls) != self.gateways_count:
            raise ValueError("database_urls needs one URL per gateway")
        self._flags = flags
        self._token = f"{os.getpid()}_{secrets.token_hex(3)}"
        self._databases: list[str] = []
        self.net: Any = None
        self.redis: RedisServer | None = None

    # ------------------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "GatewayCluster":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> "GatewayCluster":
        from simnet import SimNetwork

        if shutil.which("redis-server") is None:
            raise ServiceMissing("redis-server is not installed")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(free_port(), self.folder)
        self.redis.start()
        databases = self._make_databases() if self.database_urls is None else list(self.database_urls)
        # A restarted gateway's MAX# address is dark for this long (4.5 minutes on real nodes; shortened here, the
        # outbox and health handle it the same way whatever its length).
        self.net = SimNetwork(
            nodes=self.gateways_count + self.users_count, block_interval=self.block_interval, mls_gap=MLS_GAP
        )
        self.net.start()
        for index in range(self.gateways_count):
            self.gateways.append(self._make_gateway(index, databases[index]))
        for index in range(self.users_count):
            home = self.folder / f"user-{index}"
            self.users.append(User(index, self.net.nodes[self.gateways_count + index], home))
        self._wire_nodes()
        started = self.gateways[: self.gateways_count - self.held_back]
        for gateway in started:
            gateway.web.start()
            gateway.worker.start()
        for gateway in started:
            self._wait_up(gateway)
        if self.peer:
            self.connect_peers(started)
        self.wait_healthy(started)
        return self

    @property
    def running_gateways(self) -> list[Gateway]:
        """The gateways started so far (all but the held-back ones not added yet)."""
        return [gateway for gateway in self.gateways if gateway.web.popen is not None]

    def add_gateway(self) -> Gateway:
        """Start the next held-back gateway and join it to the running network: it and every running gateway add
        each other as peers (``manage.py peers add``, as staff would). Returns it once it is up; its catch-up is
        the caller's to wait for."""
        gateway = next(gateway for gateway in self.gateways if gateway.web.popen is None)
        gateway.web.start()
        gateway.worker.start()
        self._wait_up(gateway)
        if self.peer:
            self.connect_peers([*self.running_gateways])
        return gateway

    def close(self) -> None:
        children = [child for gateway in self.gateways for child in (gateway.worker, gateway.web)]
        for child in children:  # all at once: each takes a moment to finish its work
            child.ask_to_stop()
        for child in children:
            child.wait_stopped(timeout=10)
        if self.net is not None:
            self.net.stop()
            self.net = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        self._drop_databases()

    # ------------------------------------------------------------------------------------ databases

    def _make_databases(self) -> list[str]:
        """One migrated template, copied per gateway (CREATE DATABASE … TEMPLATE is a file copy: fast)."""
        template = f"mns_net_{self._token}_template"
        try:
            with pg_connect(self.pg_url) as conn:
                _drop_abandoned(conn)
                conn.execute(f'CREATE DATABASE "{template}"')
        except Exception as exc:  # psycopg.OperationalError and friends: the server is not there
            raise ServiceMissing(f"PostgreSQL at {self.pg_url} refused CREATE DATABASE: {exc}") from exc
        self._databases.append(template)
        env = self._base_env(self.folder / "migrate", database_at(self.pg_url, template), redis_db=0)
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{done.stderr[-3000:]}")
        names = [f"mns_net_{self._token}_{GATEWAY_NAMES[i]}" for i in range(self.gateways_count)]
        with pg_connect(self.pg_url) as conn:
            for name in names:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                self._databases.append(name)
            conn.execute(f'DROP DATABASE "{template}"')
            self._databases.remove(template)
        return names

    def _drop_databases(self) -> None:
        if not self._databases:
            return
        with pg_connect(self.pg_url) as conn:
            for name in list(self._databases):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                self._databases.remove(name)

    # ------------------------------------------------------------------------------------ gateways

    def _base_env(self, var_dir: Path, database_url: str, *, redis_db: int) -> dict[str, str]:
        assert self.redis is not None
        var_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_", "MNS_", "CELERY_"))}
        redis_url = f"redis://127.0.0.1:{self.redis.port}/{redis_db}"
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "mns_site.settings",
                "PYTHONUNBUFFERED": "1",
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "CELERY_BROKER_URL": redis_url,
                "MNS_VAR_DIR": str(var_dir),
                "LOG_LEVEL": "info",
            }
        )
        return env

    def _make_gateway(self, index: int, database: str) -> Gateway:
        """``database``: a name to make on ``pg_url``'s server, or a whole URL given by the caller."""
        letter = GATEWAY_NAMES[index]
        name = f"gw-{letter}"
        node = self.net.nodes[index]
        var_dir = self.folder / name
        web_port = free_port()
        web_url = f"http://127.0.0.1:{web_port}"
        secret = f"net-{letter}-" + secrets.token_hex(20)
        database_url = database if "://" in database else database_at(self.pg_url, database)
        env = self._base_env(var_dir, database_url, redis_db=index)
        permanent = self._flags[index]
        env.update(
            {
                **FAST,
                **UNTHROTTLED,
                "MINIMA_RPC_URL": node.rpc_url,
                "MAXIMA_HOOK_SECRET": secret,
                "MNS_HOOK_BASE_URL": web_url,
                "MNS_PUBLIC_URL": web_url,
                "MNS_GATEWAY_NAME": name,
                "MNS_REST_SUBMISSION": "true",
            }
        )
        if permanent:
            env["MNS_MAXIMA_ADDRESS"] = f"MAX#{node.publickey_hex}#{node.address}"
        env.update(self.extra_env)
        env.update(self.gateway_env.get(index, {}))
        web_args = [sys.executable, "-m", "gunicorn", "mns_site.wsgi", "--bind", f"127.0.0.1:{web_port}"]
        web_args += ["--workers", str(self.web_workers), "--log-level", "warning", *GUNICORN_LIMITS]
        worker_args = celery_worker_command(
            concurrency=self.worker_concurrency,
            beat_schedule=var_dir / "beat-schedule",
            supervised=True,
            hostname=f"{name}@%h",
        )
        return Gateway(
            index=index,
            name=name,
            node=node,
            permanent=permanent,
            database=database,
            database_url=database_url,
            redis_url=env["REDIS_URL"],
            web_url=web_url,
            var_dir=var_dir,
            env=env,
            web=_Child(web_args, env=env, log=var_dir / "web.log"),
            worker=_Child(worker_args, env=env, log=var_dir / "worker.log"),
            hook_secret=secret,
        )

    def _wire_nodes(self) -> None:
        """Permanent gateways are their own MLS and list their key as permanent; the others add the permanent
        ones as contacts and pin their MLS to the first of them (REFERENCE §4)."""
        from mns_client.protocol.rpc import MinimaRPC

        anchors = [g for g in self.gateways if g.permanent]
        for gateway in self.gateways:
            rpc = MinimaRPC(gateway.node.rpc_url, timeout=30)
            if gateway.permanent:
                rpc.maxextra_addpermanent(gateway.node.publickey)
                continue
            rpc.maxextra_staticmls(anchors[0].node.address)
            for anchor in anchors:
                rpc.maxcontacts_add(anchor.node.address)

    def _wait_up(self, gateway: Gateway) -> None:
        """Its web answers and its worker has registered the node's webhook and written the node's identity."""
        from mns_client.protocol.rpc import MinimaRPC

        hook = f"MAXIMA#{gateway.web_url}/maxima/hook/{gateway.hook_secret}/"
        rpc = MinimaRPC(gateway.node.rpc_url, timeout=10)
        wait_for(
            lambda: " ready." in gateway.worker.output(),
            timeout=self.ready_timeout,
            what=f"{gateway.name}'s worker to start",
            log=gateway.worker_log,
        )
        wait_for(
            lambda: hook in rpc.webhooks_list(),
            timeout=self.ready_timeout,
            what=f"{gateway.name}'s worker to register its webhook",
            log=gateway.worker_log,
        )
        wait_for(
            lambda: _known_identity(gateway),
            timeout=self.ready_timeout,
            what=f"{gateway.name} to know its Maxima identity",
            log=gateway.web_log,
        )

    def connect_peers(self, gateways: list[Gateway] | None = None) -> None:
        """Every gateway adds every other one as a peer (idempotent: ``peers add`` may run again)."""
        chosen = gateways or self.running_gateways
        running = []
        for gateway in chosen:
            for other in chosen:
                if other is gateway:
                    continue
                args = ["peers", "add", other.name, "--key", other.identity, "--address", other.address]
                if self.api_urls:
                    args += ["--api-url", other.web_url]
                if other.permanent:
                    args.append("--permanent")
                command = [sys.executable, "manage.py", *args]
                running.append(
                    (
                        gateway,
                        args,
                        subprocess.Popen(
                            command,
                            cwd=REPO,
                            env=gateway.env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True,
                        ),
                    )
                )
        for gateway, args, child in running:
            _out, err = child.communicate(timeout=120)
            if child.returncode != 0:
                raise AssertionError(f"{gateway.name}: manage.py {' '.join(args[:2])} exited {child.returncode}\n{err}")

    def wait_healthy(self, gateways: list[Gateway] | None = None, timeout: float | None = None) -> None:
        """Until each gateway's health says ok (its peers part included, once it has peers)."""
        for gateway in gateways or self.running_gateways:
            last: dict[str, Any] = {}

            def ok(gateway: Gateway = gateway) -> bool:
                nonlocal last
                last = gateway.health()
                return last.get("status") == "ok"

            try:
                wait_for(ok, timeout=timeout or self.ready_timeout, what=f"{gateway.name}'s health to say ok")
            except AssertionError as failed:
                raise AssertionError(f"{failed}\nlast health: {json.dumps(last)}\n{gateway.tail()}") from None

    # ------------------------------------------------------------------------------------ outages

    def stop_gateway(self, gateway: Gateway, *, kill: bool = False) -> None:
        """Its node and its worker (with beat) stop; its web server and database stay, as in a node outage."""
        gateway.worker.stop(kill=kill)
        gateway.node.stop()

    def start_gateway(self, gateway: Gateway, *, wait: bool = True) -> None:
        gateway.node.start()
        gateway.worker.start()
        if wait:
            self._wait_up(gateway)

    # ------------------------------------------------------------------------------------ users

    def client(self, user: int | User, gateway: Gateway, **options: Any) -> Any:
        """The mns SDK client of a user (their node, their home folder) talking to one gateway."""
        from mns_client.config import Home
        from mns_client.protocol.rpc import MinimaRPC
        from mns_client.sdk import Client

        chosen = self.users[user] if isinstance(user, int) else user
        home = Home(chosen.home)
        if not home.box_keys():
            home.add_box_key()
        return Client(rpc=MinimaRPC(chosen.node.rpc_url, timeout=30), gateway_url=gateway.web_url, home=home, **options)

    def cli(self, user: int | User, gateway: Gateway, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """``python -m mns_client …`` as the user would run it, against one gateway with their node."""
        chosen = self.users[user] if isinstance(user, int) else user
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_", "DJANGO_"))}
        env.update({"MNS_HOME": str(chosen.home), "MNS_GATEWAY": gateway.web_url, "MNS_NODE": chosen.node.rpc_url})
        return subprocess.run(
            [sys.executable, "-m", "mns_client", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _drop_abandoned(conn: Any) -> None:
    """Databases a killed run left behind (their process is gone) are dropped; a running one's are left alone."""
    rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'mns\\_net\\_%'").fetchall()
    for (name,) in rows:
        pid = name.split("_")[2]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _known_identity(gateway: Gateway) -> bool:
    try:
        status, body = gateway.api("GET", "/.well-known/mns.json")
    except OSError:
        return False
    return status == 200 and bool((body.get("maxima") or {}).get("publickey"))
