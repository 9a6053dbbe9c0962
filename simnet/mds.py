"""MDS, the node's MiniDapp system, as a real node serves it (MDSManager, MDSFileHandler; fixtures 190-201).

One ``Mds`` per node: the installed MiniDapps (each in its own folder under ``web/<uid>``, with a random 32-byte
uid and a random 128-byte session id that its pages pass as ``?uid=``), the hub login, the pending actions of
MiniDapps in READ mode, the poll stack every page polls, each MiniDapp's key/value pairs and SQL database, the
API between MiniDapps, and one ``service.js`` runner per MiniDapp that has one (``simnet.mds_service``).

Events reach MiniDapps as on a real node: each one goes to the ``service.js`` runners first (all of them, or only
the addressee's), then onto the poll stack (the newest 128 kept), numbered by one counter under a random series.

Where simnet differs, on purpose: SQL runs on SQLite, not H2 (column labels are upper-cased as H2 prints them, but
the dialects differ: no ``AUTO_INCREMENT`` column values, SQLite's types and functions); ``MDS.net`` fetches only
loopback URLs (the network rule); the ``file`` functions, the public MDS and file uploads are not served; the
pages and the ``mds.js`` library are simnet's own, written to the same endpoints.
"""

import ipaddress
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from simnet import javajson
from simnet.commands import ParsedCommand, Reply
from simnet.util import hex0x, java_date, now_ms, random_bytes

if TYPE_CHECKING:
    from simnet.mds_service import ServiceRunner
    from simnet.node import SimNode

logger = logging.getLogger(__name__)

FILES = Path(__file__).with_name("mds_files")
POLL_STACK_SIZE = 128
POLL_WAIT_SECONDS = 60
API_TIMEOUT_SECONDS = 10.0
TIMERS = (("MDS_TIMER_10SECONDS", 10.0), ("MDS_TIMER_60SECONDS", 60.0), ("MDS_TIMER_1HOUR", 3600.0))
MAX_DAPP_BYTES = 64 * 1024 * 1024  # an unzipped MiniDapp larger than this is refused
WRONG_PASSWORD_PAUSE = 1.0  # the node sleeps a second after a wrong hub password, to slow guessing

# CommandRunner.ALL_WRITE_COMMANDS: what a READ-mode MiniDapp may only ask for, through a pending action.
WRITE_COMMANDS = frozenset(
    {
        "send",
        "sendpoll",
        "sendsign",
        "multisig",
        "tokencreate",
        "consolidate",
        "cointrack",
        "sign",
        "txnsign",
        "mds",
        "backup",
        "removescript",
        "restore",
        "restoresync",
        "vault",
        "archive",
        "mysql",
        "mysqlcoins",
        "rpc",
        "magic",
        "quit",
        "seedrandom",
        "megammrsync",
    }
)
PENDING_ERROR = "This command needs to be confirmed and is now pending.."


class MdsError(Exception):
    """A refused ``mds`` action; the text is the node's."""


@dataclass
class MiniDapp:
    uid: str
    conf: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.conf.get("name", ""))

    @property
    def writable(self) -> bool:
        return str(self.conf.get("permission", "read")).lower() == "write"

    def to_json(self) -> dict[str, Any]:
        return {"uid": self.uid, "conf": self.conf}


@dataclass
class PendingCommand:
    uid: str
    minidapp: dict[str, Any]
    timemilli: int
    command: str

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "minidapp": self.minidapp,
            "timemilli": self.timemilli,
            "date": java_date(self.timemilli),
            "command": self.command,
        }


@dataclass
class PollMessage:
    counter: int
    to: str
    message: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"to": self.to, "counter": self.counter, "message": self.message}


