"""The typed client for a Minima node's RPC interface (``maxima/REFERENCE.md`` §1 and its "Implications").

All of the node's quirks are handled here, in one place:

- HTTP 200 with ``"status":false`` is a failure (``RPCError``; ``NodeStartingUp`` for "Maxima still starting up..";
  ``CommandPending`` for ``"pending":true``); 401 is ``NodeAuthError``; anything else at the transport level
  (refused, reset, timeout, a non-JSON body, another status) is ``NodeUnreachable``.
- ``;`` separates commands anywhere in a line, even inside JSON or quotes, and a JSON array comes back when that
  happens (``CommandSplit``). So every value is checked before any I/O by ``format_value``: a user's text can never
  add a second command, a parameter, or change how the node tokenises the line (see its docstring).
- Payloads go as ``0x`` hex; POST bodies are ASCII only (the node reads Content-Length *characters*); in a GET the
  whole command is percent-encoded, so ``+`` is ``%2B`` and ``#`` is ``%23``.
- The body is followed by an extra ``\\n`` and header lines end in LF only; the 401 has neither Content-Type nor
  Content-Length. ``requests`` copes with all of that.

Nothing here logs a parameter value or a reply body: only command names, timings and error classes.
"""

import copy
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import requests
from requests.adapters import HTTPAdapter

from .codecs import MaximaAddress, PermanentAddress, from_hex, mx_decode, parse_address, parse_public_key, to_hex
from .errors import (
    AddressUnresolved,
    CodecError,
    CommandPending,
    CommandSplit,
    DeliveryFailed,
    NodeAuthError,
    NodeStartingUp,
    NodeUnreachable,
    RPCError,
)

logger = logging.getLogger(__name__)

ParamValue = str | int | bool | bytes | dict[str, Any] | list[Any] | None

RPC_USER = "minima"
STARTING_UP = "Maxima still starting up"
MAX_UNRESOLVED = "MAX address invalid"
_COMMAND_NAME_RE = re.compile(r"[a-z][a-z0-9]*")
_PARAM_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_PRINTABLE_RE = re.compile(r"[\x20-\x7e]*")
_FILTER_RE = re.compile(r"[A-Za-z0-9_]+")
_TXN_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# ; splits commands; " toggles quoting; {} [] change how spaces split (and {..}/[..] values are parsed as JSON);
# \ is never needed and is kept out so no escaping rule can matter.
_NEVER_IN_VALUES = ';"{}[]\\'
# Printable ASCII less those (and, in JSON strings, less the space), in one pass over a value: a message's hex is
# 128 K characters, and a set's pass over them after the pattern's cost 1 ms a send.
_VALUE_RE = re.compile(f"[^\\x00-\\x1f\\x7f-\\U0010ffff{re.escape(_NEVER_IN_VALUES)}]*")
_JSON_TEXT_RE = re.compile(f"[^\\x00-\\x20\\x7f-\\U0010ffff{re.escape(_NEVER_IN_VALUES)}]*")
_SECRET_PARAMS = frozenset({"privatekey", "password"})


# ------------------------------------------------------------------------------------------- command lines


