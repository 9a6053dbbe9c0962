"""MDS's HTTPS server (MDSFileHandler): the hub login, ``/mdscommand_/<function>?uid=<session>``, and the files.

TLS with a self-signed certificate made at the first start (kept in the MDS folder), as a real node does; browsers
and clients must accept it (Chromium: ``--ignore-certificate-errors``). One request per connection. Command replies
are ``HTTP/1.1 200`` with CRLF headers and no trailing newline (fixture 195); an unknown session gets a bare 500;
files are ``HTTP/1.0`` with a charset for text types (199e); a missing file gets the node's 404 page.
"""

import datetime
import ipaddress
import json
import logging
import socket
import ssl
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from simnet import javajson
from simnet.httpserver import url_decode
from simnet.listener import Listener
from simnet.mds import FILES, POLL_WAIT_SECONDS, MiniDapp
from simnet.util import java_date, java_trim

if TYPE_CHECKING:
    from simnet.mds import Mds

logger = logging.getLogger(__name__)

COMMAND_SERVER = "Server: Minima MDS Command server 1.3"
FILE_SERVER = "Server: HTTP MDS Server from Minima 1.3"
READ_TIMEOUT = 70.0  # longer than a blocking poll
MAX_BODY = 8 * 1024 * 1024
HUB_PAGES = ("index.html", "invalid.html", "favicon.ico", "favicon.png")
NOT_FOUND = b"<html><head></head><body><br><br>Page not found..</body></html>"


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made once per MDS folder."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "mds.crt", folder / "mds.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simnet MDS")])
    now = datetime.datetime.now(datetime.UTC)
    alt = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(alt, critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class _Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body


def _read_request(conn: ssl.SSLSocket) -> _Request | None:
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > 65536:
            return None
    split = b"\r\n\r\n" if b"\r\n\r\n" in data else b"\n\n"
    head, rest = data.split(split, 1)
    lines = head.decode("utf-8", errors="replace").splitlines()
    parts = lines[0].split()
    if len(parts) < 2:
        return None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1") or "-1")
    if length > MAX_BODY:
        return None
    while length > 0 and len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return _Request(parts[0].upper(), parts[1], headers, rest[: max(length, 0)])


def _command_reply(text: str) -> bytes:
    body = text.encode("utf-8")
    head = (
        "HTTP/1.1 200 OK\r\n"
        f"{COMMAND_SERVER}\r\n"
        f"Date: {java_date()}\r\n"
        "Content-type: text/plain\r\n"
        f"Content-length: {len(body)}\r\n"
        "Access-Control-Allow-Origin: *\r\n\r\n"
    )
    return head.encode() + body


def _server_error() -> bytes:
    return (
        f"HTTP/1.1 500 Internal Server Error\r\n{FILE_SERVER}\r\nDate: {java_date()}\r\n"
        "Content-type: text/plain\r\nAccess-Control-Allow-Origin: *\r\n\r\n"
    ).encode()


def _file_reply(body: bytes, content_type: str) -> bytes:
    kind = f"{content_type}; charset=UTF-8" if content_type.startswith("text/") else content_type
    head = (
        f"HTTP/1.0 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\nAccess-Control-Allow-Origin: *\r\n"
    )
    if content_type.startswith("image"):
        head += "Cache-Control: max-age=604800: *\r\n"
    return (head + "\r\n").encode() + body


def _not_found() -> bytes:
    body = struct.pack(">H", len(NOT_FOUND)) + NOT_FOUND  # the node writes it with writeUTF
    head = (
        f"HTTP/1.0 404 OK\r\n{FILE_SERVER}\r\nDate: {java_date()}\r\nContent-type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nAccess-Control-Allow-Origin: *\r\n\r\n"
    )
    return head.encode() + body


# MiniFile.getContentType: by the ending, case-sensitively; anything else (.mjs, .json, .map, .woff2…) is text/plain,
# which browsers refuse for module scripts: a MiniDapp must load its code from .js files.
CONTENT_TYPES = {
    "html": "text/html",
    "htm": "text/html",
    "css": "text/css",
    "js": "text/javascript",
    "txt": "text/plain",
    "xml": "text/xml",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "svg": "image/svg+xml",
    "ico": "image/ico",
    "ttf": "font/ttf",
    "zip": "application/zip",
    "pdf": "application/pdf",
    "wasm": "application/wasm",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
}


def _content_type(name: str) -> str:
    ending = name.rsplit(".", 1)[1] if "." in name else ""
    return CONTENT_TYPES.get(ending, "text/plain")


def _page(name: str) -> bytes:
    return _file_reply((FILES / "hub" / name).read_bytes(), _content_type(name))


class MdsServer(Listener):
    def __init__(self, host: str, port: int, mds: "Mds", cert_folder: Path) -> None:
        self.mds = mds
        cert, key = make_certificate(cert_folder)
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(cert, key)
        super().__init__(host, port, name="simnet-mds")

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(READ_TIMEOUT)
        try:
            with self._tls.wrap_socket(conn, server_side=True) as tls:
                request = _read_request(tls)
                if request is not None:
                    tls.sendall(self._answer(request))
        except (OSError, ValueError) as exc:
            logger.debug("simnet mds: connection dropped (%s)", type(exc).__name__)
        finally:
            conn.close()

    def _answer(self, request: _Request) -> bytes:
        path = request.path[1:] if request.path.startswith("/") else request.path
        path = path[:-1] if path.endswith("/") else path
        try:
            path = java_trim(url_decode(path))
        except Exception:  # a bad escape: the node's URLDecoder throws and the hub shows invalid.html
            return _page("invalid.html")
        if path == "":
            path = "index.html"
        if path.startswith("mdscommand_/"):
            return self._command(path[len("mdscommand_/") :], request)
        if path in HUB_PAGES:
            return _page(path)
        if path.startswith("logoff.html"):
            self.mds.reset_sessions()
            return _page("index.html")
        if path.startswith("login.html"):
            return self._login(request)
        return self._file(path.split("?", 1)[0])

    def _login(self, request: _Request) -> bytes:
        form = dict(
            pair.split("=", 1) for pair in request.body.decode("utf-8", errors="replace").split("&") if "=" in pair
        )
        if not self.mds.check_password(unquote_plus(form.get("password", ""))):
            return _page("invalid.html")
        hub = self.mds.minihub
        target = f"./{hub}/index.html?uid={self.mds.session_of(hub)}"
        page = (FILES / "hub" / "success.html").read_text().replace("__REDIRECT__", json.dumps(target))
        return _file_reply(page.encode(), "text/html")

    def _file(self, path: str) -> bytes:
        root = (self.mds.root / "web").resolve()
        target = (root / path).resolve()
        if target.name.lower() == "mds.js":
            return _file_reply((FILES / "mds.js").read_bytes(), "text/javascript")
        if root not in target.parents or not target.is_file():
            return _not_found()
        return _file_reply(target.read_bytes(), _content_type(target.name))

    def _command(self, rest: str, request: _Request) -> bytes:
        function, _, query = rest.partition("?")
        session = ""
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            if name == "uid":
                session = value
                break
        dapp = self.mds.dapp_of_session(session)
        if dapp is None:
            return _server_error()
        if "content-length" not in request.headers:
            return _page("invalid.html")
        try:
            data = url_decode(java_trim(request.body.decode("utf-8", errors="replace")))
        except Exception:
            return _page("invalid.html")
        return _command_reply(self._run(dapp, function, data))

    def _run(self, dapp: MiniDapp, function: str, data: str) -> str:
        mds = self.mds
        if function == "cmd":
            return mds.run_command(dapp, data)
        if function == "sql":
            return javajson.dumps(mds.sql(dapp.uid, data))
        if function in ("poll", "megapoll"):
            return _poll(mds, dapp, data, wait=function == "poll")
        return run_function(mds, dapp, function, data)


def run_function(mds: "Mds", dapp: MiniDapp, function: str, data: str) -> str:
    """The MDS functions other than cmd, sql and polling, shared by pages and ``service.js`` (MDSCommandHandler)."""
    first, _, rest = data.partition("&")
    if function == "net":
        return javajson.dumps(mds.fetch(data, None))
    if function == "netpost":
        return javajson.dumps(mds.fetch(first, rest))
    if function == "netauth":
        return javajson.dumps(mds.fetch(first, None, rest))
    if function == "keypair":
        return _keypair(mds, dapp, first, rest)
    if function == "api":
        parts = data.split("&", 3)
        if len(parts) < 4:
            return '{"status":false}'
        return mds.api(dapp, parts[0], parts[1], parts[2], parts[3])
    if function == "comms":
        return mds.comms(dapp, first == "public", rest)
    if function == "notify":
        return mds.notify(dapp, data, True)
    if function == "notifycancel":
        return mds.notify(dapp, "", False)
    if function == "dapplink":
        return _dapplink(mds, dapp, data.strip())
    return '{"status":false}'


def _keypair(mds: "Mds", dapp: MiniDapp, action: str, rest: str) -> str:
    if action == "get":
        value = mds.keypair_get(dapp.uid, rest)
        reply: dict[str, Any] = {"command": "get", "key": rest, "value": value, "status": value is not None}
    else:
        key, _, value = rest.partition("&")
        mds.keypair_set(dapp.uid, key, value)
        reply = {"command": "set", "key": key, "value": value, "status": True}
    reply["pending"] = False
    return javajson.dumps(reply)


def _dapplink(mds: "Mds", dapp: MiniDapp, name: str) -> str:
    other = mds.dapp_named(name)
    if other is None:
        return '{"status":false,"error":"MiniDAPP with that name not found"}'
    if not (other.conf.get("permission", "read") == "read" or dapp.writable):
        return '{"status":false,"error":"MiniDAPP permission escalation"}'
    response = {"uid": other.uid, "sessionid": mds.session_of(other.uid)}
    return javajson.dumps({"status": True, "response": response})


def _poll(mds: "Mds", dapp: MiniDapp, data: str, *, wait: bool) -> str:
    """POLLcommand / MEGAPOLLcommand: ``series=<s>&counter=<n>``; a wrong series only tells the current one."""
    fields = dict(pair.split("=", 1) for pair in data.split("&") if "=" in pair)
    try:
        counter = int(fields.get("counter", ""))
    except ValueError:
        return '{"status":false}'
    stack = mds.polls
    reply: dict[str, Any] = {"series": stack.series, "counter": stack.counter, "status": False}
    if fields.get("series") != stack.series:
        return javajson.dumps(reply)
    if not wait:
        reply["status"] = True
        reply["response"] = [m.to_json() for m in stack.since(counter, dapp.uid)]
        return javajson.dumps(reply)
    with stack.changed:
        stack.changed.wait_for(lambda: bool(stack.since(counter, dapp.uid)), timeout=POLL_WAIT_SECONDS)
        found = stack.since(counter, dapp.uid)
        if found:
            reply["status"] = True
            reply["response"] = found[0].to_json()
        reply["counter"] = stack.counter
    return javajson.dumps(reply)