@dataclass
class PollStack:
    """PollStack.java: one counter for all messages, a random series, the newest 128 kept."""

    series: str = field(default_factory=lambda: hex0x(random_bytes(32)))
    counter: int = 0
    messages: list[PollMessage] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, message: dict[str, Any], to: str) -> None:
        with self.changed:
            self.messages.append(PollMessage(self.counter, to, message))
            self.counter += 1
            del self.messages[:-POLL_STACK_SIZE]
            self.changed.notify_all()

    def since(self, counter: int, uid: str) -> list[PollMessage]:
        with self.changed:
            return [m for m in self.messages if m.counter >= counter and m.to in ("*", uid)]


def _conf_with(conf: dict[str, Any], permission: str) -> dict[str, Any]:
    out = dict(conf)
    out["permission"] = permission
    out.setdefault("browser", "internal")
    return out


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unzip without letting an entry escape ``dest`` or the total size pass ``MAX_DAPP_BYTES``."""
    with zipfile.ZipFile(archive) as zf:
        if sum(info.file_size for info in zf.infolist()) > MAX_DAPP_BYTES:
            raise MdsError("MiniDAPP too large")
        for info in zf.infolist():
            target = (dest / info.filename).resolve()
            if dest.resolve() not in target.parents and target != dest.resolve():
                raise MdsError(f"Invalid file in MiniDAPP : {info.filename}")
        zf.extractall(dest)


def loopback_url(url: str) -> bool:
    """The network rule: ``MDS.net`` reaches only 127.0.0.0/8 (or ``localhost``), by literal address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname) in ipaddress.ip_network("127.0.0.0/8")
    except ValueError:
        return False