def format_value(value: str | int | bool | bytes | dict[str, Any] | list[Any]) -> str:
    """The text of one parameter value, or ``CodecError`` if it cannot be sent exactly and safely.

    The node (CommandRunner) splits the line at every ``;``, then splits on spaces unless inside double quotes or
    ``{}``/``[]`` nesting, strips one pair of quotes, trims, and parses ``{..}``/``[..]`` values as JSON. Its fast
    path also rewrites every ``:`` to `` : `` before matching quotes, which mangles a quoted value with a colon.
    So: bytes -> ``0x`` hex; bool -> ``true``/``false``; int -> decimal; dict/list -> compact JSON whose strings
    are printable ASCII without spaces or any of ``; " \\ { } [ ]``; str -> printable ASCII without those
    characters, sent bare, or in double quotes when it has inner spaces (then no leading/trailing space and no
    ``:``); the empty string is ``""``; a value of colons only is refused (the fast path drops it).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return to_hex(value)
    if isinstance(value, dict | list):
        return _format_json(value)
    if isinstance(value, str):
        return _format_text(value)
    raise CodecError(f"cannot send a {type(value).__name__} as an RPC value")


def _format_text(text: str) -> str:
    if not _VALUE_RE.fullmatch(text):
        if not _PRINTABLE_RE.fullmatch(text):  # which of the two it is
            raise CodecError("RPC values must be printable ASCII")
        raise CodecError('RPC values cannot contain ; " \\ { } [ or ]')
    if text == "":
        return '""'
    if text.strip(":") == "":
        raise CodecError("the node drops a value made only of colons")
    if " " not in text:
        return text
    if text != text.strip(" "):
        raise CodecError("the node would trim leading or trailing spaces")
    if ":" in text:
        raise CodecError("a value with both a space and a colon cannot be quoted safely")
    return f'"{text}"'


def _check_json_text(text: str) -> None:
    if not _JSON_TEXT_RE.fullmatch(text):
        raise CodecError('JSON strings in RPC values must be printable ASCII without spaces or ; " \\ { } [ ]')


def _check_json(node: Any) -> None:
    if node is None or isinstance(node, bool | int):
        return
    if isinstance(node, str):
        _check_json_text(node)
    elif isinstance(node, list):
        for item in node:
            _check_json(item)
    elif isinstance(node, dict):
        for key, item in node.items():
            if not isinstance(key, str):
                raise CodecError("JSON object keys must be strings")
            _check_json_text(key)
            _check_json(item)
    else:
        raise CodecError(f"cannot send a {type(node).__name__} inside a JSON value")


def _format_json(value: dict[str, Any] | list[Any]) -> str:
    _check_json(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def format_command(name: str, params: Mapping[str, ParamValue]) -> str:
    """One safe command line: ``name key:value …`` in the order given; ``None`` values are left out."""
    if not isinstance(name, str) or not _COMMAND_NAME_RE.fullmatch(name):
        raise CodecError("invalid command name")
    parts = [name]
    for key, value in params.items():
        if value is None:
            continue
        if not _PARAM_NAME_RE.fullmatch(key):
            raise CodecError("invalid parameter name")
        parts.append(f"{key}:{format_value(value)}")
    return " ".join(parts)


def _check_line(line: str) -> str:
    """A line for ``batch``: one command, printable ASCII, no ``;``. Build it with ``format_command``."""
    if not isinstance(line, str) or not line.strip() or not _PRINTABLE_RE.fullmatch(line) or ";" in line:
        raise CodecError("a batch line must be one printable-ASCII command without ;")
    return line


def _command_name(line: str) -> str:
    return line.strip().split(" ", 1)[0].lower()


# ------------------------------------------------------------------------------------------- reply checking


def _redact(reply: Any) -> Any:
    """A copy of a reply without echoed secrets (``params.privatekey``, ``params.password``, whole lines)."""
    if isinstance(reply, list):
        return [_redact(item) for item in reply]
    if not isinstance(reply, dict):
        return reply
    reply = copy.deepcopy(reply)
    params = reply.get("params")
    if isinstance(params, dict):
        for key in _SECRET_PARAMS.intersection(params):
            params[key] = "***"
    if isinstance(reply.get("command"), str):
        reply["command"] = _command_name(reply["command"])  # "Invalid parameter" echoes the whole line
    return reply


def _check_envelope(name: str, envelope: Any) -> dict[str, Any]:
    """The envelope itself when ``status`` is true; the right ``RPCError`` otherwise."""
    if not isinstance(envelope, dict):
        raise RPCError(name, "unexpected reply from the node")
    status = envelope.get("status")
    if status is True:
        return envelope
    message = str(envelope.get("error") or envelope.get("message") or "the command failed")
    reply = _redact(envelope)
    if envelope.get("pending") is True:
        raise CommandPending(name, message, reply)
    if message.startswith(STARTING_UP):
        raise NodeStartingUp(name, message, reply)
    if message.startswith(MAX_UNRESOLVED):
        raise AddressUnresolved(name, message, reply)
    if status is False:
        raise RPCError(name, message, reply)
    raise RPCError(name, "unexpected reply from the node", reply)


def _expect(name: str, value: Any, kind: type, what: str = "response") -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RPCError(name, f"unexpected reply from the node: {what}")
    return value


def _field(name: str, mapping: Any, key: str, kind: type) -> Any:
    return _expect(name, mapping.get(key) if isinstance(mapping, dict) else None, kind, f"no {key}")


def _hex_field(name: str, mapping: Any, key: str) -> bytes:
    try:
        return from_hex(_field(name, mapping, key, str))
    except CodecError:
        raise RPCError(name, f"unexpected reply from the node: {key} is not hex") from None


def _key_field(name: str, mapping: Any, key: str) -> bytes:
    try:
        return parse_public_key(_field(name, mapping, key, str))
    except CodecError:
        raise RPCError(name, f"unexpected reply from the node: {key} is not an RSA-1024 key") from None


def _int_field(name: str, mapping: Any, key: str) -> int:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if isinstance(value, str) and value.isdigit():
        return int(value)  # timemilli is a number in sends and webhooks but a string elsewhere
    return _field(name, mapping, key, int)


# ------------------------------------------------------------------------------------------- parameter checks


def _hex_text(value: str | bytes) -> str:
    """Canonical ``0x`` hex of a hex string or of bytes."""
    return to_hex(value if isinstance(value, bytes | bytearray) else from_hex(value))


def _address_text(value: str) -> str:
    """A Minima wallet/script address: ``0x`` hex (made canonical) or checked ``Mx`` text."""
    if isinstance(value, str) and value.startswith("Mx"):
        mx_decode(value)
        return value
    return _hex_text(value)


def _positive_int(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CodecError(f"{what} must be a positive integer")
    return value


def _hook_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise CodecError("a webhook must be an http(s) URL")
    format_value(url)
    return url


_AMOUNT_RE = re.compile(r"(?:0|[1-9][0-9]{0,19})(?:\.[0-9]{1,44})?")


def _amount_text(amount: str | int) -> str:
    """A positive decimal amount, as the node reads it: digits, at most one point, no sign, no exponent."""
    text = str(amount) if isinstance(amount, int) and not isinstance(amount, bool) else amount
    if not isinstance(text, str) or not _AMOUNT_RE.fullmatch(text) or not text.strip("0."):
        raise CodecError("an amount is a positive decimal number such as 10 or 0.5")
    return text


def _state_json(state: Mapping[int, str]) -> dict[str, str]:
    """``{port: value}`` as the JSON object ``send … state:`` takes, ports in order (fixture 84)."""
    result = {}
    for port in sorted(state):
        value = state[port]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 255:
            raise CodecError("state ports run from 0 to 255")
        if not isinstance(value, str) or not value:
            raise CodecError("state values are non-empty strings")
        result[str(port)] = value
    return result


# ------------------------------------------------------------------------------------------- typed results


@dataclass(frozen=True)
class MaximaInfo:
    """``maxima action:info``. Addresses are the node's exact text (``MaximaAddress.parse`` reads them)."""

    name: str
    publickey: bytes  # the identity key, 162-byte DER
    mxpublickey: str
    mls: str
    localidentity: str
    p2pidentity: str
    contact: str  # changes with the connected hosts, even between calls: never publish it
    staticmls: bool
    poll: int

    @property
    def publickey_hex(self) -> str:
        return to_hex(self.publickey)


@dataclass(frozen=True)
class SendResult:
    """The node's answer to ``maxima action:send``; ``delivered`` is False for a ``poll:true`` send (queued)."""

    msgid: str
    delivered: bool
    from_key: bytes
    to_key: bytes  # the key the message was encrypted to: MLS or per-host key, not the identity
    timemilli: int
    poll: bool
    error: str | None = None


@dataclass(frozen=True)
class Balance:
    """One token's line of ``balance`` (fixtures 144-149c), amounts in the token's units.

    ``confirmed``: coins at least 3 blocks deep (the node's own rule); ``unconfirmed``: mined, not yet that deep;
    ``sendable``: confirmed coins of the wallet's own keys. Blind to the mempool: a coin that a transaction not yet
    mined spends still counts, and a payment not yet mined does not show at all.
    """

    tokenid: str
    confirmed: Decimal
    unconfirmed: Decimal
    sendable: Decimal
    coins: int


def _balance(name: str, line: Any) -> Balance:
    def amount(key: str) -> Decimal:
        try:
            return Decimal(_field(name, line, key, str))
        except ArithmeticError:
            raise RPCError(name, f"unexpected reply from the node: {key}") from None

    return Balance(
        tokenid=_field(name, line, "tokenid", str),
        confirmed=amount("confirmed"),
        unconfirmed=amount("unconfirmed"),
        sendable=amount("sendable"),
        coins=_int_field(name, line, "coins"),
    )