class Mds:
    """One node's MDS. ``start`` opens its HTTPS port; ``close`` stops it, its services and timers."""

    def __init__(self, node: "SimNode", port: int, password: str, root: Path) -> None:
        self.node = node
        self.port = port
        self.password = password
        self.root = root
        self.lock = threading.RLock()
        self.dapps: dict[str, MiniDapp] = {}
        self.sessions: dict[str, str] = {}
        self.pending: list[PendingCommand] = []
        self.polls = PollStack()
        self.services: dict[str, ServiceRunner] = {}
        # (MiniDapp name, text) of the latest MDS.log lines, for tests and debugging
        self.logs: deque[tuple[str, str]] = deque(maxlen=10000)
        self.public_session = hex0x(random_bytes(128))
        self.untrusted_session = hex0x(random_bytes(128))
        self._sql: dict[str, sqlite3.Connection] = {}
        self._stop = threading.Event()
        self._server: Any = None
        self.minihub = ""
        self._load()

    # ------------------------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"https://{self.node.host}:{self.port}"

    def start(self) -> None:
        from simnet.mds_http import MdsServer

        self._server = MdsServer(self.node.host, self.port, self, self.root / "cert")
        for dapp in list(self.dapps.values()):
            self._setup(dapp)
        for event, seconds in TIMERS:
            threading.Thread(target=self._timer, args=(event, seconds), daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        with self.lock:
            services, self.services = list(self.services.values()), {}
            for conn in self._sql.values():
                conn.close()
            self._sql.clear()
        for service in services:
            service.stop()

    def _timer(self, event: str, seconds: float) -> None:
        while not self._stop.wait(seconds):
            self.post(event, {"timemilli": str(now_ms())})

    # ------------------------------------------------------------------------------------ MiniDapps

    def _load(self) -> None:
        (self.root / "web").mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        index = self.root / "dapps.json"
        if index.exists():
            saved = json.loads(index.read_text())
            self.minihub = saved["minihub"]
            self.dapps = {d["uid"]: MiniDapp(d["uid"], d["conf"]) for d in saved["dapps"]}
            return
        self.minihub = hex0x(random_bytes(32))
        hub = self.root / "web" / self.minihub
        shutil.copytree(FILES / "minihub", hub)
        conf = json.loads((hub / "dapp.conf").read_text())
        self.dapps[self.minihub] = MiniDapp(self.minihub, _conf_with(conf, "write"))
        self._save()

    def _save(self) -> None:
        data = {"minihub": self.minihub, "dapps": [d.to_json() for d in self.dapps.values()]}
        (self.root / "dapps.json").write_text(json.dumps(data))

    def _setup(self, dapp: MiniDapp) -> None:
        """``setupMiniDAPP``: a fresh session id, and the service started if the MiniDapp has a service.js."""
        from simnet.mds_service import ServiceRunner

        with self.lock:
            self.sessions[hex0x(random_bytes(128))] = dapp.uid
        if (self.folder(dapp.uid) / "service.js").exists():
            runner = ServiceRunner(self, dapp)
            with self.lock:
                self.services[dapp.uid] = runner
            runner.start()

    def page_url(self, uid: str, page: str = "index.html") -> str:
        """Where the MiniHUB opens a MiniDapp: ``https://host:port/<uid>/index.html?uid=<session id>``."""
        return f"{self.url}/{uid}/{page}?uid={self.session_of(uid)}"

    def folder(self, uid: str) -> Path:
        return self.root / "web" / uid

    def data_folder(self, uid: str) -> Path:
        path = self.root / "data" / uid
        path.mkdir(parents=True, exist_ok=True)
        return path

    def session_of(self, uid: str) -> str:
        with self.lock:
            return next((s for s, u in self.sessions.items() if u == uid), "")

    def dapp_of_session(self, session: str) -> MiniDapp | None:
        with self.lock:
            uid = self.sessions.get(session)
            return None if uid is None else self.dapps.get(uid)

    def dapp_named(self, name: str) -> MiniDapp | None:
        with self.lock:
            return next((d for d in self.dapps.values() if d.name.lower() == name.lower()), None)

    def install(self, archive: Path, trust: str) -> MiniDapp:
        if not archive.is_file():
            raise MdsError(f"MiniDAPP not found.. : {archive}")
        uid = hex0x(random_bytes(32))
        dest = self.folder(uid)
        dest.mkdir(parents=True)
        try:
            _safe_extract(archive, dest)
            conf_file = dest / "dapp.conf"
            if not conf_file.exists():
                raise MdsError("No dapp.conf file found")
            conf = javajson.loads(conf_file.read_text(encoding="utf-8"))
            if not isinstance(conf, dict):
                raise MdsError("Invalid dapp.conf")
        except (MdsError, zipfile.BadZipFile, ValueError) as exc:
            shutil.rmtree(dest, ignore_errors=True)
            raise MdsError(str(exc) if isinstance(exc, MdsError) else f"java.util.zip.ZipException: {exc}") from None
        dapp = MiniDapp(uid, _conf_with(conf, trust))
        with self.lock:
            self.dapps[uid] = dapp
            self._save()
        self._setup(dapp)
        self.post("MDS_MINIDAPPS_CHANGE", {})
        return dapp

    def uninstall(self, uid: str) -> None:
        if not uid.startswith("0x"):
            raise MdsError("Invalid UID for MiniDAPP")
        if uid == self.minihub:
            raise MdsError("Cannot delete the MiniHUB")
        with self.lock:
            if uid not in self.dapps:
                raise MdsError("MiniDAPP not found")
            del self.dapps[uid]
            self._save()
            service = self.services.pop(uid, None)
            self.sessions = {s: u for s, u in self.sessions.items() if u != uid}
            conn = self._sql.pop(uid, None)
        if service is not None:
            service.stop()
        if conn is not None:
            conn.close()
        shutil.rmtree(self.folder(uid), ignore_errors=True)
        shutil.rmtree(self.root / "data" / uid, ignore_errors=True)
        self.post("MDS_MINIDAPPS_CHANGE", {})

    def set_permission(self, uid: str, trust: str) -> MiniDapp:
        with self.lock:
            dapp = self.dapps.get(uid)
            if dapp is None:
                raise MdsError(f"MiniDAPP not found : {uid}")
            if uid == self.minihub:
                raise MdsError("Cannot change permissions for the MiniHUB")
            if trust not in ("read", "write"):
                raise MdsError(f"Invalid trust setting - must be read/write : {trust}")
            dapp.conf["permission"] = trust
            self._save()
            return dapp

    def check_password(self, password: str) -> bool:
        import hmac

        valid = hmac.compare_digest(self.password.encode(), password.strip().encode())
        if not valid:
            time.sleep(WRONG_PASSWORD_PAUSE)
        return valid

    def reset_sessions(self) -> None:
        with self.lock:
            self.sessions = {hex0x(random_bytes(128)): uid for uid in self.dapps}
        self.post("MDS_MINIDAPPS_CHANGE", {})

    # ------------------------------------------------------------------------------------ events

    def post(self, event: str, data: Any, to: str = "*") -> None:
        """``MDS_POLLMESSAGE``: to the services first (all, or the addressee's), then onto the poll stack."""
        message = {"event": event, "data": data}
        with self.lock:
            services = [s for uid, s in self.services.items() if to in ("*", uid)]
        for service in services:
            service.deliver(message)
        self.polls.add(message, to)

    # ------------------------------------------------------------------------------------ commands

    def gate(self, dapp: MiniDapp | None) -> Callable[[ParsedCommand], Reply | None]:
        """CommandRunner's check for a MiniDapp: a write command from a READ MiniDapp becomes a pending action."""

        def check(parsed: ParsedCommand) -> Reply | None:
            if dapp is None or dapp.writable or parsed.name not in WRITE_COMMANDS:
                return None
            uid = hex0x(random_bytes(16))
            with self.lock:
                self.pending.append(PendingCommand(uid, dapp.to_json(), now_ms(), parsed.text))
            return {"command": parsed.text, "status": False, "pending": True, "pendinguid": uid, "error": PENDING_ERROR}

        return check

    def run_command(self, dapp: MiniDapp | None, text: str) -> str:
        from simnet.commands import run_multi

        result = run_multi(self.node, text, self.node.commands, gate=self.gate(dapp))
        self.node.save()
        return result

    def take_pending(self, uid: str) -> PendingCommand:
        with self.lock:
            found = next((p for p in self.pending if p.uid == uid), None)
            if found is None:
                raise MdsError(f"Pending UID not found : {uid}")
            self.pending.remove(found)
            return found

    def pending_result(self, pending: PendingCommand, accept: bool, status: bool, result: Any) -> None:
        data = {"uid": pending.uid, "accept": accept, "status": status, "result": result}
        self.post("MDS_PENDING", data, to=pending.minidapp["uid"])

    # ------------------------------------------------------------------------------------ per-MiniDapp stores

    def keypair_get(self, uid: str, key: str) -> str | None:
        values = self._keypairs(uid)
        return values.get(key)

    def keypair_set(self, uid: str, key: str, value: str) -> None:
        with self.lock:
            values = self._keypairs(uid)
            values[key] = value
            (self.data_folder(uid) / "keypair.json").write_text(json.dumps(values))

    def _keypairs(self, uid: str) -> dict[str, str]:
        path = self.data_folder(uid) / "keypair.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def sql(self, uid: str, statement: str) -> dict[str, Any]:
        """``MiniDAPPDB.executeSQL`` on SQLite: rows of strings keyed by upper-cased column labels, NULLs left out."""
        result: dict[str, Any] = {"sql": statement}
        with self.lock:
            conn = self._sql.get(uid)
            if conn is None:
                conn = sqlite3.connect(self.data_folder(uid) / "sql.db", check_same_thread=False)
                conn.isolation_level = None
                self._sql[uid] = conn
            try:
                cursor = conn.execute(statement)
                if cursor.description is None:
                    result.update(status=True, results=False)
                    return result
                labels = [d[0].upper() for d in cursor.description]
                rows = [
                    {label: str(value) for label, value in zip(labels, row, strict=True) if value is not None}
                    for row in cursor.fetchall()
                ]
                result.update(status=True, results=True, count=len(rows), rows=rows)
            except sqlite3.Error as exc:
                result.update(status=False, count=0, rows=[], results=False, error=f"org.sqlite.SQLiteException: {exc}")
        return result

    def fetch(self, url: str, post: str | None, auth: str = "") -> dict[str, Any]:
        """``NETcommand``: GET or POST ``url`` for a MiniDapp, as the node's RPCClient does it."""
        kind = "GET" if post is None else "POST"
        out: dict[str, Any] = {"request": kind, "url": url, "data": post or "", "basicauth": auth}
        out.update(status=False, pending=False)
        if not loopback_url(url):
            out["error"] = "simnet: MDS.net reaches only loopback addresses (127.0.0.0/8)"
            return out
        try:
            out["response"] = _http(url, post, auth)
            out["status"] = True
        except (OSError, urllib.error.URLError) as exc:
            out["error"] = f"java.io.IOException: {exc}"
        return {
            k: out[k]
            for k in ("request", "url", "data", "basicauth", "status", "pending", "response", "error")
            if k in out
        }

    # ------------------------------------------------------------------------------------ the API between dapps

    def api(self, caller: MiniDapp, target_name: str, kind: str, randid: str, message: str) -> str:
        """``MDSCommandHandler`` ``api``: a request (or a reply) as an ``MDSAPI`` event to the other MiniDapp; for a
        request, an automatic failure reply after 10 s (at once when there is no such MiniDapp)."""
        target = self.dapp_named(target_name)
        if target is None:
            self._api_failure(target_name, caller, randid, 0.0)
            return ""
        request = kind == "request"
        data = {"from": caller.name, "to": target.name, "id": randid, "request": request, "message": message}
        data["status"] = True
        self.post("MDSAPI", data, to=target.uid)
        if request:
            self._api_failure(target.name, caller, randid, API_TIMEOUT_SECONDS)
        return javajson.dumps({"status": True, "pending": False, "response": data})

    def _api_failure(self, from_name: str, caller: MiniDapp, randid: str, delay: float) -> None:
        data = {"from": from_name, "to": caller.name, "id": randid, "request": False, "status": False}
        data["message"] = "API failed to respond.."

        def fire() -> None:
            if not self._stop.is_set():
                self.post("MDSAPI", data, to=caller.uid)

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        timer.start()

    def comms(self, caller: MiniDapp, public: bool, message: str) -> str:
        data = {"minidapp": caller.name, "public": public, "message": message}
        self.post("MDSCOMMS", data, to="*" if public else caller.uid)
        return javajson.dumps({"status": True, "pending": False, "response": data})

    def notify(self, caller: MiniDapp, text: str, show: bool) -> str:
        data = {"uid": caller.uid, "title": caller.name if show else "", "text": text, "show": show}
        self.post("NOTIFICATION", data)
        return javajson.dumps({"command": "Notification", "status": True, "pending": False, "response": data})


def _http(url: str, post: str | None, auth: str) -> str:
    """RPCClient: ``User-Agent: Minima/1.0``, a POST as form data, lines joined without their newlines; a GET
    that is not 200 gives an empty answer, a POST that is not 200 fails."""
    import base64
    import ssl

    headers = {"User-Agent": "Minima/1.0", "Connection": "close"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    data = None
    if post is not None:
        data = post.encode("utf-8")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    method = "GET" if post is None else "POST"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 (http(s) loopback only)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # loopback only (checked above): a local self-signed server is fine
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310 (as above)
            status, body = response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, ""
    if status != 200:  # only HTTP_OK counts, a 201 included (fixture 210)
        if post is None:
            return ""
        raise OSError(f"POST request not HTTP_OK resp:{status} @ {url} params {post}")
    return "".join(body.splitlines())


def mds_root(state_dir: Path | None, index: int) -> Path:
    if state_dir is not None:
        path = state_dir / f"mds-{index}"
        path.mkdir(parents=True, exist_ok=True)
        return path
    import tempfile

    return Path(tempfile.mkdtemp(prefix=f"simnet-mds-{index}-"))


def remove_root(path: Path) -> None:
    if path.name.startswith("simnet-mds-") and os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