def _send_result(name: str, response: Any) -> SendResult:
    poll = response.get("poll") is True if isinstance(response, dict) else False
    delivered = False if poll else _field(name, response, "delivered", bool)
    error = response.get("error")
    return SendResult(
        msgid=_field(name, response, "msgid", str),
        delivered=delivered,
        from_key=_hex_field(name, response, "from"),
        to_key=_hex_field(name, response, "to"),
        timemilli=_int_field(name, response, "timemilli"),
        poll=poll,
        error=error if isinstance(error, str) else None,
    )


# ------------------------------------------------------------------------------------------- the client


class OneRequestPerConnection(HTTPAdapter):
    """An adapter that never reuses a connection.

    The node closes the socket after every reply but says nothing about it (HTTP/1.1, no ``Connection: close``),
    so urllib3 puts the connection back in its pool and may send the next request on a socket the node is closing
    at that very moment: a random ``ConnectionError``. Dropping the idle pool before each request avoids that.
    """

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.close()
        return super().send(request, *args, **kwargs)


class MinimaRPC:
    """One node's RPC. Thin and typed: one method per command the project uses, plus ``command`` and ``batch``.

    ``password`` turns on HTTP Basic auth as user ``minima``. ``method="GET"`` percent-encodes the command into the
    path instead of POSTing it. The session is created with ``trust_env=False`` (no proxies from the environment
    for a node on localhost) and ``OneRequestPerConnection`` mounted; a ``session`` you pass is used as it is, so
    mount that adapter on it too when it talks to a real node. Not thread-safe: one client per thread.
    """

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        timeout: float = 10.0,
        verify_tls: bool | str = True,
        method: Literal["POST", "GET"] = "POST",
        session: requests.Session | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the RPC url must be http(s)://host:port")
        if method not in ("POST", "GET"):
            raise ValueError("method must be POST or GET")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.verify_tls = verify_tls
        self.method = method
        self._auth = (RPC_USER, password) if password else None
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.mount("http://", OneRequestPerConnection())
            session.mount("https://", OneRequestPerConnection())
        self._session = session

    def __repr__(self) -> str:
        return f"MinimaRPC({self.url!r}, method={self.method!r}, auth={self._auth is not None})"

    # -- transport

    def _send(self, line: str) -> requests.Response:
        options: dict[str, Any] = {
            "auth": self._auth,
            "timeout": self.timeout,
            "verify": self.verify_tls,
            "allow_redirects": False,
            "headers": {"Connection": "close"},
        }
        if self.method == "GET":
            return self._session.get(f"{self.url}/{urllib.parse.quote(line, safe='')}", **options)
        options["headers"]["Content-Type"] = "text/plain"
        return self._session.post(f"{self.url}/", data=line.encode("ascii"), **options)

    def _call(self, name: str, line: str) -> dict[str, Any] | list[Any]:
        """Run one request; the parsed JSON reply (object or array), or a transport-level error."""
        started = time.monotonic()
        try:
            response = self._send(line)
        except requests.Timeout:
            logger.warning("rpc %s: no answer within %ss", name, self.timeout)
            raise NodeUnreachable(name, f"no answer within {self.timeout}s") from None
        except requests.RequestException as exc:  # the exception text would carry the URL, i.e. a GET's command
            logger.warning("rpc %s: %s", name, type(exc).__name__)
            raise NodeUnreachable(name, f"cannot reach the node ({type(exc).__name__})") from None
        logger.debug("rpc %s: HTTP %s in %.0f ms", name, response.status_code, (time.monotonic() - started) * 1000)
        return self._decode(name, response)

    def _decode(self, name: str, response: requests.Response) -> dict[str, Any] | list[Any]:
        if response.status_code == 401:
            raise NodeAuthError(name, "the node refused the RPC credentials", _json_or_none(response))
        if response.status_code != 200:
            raise NodeUnreachable(name, f"unexpected HTTP status {response.status_code}")
        reply = _json_or_none(response)
        if not isinstance(reply, dict | list):
            raise NodeUnreachable(name, "the node's reply is not a JSON object or array")
        return reply

    def _envelope(self, name: str, /, **params: ParamValue) -> dict[str, Any]:
        """Run one command; its whole reply envelope, checked for ``status:true``."""
        line = format_command(name, params)
        reply = self._call(name, line)
        if isinstance(reply, list):
            raise CommandSplit(name, f"one command was sent but {len(reply)} replies came back", _redact(reply))
        try:
            return _check_envelope(name, reply)
        except RPCError as exc:
            logger.info("rpc %s failed: %s", name, exc.code)
            raise

    # -- generic

    def command(self, name: str, /, **params: ParamValue) -> Any:
        """Build ONE command line from ``params`` (see ``format_value``), run it, return its ``response``."""
        return self._envelope(name, **params).get("response")

    def batch(self, commands: list[str]) -> list[Any]:
        """Run several commands joined with ``;`` (the node runs them in order and stops at the first failure).

        Returns each command's ``response``. A failure raises the matching ``RPCError`` naming the failing
        command; a reply that does not line up with ``commands`` raises ``CommandSplit``.
        """
        if not commands:
            raise CodecError("an empty batch")
        names = [_command_name(_check_line(line)) for line in commands]
        reply = self._call(names[0], ";".join(commands))
        envelopes = reply if isinstance(reply, list) else [reply]  # a first-command failure is a single object
        results = [self._batch_step(names, index, envelope) for index, envelope in enumerate(envelopes)]
        if len(results) != len(commands):
            raise CommandSplit(names[0], f"{len(commands)} commands were sent, {len(results)} replies came back")
        return results

    def _batch_step(self, names: list[str], index: int, envelope: Any) -> Any:
        if index >= len(names):
            raise CommandSplit(names[0], "more replies than commands came back", _redact(envelope))
        name = names[index]
        try:
            _check_envelope(name, envelope)
        except RPCError as exc:
            logger.info("rpc batch step %s/%s (%s) failed: %s", index + 1, len(names), name, exc.code)
            raise type(exc)(name, f"step {index + 1} of {len(names)}: {exc.message}", exc.reply) from None
        if _command_name(str(envelope.get("command", ""))) != name:
            raise CommandSplit(name, f"step {index + 1} of {len(names)} answered as another command")
        return envelope.get("response")

    # -- node

    def status(self) -> dict[str, Any]:
        return _expect("status", self.command("status"), dict)

    def block(self) -> dict[str, Any]:
        return _expect("block", self.command("block"), dict)

    # -- maxima

    def maxima_info(self) -> MaximaInfo:
        name = "maxima"
        response = self.command(name, action="info")
        return MaximaInfo(
            name=_field(name, response, "name", str),
            publickey=_key_field(name, response, "publickey"),
            mxpublickey=_field(name, response, "mxpublickey", str),
            mls=_field(name, response, "mls", str),
            localidentity=_field(name, response, "localidentity", str),
            p2pidentity=_field(name, response, "p2pidentity", str),
            contact=_field(name, response, "contact", str),
            staticmls=_field(name, response, "staticmls", bool),
            poll=_field(name, response, "poll", int),
        )

    def maxima_hosts(self) -> list[dict[str, Any]]:
        return _field("maxima", self.command("maxima", action="hosts"), "hosts", list)

    def maxima_send(
        self,
        *,
        application: str,
        data: bytes,
        to: str | None = None,
        publickey: bytes | None = None,
        poll: bool = False,
    ) -> SendResult:
        """Send one Maxima message to ``to`` (``Mx…@host:port`` or ``MAX#…``) or a contact's ``publickey``.

        Raises ``DeliveryFailed`` (with ``permanent`` and ``msgid``) when the node says ``delivered:false``.
        A ``poll:true`` send only queues the message (one attempt, never retried by the node).
        """
        if (to is None) == (publickey is None):
            raise CodecError("give exactly one of to= and publickey=")
        if not isinstance(data, bytes | bytearray):
            raise CodecError("data must be bytes")
        recipient = {"to": str(parse_address(to))} if to is not None else {"publickey": _key_text(publickey)}
        params: dict[str, ParamValue] = {"action": "send", **recipient, "application": application, "data": data}
        envelope = self._envelope("maxima", **params, poll=True if poll else None)
        result = _send_result("maxima", envelope.get("response"))
        if not result.poll and not result.delivered:
            error = result.error or "Not delivered"
            failure = DeliveryFailed("maxima", error, _redact(envelope), error=error, msgid=result.msgid)
            logger.info("maxima send not delivered (%s)", "permanent" if failure.permanent else "transient")
            raise failure
        return result

    def maxsign(self, data: bytes, *, privatekey: bytes | None = None) -> bytes:
        """Sign with the node's identity key (or ``privatekey``, PKCS#8 DER)."""
        response = self.command("maxsign", data=_bytes(data), privatekey=_optional_bytes(privatekey))
        return _hex_field("maxsign", response, "signature")

    def maxverify(self, *, data: bytes, publickey: bytes, signature: bytes) -> bool:
        response = self.command(
            "maxverify", data=_bytes(data), publickey=_key_text(publickey), signature=_bytes(signature)
        )
        return _field("maxverify", response, "valid", bool)

    def maxencrypt(self, *, data: bytes, publickey: bytes) -> bytes:
        response = self.command("maxencrypt", data=_bytes(data), publickey=_key_text(publickey))
        return _hex_field("maxencrypt", response, "encrypted")

    def maxdecrypt(self, data: bytes, *, privatekey: bytes | None = None) -> bytes:
        """Open a maxencrypt blob with the node's identity key (or ``privatekey``, PKCS#8 DER)."""
        response = self.command("maxdecrypt", data=_bytes(data), privatekey=_optional_bytes(privatekey))
        return _hex_field("maxdecrypt", response, "decrypted")

    # -- webhooks

    def webhooks_list(self) -> list[str]:
        """The hooks as the node stores them: ``FILTER#url`` strings."""
        return _webhooks(self.command("webhooks", action="list"))

    def webhooks_add(self, *, hook: str, filter: str = "") -> list[str]:
        if filter and not _FILTER_RE.fullmatch(filter):
            raise CodecError("a webhook filter is an event-name substring such as MAXIMA")
        return _webhooks(self.command("webhooks", action="add", hook=_hook_url(hook), filter=filter or None))

    def webhooks_remove(self, entry: str) -> list[str]:
        """Remove a hook by its full ``FILTER#url`` as ``webhooks_list`` shows it (a bare URL removes nothing)."""
        prefix, sep, url = entry.partition("#") if isinstance(entry, str) else ("", "", "")
        if not sep or (prefix and not _FILTER_RE.fullmatch(prefix)):
            raise CodecError("pass the full FILTER#url entry as webhooks_list shows it")
        _hook_url(url)
        return _webhooks(self.command("webhooks", action="remove", hook=entry))

    # -- contacts and permanent addresses

    def maxcontacts_list(self) -> list[dict[str, Any]]:
        return _field("maxcontacts", self.command("maxcontacts", action="list"), "contacts", list)

    def maxcontacts_add(self, contact: str) -> dict[str, Any]:
        response = self.command("maxcontacts", action="add", contact=str(parse_address(contact)))
        return _expect("maxcontacts", response, dict)

    def maxextra_staticmls(self, host: str) -> Any:
        """Pin this node's MLS to ``host`` (a ``Mx…@host:port`` p2pidentity), or ``"clear"`` to unpin."""
        value = "clear" if host == "clear" else str(MaximaAddress.parse(host))
        return self.command("maxextra", action="staticmls", host=value)

    def maxextra_addpermanent(self, publickey: bytes) -> Any:
        return self.command("maxextra", action="addpermanent", publickey=_key_text(publickey))

    def maxextra_getaddress(self, maxaddress: str) -> str | None:
        """The current contact address behind a ``MAX#…`` address, or None when the MLS does not know the key."""
        response = self.command("maxextra", action="getaddress", maxaddress=str(PermanentAddress.parse(maxaddress)))
        if not _field("maxextra", response, "success", bool):
            return None
        return _field("maxextra", response.get("mlsresponse"), "address", str)

    # -- tokens, scripts and coins

    def tokencreate(self, *, name: str, amount: int, decimals: int = 0) -> dict[str, Any]:
        """Mint a token. Its ``tokenid`` here is provisional: read the final one from ``tokens`` after mining."""
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 16:
            raise CodecError("decimals run from 0 to 16")
        response = self.command("tokencreate", name=name, amount=_positive_int(amount, "amount"), decimals=decimals)
        return _expect("tokencreate", response, dict)

    def tokens(self) -> list[dict[str, Any]]:
        return _expect("tokens", self.command("tokens"), list)

    def newscript(self, *, script: str, trackall: bool = True) -> dict[str, Any]:
        """Register (and track) a script; the reply carries its ``address``."""
        response = self.command("newscript", trackall=bool(trackall), script=script)
        return _expect("newscript", response, dict)

    def getaddress(self) -> dict[str, Any]:
        """A wallet address of the node: ``address`` (0x…), ``miniaddress`` (Mx…), ``publickey`` (fixture 83)."""
        response = _expect("getaddress", self.command("getaddress"), dict)
        _field("getaddress", response, "address", str)
        return response

    def send(self, *, address: str, amount: str | int, tokenid: str | None = None) -> dict[str, Any]:
        """``send address: amount: (tokenid:)``: pay ``amount`` (a positive decimal such as ``10`` or ``0.5``) of Minima
        or of the token ``tokenid`` to ``address`` (``0x…`` or ``Mx…``). Returns the posted TxPoW (``txpowid``)."""
        response = self.command(
            "send",
            address=_address_text(address),
            amount=_amount_text(amount),
            tokenid=None if tokenid is None else _hex_text(tokenid),
        )
        return _expect("send", response, dict)

    def send_with_state(self, *, address: str, amount: int, tokenid: str, state: dict[int, str]) -> dict[str, Any]:
        """``send address: amount: tokenid: state:{…}``: pay to a script address and store state with the coin."""
        response = self.command(
            "send",
            address=_address_text(address),
            amount=_positive_int(amount, "amount"),
            tokenid=_hex_text(tokenid),
            state=_state_json(state),
        )
        return _expect("send", response, dict)

    def txn_rotate(
        self,
        *,
        txn_id: str,
        coinid: str,
        address: str,
        tokenid: str,
        amount: int,
        state: dict[int, str],
        owner_publickey: str,
    ) -> list[Any]:
        """Spend ``coinid`` back to ``address`` with new ``state``, signed by ``owner_publickey``, in one batch.

        The nine commands of REFERENCE §5 (fixture 88). If a step fails, ``txndelete`` is tried so that the
        transaction id can be used again, then the error is raised.
        """
        if not isinstance(txn_id, str) or not _TXN_ID_RE.fullmatch(txn_id):
            raise CodecError("a transaction id is 1-64 letters, digits, _ or -")
        commands = _rotation_commands(txn_id, coinid, address, tokenid, amount, state, owner_publickey)
        try:
            return self.batch(commands)
        except (NodeUnreachable, NodeAuthError):
            raise
        except RPCError:
            self._forget_txn(txn_id)
            raise

    def _forget_txn(self, txn_id: str) -> None:
        try:
            self.command("txndelete", id=txn_id)
        except RPCError as exc:
            logger.info("txndelete after a failed rotation: %s", exc.code)

    def balance(self, *, tokenid: str | None = None) -> list[Balance]:
        """``balance``: one line per token the wallet holds (Minima, ``0x00``, first)."""
        response = self.command("balance", tokenid=None if tokenid is None else _hex_text(tokenid))
        return [_balance("balance", line) for line in _expect("balance", response, list)]

    def coins(
        self,
        *,
        address: str | None = None,
        tokenid: str | None = None,
        simplestate: bool = False,
        relevant: bool = False,
        state: str | None = None,
        order: Literal["asc", "desc"] | None = None,
    ) -> list[dict[str, Any]]:
        """Coins known to the node (``relevant``: only the wallet's and tracked ones), at any depth, with ``created``.
        State is a ``[{port,type,data}]`` array, or ``{"port": value}`` with ``simplestate=True`` (fixtures 85, 90).
        ``state`` keeps coins with that text anywhere in their state (a substring: fixture 154; ``[`` is read as
        JSON, so it is refused here: fixture 155); ``order`` sorts by the block that created them (fixtures 150/151).
        """
        if order not in (None, "asc", "desc"):
            raise CodecError('order is "asc" or "desc"')
        response = self.command(
            "coins",
            relevant=True if relevant else None,
            address=None if address is None else _address_text(address),
            tokenid=None if tokenid is None else _hex_text(tokenid),
            state=None if state is None else _state_filter_text(state),
            order=order,
            simplestate=True if simplestate else None,
        )
        return _expect("coins", response, list)

    def coinnotify(self, *, action: Literal["add", "remove", "check"], address: str) -> dict[str, Any]:
        """``coinnotify``: ask the node to raise NEWCOIN events for coins at ``address`` (an MDS event to MiniDapps
        and a NEWCOIN webhook); ``check`` answers ``found`` (fixtures 130-134)."""
        if action not in ("add", "remove", "check"):
            raise CodecError('a coinnotify action is "add", "remove" or "check"')
        response = self.command("coinnotify", action=action, address=_address_text(address))
        return _expect("coinnotify", response, dict)

    # -- the wallet's keys (TreeKey signatures, not the Maxima identity's RSA)

    def keys(self, *, publickey: str | None = None) -> list[dict[str, Any]]:
        """``keys action:list``: the wallet's signing keys (``publickey``, ``uses``, ``maxuses``…), or only
        ``publickey`` (fixture 100)."""
        key = None if publickey is None else _wallet_key_text(publickey)
        response = _field("keys", self.command("keys", action="list", publickey=key), "keys", list)
        if not all(isinstance(key, dict) and isinstance(key.get("publickey"), str) for key in response):
            raise RPCError("keys", "unexpected reply from the node: keys")
        return response

    def sign(self, *, publickey: str, data: bytes) -> bytes:
        """``sign``: the wallet key ``publickey`` (0x, 32 bytes) signs ``data``; a TreeKey signature of about 4 kB
        (fixture 101). A key the wallet does not hold fails (fixture 106)."""
        response = self.command("sign", publickey=_wallet_key_text(publickey), data=_bytes(data))
        if not isinstance(response, str):
            raise RPCError("sign", "unexpected reply from the node: sign")
        return from_hex(response)

    def verify(self, *, publickey: str, data: bytes, signature: bytes) -> bool:
        """``verify``: True when ``signature`` is ``publickey``'s over ``data``. The node answers a bad signature
        with ``status:false`` (``Signature NOT valid``, or ``Signature publickey is different`` for another key:
        fixtures 102-105): that is False here, not an error; an unreachable node still raises."""
        try:
            self.command(
                "verify", publickey=_wallet_key_text(publickey), data=_bytes(data), signature=_bytes(signature)
            )
        except (NodeUnreachable, NodeAuthError, NodeStartingUp, CommandSplit, CommandPending):
            raise
        except RPCError as refused:
            if refused.message.startswith(_VERIFY_REFUSALS):
                return False
            raise
        return True


def _rotation_commands(
    txn_id: str, coinid: str, address: str, tokenid: str, amount: int, state: dict[int, str], owner_publickey: str
) -> list[str]:
    address, tokenid = _address_text(address), _hex_text(tokenid)
    commands = [
        format_command("txncreate", {"id": txn_id}),
        format_command("txninput", {"id": txn_id, "coinid": _hex_text(coinid)}),
        format_command(
            "txnoutput",
            {
                "id": txn_id,
                "amount": _positive_int(amount, "amount"),
                "address": address,
                "tokenid": tokenid,
                "storestate": True,
            },
        ),
    ]
    for port, value in _state_json(state).items():
        commands.append(format_command("txnstate", {"id": txn_id, "port": int(port), "value": value}))
    commands += [
        format_command("txnsign", {"id": txn_id, "publickey": _hex_text(owner_publickey)}),
        format_command("txnpost", {"id": txn_id, "auto": True}),
        format_command("txndelete", {"id": txn_id}),
    ]
    return commands


def _json_or_none(response: requests.Response) -> Any:
    try:
        return json.loads(response.content.decode("utf-8"))
    except ValueError:  # includes UnicodeDecodeError and JSONDecodeError
        return None


def _webhooks(response: Any) -> list[str]:
    hooks = _field("webhooks", response, "webhooks", list)
    if not all(isinstance(hook, str) for hook in hooks):
        raise RPCError("webhooks", "unexpected reply from the node: webhooks")
    return hooks


def _bytes(value: bytes) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise CodecError("expected bytes")
    return bytes(value)


def _optional_bytes(value: bytes | None) -> bytes | None:
    return None if value is None else _bytes(value)


_VERIFY_REFUSALS = ("Signature NOT valid", "Signature publickey is different")
_WALLET_KEY_RE = re.compile(r"0x[0-9A-Fa-f]{64}")
_STATE_FILTER_RE = re.compile(r"[\x21-\x7e]+")


def _wallet_key_text(publickey: str) -> str:
    if not isinstance(publickey, str) or not _WALLET_KEY_RE.fullmatch(publickey):
        raise CodecError("a wallet key is 0x and 64 hex digits")
    return "0x" + publickey[2:].upper()


def _state_filter_text(text: str) -> str:
    """A ``coins state:`` filter: one printable word; ``:`` too, which the node's fast path would mangle."""
    if not isinstance(text, str) or not _STATE_FILTER_RE.fullmatch(text) or ":" in text:
        raise CodecError("a coins state filter is one printable ASCII word without :")
    return text


def _key_text(publickey: bytes | str | None) -> str:
    if publickey is None:
        raise CodecError("a public key is required")
    return to_hex(parse_public_key(publickey))
