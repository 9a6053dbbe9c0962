"""``mns``: the MNS command line, over the SDK (``mns_client.sdk``). ``main(argv) -> int`` is the entry point.

Every command prints a human summary by default and one JSON object with ``--json`` (errors too:
``{"error": <code>, "detail": <message>, "exit_code": <n>}``). Progress goes to stderr, only when it is a
terminal (or with ``--verbose``). Nothing here prints a private key, a token secret, a handshake code or a
session token; ``read`` prints the letter it opened, and only when its signature verified.
"""

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from .config import ConfigError, Home, Settings
from .progress import Progress
from .protocol import fields
from .protocol.codecs import to_hex
from .protocol.envelope import SCHEME_NACL, SCHEME_RSA, EnvelopeInvalid
from .protocol.errors import CodecError, MNSError, NodeAuthError, NodeStartingUp, NodeUnreachable, RPCError
from .protocol.funds import FundsNotConfirmed, NoFunds
from .protocol.names import NameRefused, normalise
from .protocol.rpc import MinimaRPC
from .protocol.statements import StatementInvalid, check_data
from .reply import REPLY_VIA_CHOICES
from .sdk import (
    PAY_WAIT_SECONDS,
    TRANSFER_DAYS,
    Client,
    DeliveryError,
    DirectoryRefuted,
    GatewayRefused,
    GatewayUnreachable,
    HandshakeFailed,
    NameInfo,
    NotVerified,
    ReadMessage,
    Unavailable,
)

DEFAULT_NODE = "http://127.0.0.1:9005"

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_NODE = 2
EXIT_GATEWAY = 3
EXIT_REFUSED = 4
EXIT_HANDSHAKE = 5
EXIT_VERIFY = 6
EXIT_DELIVERY = 7
EXIT_UNAVAILABLE = 8

EXIT_CODES_HELP = """exit codes:
  0  done
  1  usage: bad arguments, missing or unreadable configuration, a confirmation declined
  2  your node: unreachable, wrong RPC password, it refused a command, no funds, or funds not yet confirmed
  3  the gateway: unreachable, not ready, or an answer that is not the MNS API
  4  refused by the gateway (or by the name rules): the reason's code is shown, e.g. name_taken
  5  handshake failed or expired, or this node is not the name's owner
  6  verification failed: a binding or letter signature, a message that does not decrypt, or a gateway's
     proof against the directory root on chain (whois: the gateway's answer is proven wrong)
  7  delivery: the gateway refused the message (receipt), no receipt in time, or not delivered
  8  not available: entry points not published yet, no payment address
"""

SCHEME_ALIASES = {"nacl": SCHEME_NACL, "rsa": SCHEME_RSA, SCHEME_NACL: SCHEME_NACL, SCHEME_RSA: SCHEME_RSA}


class UsageError(MNSError):
    code = "usage"


class Declined(MNSError):
    code = "declined"


class NothingWritten(MNSError):
    """``init`` stopped before writing anything: the node or the gateway did not answer as it must."""

    def __init__(self, cause: MNSError, home: Path) -> None:
        super().__init__(str(cause))
        self.cause, self.home = cause, home
        self.code = getattr(cause, "code", "") or type(cause).__name__


# ------------------------------------------------------------------------------------------------ errors


def exit_code_for(error: BaseException) -> int:
    """The documented exit code of a failure (see ``EXIT_CODES_HELP``)."""
    if isinstance(error, NothingWritten):
        return exit_code_for(error.cause)
    if isinstance(error, NodeAuthError | NodeUnreachable | NodeStartingUp | RPCError | NoFunds | FundsNotConfirmed):
        return EXIT_NODE
    if isinstance(error, GatewayUnreachable):
        return EXIT_GATEWAY
    if isinstance(error, GatewayRefused):
        return EXIT_GATEWAY if error.status >= 500 else EXIT_REFUSED
    if isinstance(error, NameRefused):
        return EXIT_REFUSED
    if isinstance(error, HandshakeFailed):
        return EXIT_HANDSHAKE
    if isinstance(error, NotVerified | EnvelopeInvalid | StatementInvalid):
        return EXIT_VERIFY
    if isinstance(error, DeliveryError):
        return EXIT_DELIVERY
    if isinstance(error, Unavailable):
        return EXIT_UNAVAILABLE
    return EXIT_USAGE


def describe(error: BaseException, context: "Context | None" = None) -> str:
    """One sentence for a person; never a secret."""
    if isinstance(error, NothingWritten):
        return f"{describe(error.cause, context)} (nothing was written to {error.home})"
    node, gateway = (context.describe_node(), context.describe_gateway()) if context else ("", "the gateway")
    if isinstance(error, NodeAuthError):
        return (
            f"your node {node}refused the RPC password: set it with --node-password, MNS_NODE_PASSWORD "
            "or `mns init --node-password`"
        )
    if isinstance(error, NodeUnreachable):
        why = error.message.removeprefix("cannot reach the node").strip(" ()")
        return f"cannot reach your Minima node {node}({why}): is it running, with RPC enabled?"
    if isinstance(error, NodeStartingUp):
        return "your node's Maxima is still starting up: try again in a moment"
    if isinstance(error, RPCError):
        return f"your node refused `{error.command}`: {error.message}"
    if isinstance(error, GatewayUnreachable):
        return str(error)
    if isinstance(error, GatewayRefused):
        return f"{gateway} refused: {error.code}: {error.detail}"
    if isinstance(error, NameRefused):
        return f"name refused: {error.code}: {error.message}"
    if isinstance(error, EnvelopeInvalid | StatementInvalid):
        return f"does not verify: {error}"
    return str(error) or type(error).__name__


def error_code(error: BaseException) -> str:
    return str(getattr(error, "code", "") or type(error).__name__)


# ------------------------------------------------------------------------------------------------ context


class Context:
    """What one command runs with: the options resolved against the environment and ``config.json``."""

    def __init__(self, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> None:
        self.args = args
        self.stdout = stdout
        self.stderr = stderr
        self.json = bool(getattr(args, "json", False))
        self.verbose = bool(getattr(args, "verbose", False))
        self.home = Home(getattr(args, "home", None))
        self._settings: Settings | None = None
        self._client: Client | None = None
        self._progress_shown = False
        self._waiting: Progress | None = None  # the step being waited on, whose age a ticker shows after 2 s
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self.home.settings()
        return self._settings

    def describe_node(self) -> str:
        """``at <url> `` for messages, or nothing when even that cannot be worked out (a broken config file)."""
        try:
            return f"at {self.node_url} "
        except MNSError:
            return ""

    def describe_gateway(self) -> str:
        try:
            return self.gateway_url
        except MNSError:
            return "the gateway"

    def option(self, name: str, env: str | None, configured: str | None, default: str | None = None) -> str | None:
        value = getattr(self.args, name, None)
        if value:
            return value
        if env and os.environ.get(env):
            return os.environ[env]
        return configured or default

    @property
    def node_url(self) -> str:
        return str(self.option("node", "MNS_NODE", self.settings.node_url, DEFAULT_NODE))

    @property
    def node_password(self) -> str | None:
        return self.option("node_password", "MNS_NODE_PASSWORD", self.settings.node_password)

    @property
    def gateway_url(self) -> str:
        url = self.option("gateway", "MNS_GATEWAY", self.settings.gateway)
        if not url:
            raise UsageError("no gateway: pass --gateway URL, set MNS_GATEWAY, or run `mns init --gateway URL`")
        return url

    def name(self) -> str:
        """The name an owner command is about: ``--name``, ``MNS_NAME``, the configured one, else the one name
        this node holds at the gateway (remembered for next time)."""
        name = self.option("name", "MNS_NAME", self.settings.name)
        if name:
            return normalise(name)
        held = self.client().owned_names()
        if len(held) != 1:
            found = f"this node holds {', '.join(held)}" if held else "this node holds no name here"
            raise UsageError(f"which name? pass --name NAME ({found})")
        settings = self.home.settings()
        settings.name = held[0]
        self.home.save_settings(settings)
        return held[0]

    def rpc(self) -> MinimaRPC:
        try:
            return MinimaRPC(self.node_url, password=self.node_password, timeout=30)
        except ValueError as exc:
            raise UsageError(f"--node: {exc}") from None

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(
                rpc=self.rpc(),
                gateway_url=self.gateway_url,
                home=self.home,
                progress=self.progress,
                listen_host=str(self.option("listen", "MNS_LISTEN", None, "127.0.0.1")),
                use_token=not getattr(self.args, "handshake", False),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self.end_progress()
        self._closed.set()

    # -- output

    def progress(self, line: str) -> None:
        """A step starts: shown on a terminal (rewritten in place) or with --verbose; a step that lasts longer than
        two seconds then shows its age (``… waiting for the gateway's receipt… 4 s``), never on stdout."""
        with self._lock:
            self._waiting = None
            if self.verbose:
                self.stderr.write(f"… {line}\n")
            elif self.stderr.isatty():
                self.stderr.write(f"\r\x1b[2K… {line}")
                self._progress_shown = True
            else:
                return
            self.stderr.flush()
            self._waiting = Progress(f"… {line}", stream=self.stderr, inline=not self.verbose)
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="mns-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._closed.wait(0.5):
            with self._lock:
                if self._waiting is not None:
                    self._waiting.tick()
                    self._progress_shown = self._progress_shown or self._waiting.tty

    def end_progress(self) -> None:
        with self._lock:
            self._waiting = None
            if self._progress_shown:
                self.stderr.write("\r\x1b[2K")
                self.stderr.flush()
                self._progress_shown = False

    def emit(self, data: dict[str, Any], human: str | Callable[[], str]) -> None:
        self.end_progress()
        if self.json:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            text = human() if callable(human) else human
            self.stdout.write(text.rstrip("\n") + "\n")
        self.stdout.flush()

    def fail(self, error: BaseException) -> int:
        self.end_progress()
        code = exit_code_for(error)
        message = describe(error, self)
        if self.json:
            body: dict[str, Any] = {"error": error_code(error), "detail": message, "exit_code": code}
            for attribute in ("reason", "delivery_id", "status", "directory"):
                if getattr(error, attribute, None) is not None:
                    body[attribute] = getattr(error, attribute)
            self.stdout.write(json.dumps(body, indent=2) + "\n")
        else:
            self.stderr.write(f"mns: {message}\n")
        return code


# ------------------------------------------------------------------------------------------------ commands


def cmd_init(ctx: Context) -> int:
    """Check the node (and the gateway, when there is one) first; only once both answered write anything, so a
    failed ``init`` leaves the folder as it was."""
    args = ctx.args
    settings = ctx.settings
    name = normalise(args.name) if getattr(args, "name", None) else None
    try:
        ctx.progress(f"asking your node {ctx.describe_node()}who it is")
        info = ctx.rpc().maxima_info()
        gateway = None
        if ctx.option("gateway", "MNS_GATEWAY", settings.gateway):
            ctx.progress(f"asking {ctx.gateway_url} for its policy")
            gateway = ctx.client().gateway(remember=False)
    except MNSError as error:
        raise NothingWritten(error, ctx.home.path) from None
    ctx.home.ensure()
    # What was given now, as an option or (for the gateway) through its environment variable, is remembered.
    given = {
        "node_url": getattr(args, "node", None),
        "node_password": getattr(args, "node_password", None),
        "gateway": ctx.option("gateway", "MNS_GATEWAY", None),
    }
    for attribute, value in given.items():
        if value:
            setattr(settings, attribute, value)
    if name:
        settings.name = name
    if getattr(args, "reply_via", None):
        settings.reply_via = args.reply_via
    settings.reachability = {}  # init measures again how the gateway reaches the node
    ctx.home.save_settings(settings)
    if gateway is not None:
        ctx.client().gateway()  # remembers its identity, now that config.json may be written
    keys = ctx.home.box_keys()
    created = not keys
    box = ctx.home.add_box_key() if created else keys[-1]
    data: dict[str, Any] = {
        "home": str(ctx.home.path),
        "box_key": to_hex(box.public),
        "box_key_created": created,
        "node": {"rpc_url": ctx.node_url, "publickey": info.publickey_hex, "address": info.p2pidentity},
    }
    if gateway is not None:
        data["gateway"] = {"url": gateway.url, "identity": gateway.identity, "address": gateway.address}
        data["node"]["reply_via"] = ctx.client().reply_route()
        data["node"]["reply_address"] = ctx.client().reply_address()

    def human() -> str:
        lines = [
            f"MNS client ready in {ctx.home.path}",
            f"  box key    {_short(data['box_key'])} ({'created now' if created else 'already there'}, kept 0600)",
            f"  your node  {ctx.node_url}",
            f"  identity   {_short(info.publickey_hex)} (your Maxima identity key: the owner key of your names)",
            f"  address    {_short(info.p2pidentity, 40)}",
        ]
        if "reply_via" in data["node"]:
            how = REPLY_VIA_TEXT[data["node"]["reply_via"]]
            lines.append(f"  replies    {how}: {_short(data['node']['reply_address'], 40)}")
        if "gateway" in data:
            lines.append(f"  gateway    {data['gateway']['url']} (identity {_short(data['gateway']['identity'])})")
        else:
            lines.append("  gateway    none yet: pass --gateway URL")
        return "\n".join(lines)

    ctx.emit(data, human)
    return EXIT_OK


REPLY_VIA_TEXT = {
    "direct": "directly at your node's p2pidentity",
    "contact": "through your node's Maxima host (its contact address)",
    "max": "through your node's MLS (a MAX# address)",
}


def cmd_set_address(ctx: Context) -> int:
    name = ctx.name()
    settings = ctx.client().set_address(name, ctx.args.address)
    address = str(settings.get("address"))
    ctx.emit({"name": name, "address": address}, f"{name}: the gateway reaches your node at {_short(address, 40)}")
    return EXIT_OK


def cmd_whois(ctx: Context) -> int:
    name = normalise(ctx.args.lookup_name)
    try:
        record = ctx.client().lookup(name)
    except GatewayRefused as refused:
        # A name only Minima's MNS holds is still someone's: say whose, from the chain.
        chain, _ = _chain_reading(ctx, name) if refused.code == "name_not_found" else (None, None)
        if chain is None:
            raise
        ctx.emit({"name": name, "status": "on_chain_only", "on_chain": chain}, lambda: _chain_only_text(name, chain))
        return EXIT_OK
    chain, unread = _chain_reading(ctx, name, gateway=record.on_chain)
    ctx.progress("checking the gateway's proof against the directory root on chain, through your node")
    directory = ctx.client().directory_check(record)
    if directory.failed:
        raise DirectoryRefuted(directory)
    data = {**_record_json(record), "on_chain": chain, "directory": directory.to_dict()}
    if unread:
        data["on_chain_unread"] = unread

    def human() -> str:
        lines = [
            f"{record.name}",
            f"  status     {record.status}",
            f"  owner      {_short(record.owner)}",
            f"  box key    {to_hex(record.box_key) if record.box_key else '-'}",
            f"  payment    {record.payment_address or '-'}",
            f"  gateways   {', '.join(_short(g) for g in record.gateways) or '-'}",
            f"  seq        {record.seq}",
            f"  data       {_data_text(record.data)}",
            *_transfer_lines(record),
            "  signature  verified here: the owner key above signed this binding",
            f"  on chain   {_chain_text(chain, unread)}",
            f"  directory  {_safe(directory.detail)}",
        ]
        return "\n".join(lines)

    ctx.emit(data, human)
    return EXIT_OK


def _chain_reading(
    ctx: Context, name: str, *, gateway: dict[str, Any] | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """The name on chain (Minima's MNS) as this user's own node reads and verifies it, with whether the gateway's
    owner proved the holder key (``agrees``, the gateway's word, counted only for the holder read here); or why it
    could not be read. Never fails the command: the gateway's record stands on its own."""
    try:
        found = ctx.client().chain_lookup(name)
    except (MNSError, UsageError) as failed:
        return None, describe(failed, ctx)
    if found is None:
        return None, None
    agrees = bool(gateway and gateway.get("holder") == found.holder and gateway.get("agrees") is True)
    chain = {
        "holder": found.holder,
        "registered_block": found.created,
        "updated_block": found.updated,
        "data": found.data,
        "agrees": agrees,
    }
    return chain, None


def _chain_text(chain: dict[str, Any] | None, unread: str | None) -> str:
    if unread:
        return f"not read ({_safe(unread)})"
    if chain is None:
        return "not registered there (read through your node)"
    verdict = "agrees: the owner above proved that key" if chain["agrees"] else "does NOT agree: another key holds it"
    return f"held by {_short(chain['holder'])} since block {chain['registered_block']}; {verdict}"


def _chain_only_text(name: str, chain: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"{name}",
            "  status     not registered at this gateway",
            f"  on chain   held by {_short(chain['holder'])} since block {chain['registered_block']} (Minima's MNS, "
            "read and verified through your node)",
            f"  data       {_safe(chain['data']) or '-'}",
        ]
    )


def cmd_register(ctx: Context) -> int:
    done = ctx.client().register(ctx.args.register_name, payment_address=ctx.args.payment_address)
    data = {
        "name": done.name,
        "status": "active",
        "owner": done.owner,
        "box_key": done.box_key,
        "payment_address": done.payment_address,
        "gateway": done.gateway,
        "access_token_id": done.token_id,
    }
    ctx.emit(
        data,
        lambda: "\n".join(
            [
                f"registered {done.name} at {done.gateway}",
                f"  owner      {_short(done.owner)} (your node)",
                f"  box key    {_short(done.box_key)}",
                f"  payment    {done.payment_address or '-'}",
                f"  access     token {done.token_id} opened by your node and kept in {ctx.home.path}",
            ]
        ),
    )
    return EXIT_OK


def cmd_send(ctx: Context) -> int:
    args = ctx.args
    body = _read_body(args.file)
    scheme = SCHEME_ALIASES[args.scheme]
    from_name = args.from_name or ctx.settings.name
    sent = ctx.client().send(
        args.send_name,
        body,
        subject=args.subject,
        scheme=scheme,
        from_name=from_name,
        wait=not args.no_wait,
        receipt_timeout=args.timeout,
    )
    data = {
        "status": sent.status,
        "to": sent.name,
        "delivery_id": sent.delivery_id,
        "message_id": sent.message_id,
        "scheme": sent.scheme,
        "size": sent.size,
    }
    if sent.status == "stored":
        human = f"stored: message {sent.message_id} for {sent.name} ({sent.size} bytes of {sent.scheme} ciphertext)"
    else:
        human = f"sent to the gateway for {sent.name} ({sent.size} bytes); not waiting for the receipt"
    ctx.emit(data, human)
    return EXIT_OK


def cmd_inbox(ctx: Context) -> int:
    client, name = ctx.client(), ctx.name()
    metas = client.messages(name)
    rows = []
    for meta in metas:
        row: dict[str, Any] = {
            "id": meta.id,
            "sender": meta.sender,
            "sender_verified": meta.sender_verified,
            "scheme": meta.scheme,
            "size": meta.size,
            "received_at": meta.received_at,
            "state": meta.state,
        }
        if not ctx.args.no_open:
            row.update(_letter_summary(client.read(name, meta.id)))
        rows.append(row)

    def human() -> str:
        if not rows:
            return f"{name}: no messages"
        lines = [f"{name}: {len(rows)} message(s), newest first"]
        for row in rows:
            head = f"  {row['id']}  {row['received_at'][:19]}  {row['size']:>6} B  {row['scheme']}"
            if ctx.args.no_open:
                lines.append(f"{head}  from {_short(row['sender'])}")
            elif row.get("verified"):
                lines.append(f"{head}\n      from {_sender_text(row)}  subject: {_safe(row.get('subject') or '-')}")
            else:
                lines.append(f"{head}\n      DOES NOT VERIFY: {row.get('problem')}")
        return "\n".join(lines)

    ctx.emit({"name": name, "messages": rows}, human)
    return EXIT_OK


def cmd_read(ctx: Context) -> int:
    client, name = ctx.client(), ctx.name()
    message = client.read(name, ctx.args.message_id)
    return _show_message(ctx, name, message)


def _show_message(ctx: Context, name: str, message: ReadMessage) -> int:
    summary = _letter_summary(message)
    data = {"id": message.meta.id, "scheme": message.meta.scheme, "size": message.meta.size, **summary}
    if message.opened is None or message.opened.sender_matches is False:
        problem = summary["problem"]
        ctx.emit(data, f"message {message.meta.id} DOES NOT VERIFY: {problem}")
        return EXIT_VERIFY
    letter = message.opened.letter
    output = getattr(ctx.args, "output", None)
    if output:
        Path(output).write_bytes(letter.body_bytes)
    if letter.is_text:
        data["body"] = letter.body
    else:
        data["body_b64"] = letter.body_b64

    def human() -> str:
        lines = [
            f"message   {message.meta.id} ({message.meta.size} bytes, {message.meta.scheme})",
            f"from      {_sender_text(summary)}",
            f"to        {letter.to}",
            f"sent      {summary['sent_at_text']}",
            f"subject   {_safe(letter.subject or '-')}",
            "signature verified here: the sender's key signed this letter",
            "",
        ]
        if output:
            lines.append(f"(body: {len(letter.body_bytes)} bytes written to {output})")
        elif letter.is_text:
            lines.append(_safe(letter.body or "", multiline=True))
        else:
            lines.append(f"(binary body, {len(letter.body_bytes)} bytes: use --output FILE)")
        return "\n".join(lines)

    ctx.emit(data, human)
    return EXIT_OK


def cmd_delete(ctx: Context) -> int:
    name = ctx.name()
    ctx.client().delete(name, ctx.args.message_id)
    ctx.emit({"deleted": ctx.args.message_id, "name": name}, f"deleted message {ctx.args.message_id} from {name}")
    return EXIT_OK


def cmd_forward(ctx: Context) -> int:
    client, name, args = ctx.client(), ctx.name(), ctx.args
    if args.auto is not None:
        settings = client.set_auto_forward(name, args.auto == "on")
        on = bool(settings.get("auto_forward"))
        ctx.emit(
            {"name": name, "auto_forward": on, "address": settings.get("address")},
            f"{name}: automatic forwarding {'on' if on else 'off'}"
            + (f" (to {_short(str(settings.get('address')), 40)})" if on else ""),
        )
        return EXIT_OK
    result = client.forward(name, delete_after=args.delete_after, wait=args.timeout)
    received = [{"id": item.meta.id, "size": item.meta.size, **_letter_summary(item)} for item in result.received]
    for item, row in zip(result.received, received, strict=True):
        if item.opened is not None and item.opened.sender_matches is not False:
            letter = item.opened.letter
            row["body" if letter.is_text else "body_b64"] = letter.body if letter.is_text else letter.body_b64
    data = {
        "name": name,
        "queued": result.queued,
        "retried": result.retried,
        "in_flight": result.in_flight,
        "received": received,
    }
    expected = result.queued + result.retried + result.in_flight

    def human() -> str:
        lines = [f"{name}: the gateway is forwarding {expected} message(s) to your node; {len(received)} arrived"]
        for row in received:
            if not row.get("verified"):
                lines.append(f"  {row['id']}  DOES NOT VERIFY: {row.get('problem')}")
                continue
            lines.append(f"  {row['id']}  from {_sender_text(row)}  subject: {_safe(row.get('subject') or '-')}")
            if "body" in row:
                lines.extend("      " + line for line in _safe(row["body"], multiline=True).splitlines())
        return "\n".join(lines)

    ctx.emit(data, human)
    if any(not row.get("verified") for row in received):
        return EXIT_VERIFY
    if len(received) < expected:
        return _partial(ctx, expected, len(received))
    return EXIT_OK


def _partial(ctx: Context, expected: int, arrived: int) -> int:
    ctx.stderr.write(
        f"mns: {expected - arrived} forwarded message(s) did not arrive within {ctx.args.timeout:.0f} s; "
        "the gateway keeps retrying them\n"
    )
    return EXIT_DELIVERY


def cmd_rotate_key(ctx: Context) -> int:
    record = ctx.client().rotate_key(ctx.name())
    ctx.emit(
        _record_json(record),
        f"{record.name}: new box key {_short(to_hex(record.box_key or b''))} published (seq {record.seq}); "
        "older keys are kept to open older messages",
    )
    return EXIT_OK


def cmd_set_payment(ctx: Context) -> int:
    args = ctx.args
    if args.clear and args.address:
        raise UsageError("give an ADDRESS or --clear, not both")
    address = None if args.clear else (args.address or "node")
    record = ctx.client().set_payment(ctx.name(), address)
    ctx.emit(
        _record_json(record),
        f"{record.name}: payment address {record.payment_address or 'removed'} (seq {record.seq})",
    )
    return EXIT_OK


def cmd_set_data(ctx: Context) -> int:
    args = ctx.args
    if args.clear == (args.data is not None):
        raise UsageError("give the data as one JSON object, or --clear")
    data = None if args.clear else _data_argument(args.data)
    record = ctx.client().set_data(ctx.name(), data)
    ctx.emit(_record_json(record), f"{record.name}: data {_data_text(record.data)} (seq {record.seq})")
    return EXIT_OK


def cmd_transfer(ctx: Context) -> int:
    args = ctx.args
    if args.cancel == (args.to is not None):
        raise UsageError("give --to KEY (or a name) to offer the name, or --cancel to withdraw the offer")
    client = ctx.client()
    if args.cancel:
        record = client.cancel_transfer(args.transfer_name)
        ctx.emit(_record_json(record), f"{record.name}: the offer is withdrawn (seq {record.seq})")
        return EXIT_OK
    if not 1 <= args.days <= 30:
        raise UsageError("--days is 1 to 30")
    record = client.transfer(args.transfer_name, args.to, days=args.days)
    offer = record.transfer or {}
    ctx.emit(
        _record_json(record),
        f"{record.name}: offered to {_short(offer.get('to'))} until {_when(offer.get('expires_at'))} "
        f"(seq {record.seq}); it stays yours until that key runs `mns accept-transfer {record.name}`",
    )
    return EXIT_OK


def cmd_accept_transfer(ctx: Context) -> int:
    record = ctx.client().accept_transfer(ctx.args.accept_name, payment_address=ctx.args.payment_address)
    ctx.emit(
        _record_json(record),
        f"{record.name} is yours (seq {record.seq}), with your own box key and an empty mailbox: "
        "nothing of the previous owner's mail comes with it",
    )
    return EXIT_OK


def cmd_pay(ctx: Context) -> int:
    args = ctx.args
    client = ctx.client()
    plan = client.payment_plan(args.pay_name, args.amount, tokenid=args.token)
    token = "Minima" if plan.tokenid == "0x00" else f"token {plan.tokenid}"
    question = f"Send {plan.amount} {token} to {plan.name} at {plan.address} from your node?"
    if not args.yes:
        ctx.end_progress()
        ctx.stderr.write(f"{question} [y/N] ")
        ctx.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise Declined("not paid: the payment was not confirmed (answer y, or pass --yes)")
    sent = client.pay(plan, wait=args.wait)
    data = {
        "name": plan.name,
        "address": plan.address,
        "amount": plan.amount,
        "tokenid": plan.tokenid,
        "txpowid": sent.get("txpowid"),
    }
    ctx.emit(data, f"paid {plan.amount} {token} to {plan.name} ({plan.address}); txpow {sent.get('txpowid')}")
    return EXIT_OK


def cmd_entry_points(ctx: Context) -> int:
    body = ctx.client().entry_points()
    picked = body["picked"]
    ctx.emit(
        body,
        lambda: (
            f"{len(body.get('entries') or [])} entry point(s), list #{body.get('seq')} from the {body.get('source')}"
            f"; picked: {json.dumps(picked)}"
        ),
    )
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ rendering


def _record_json(record: NameInfo) -> dict[str, Any]:
    return {
        "name": record.name,
        "status": record.status,
        "owner": record.owner,
        "box_key": to_hex(record.box_key) if record.box_key else None,
        "payment_address": record.payment_address,
        "data": record.data,
        "transfer": record.transfer,
        "gateways": record.gateways,
        "seq": record.seq,
        "verified": True,
        "statement": record.signed.statement.to_dict(),
        "signature": to_hex(record.signed.signature),
    }


def _data_argument(text: str) -> dict[str, Any]:
    """The data record as typed: strict JSON (a key twice is refused), then the protocol's bounds."""
    try:
        data = fields.loads(text.encode(), invalid=_data_invalid, what="data")
        return check_data(data)
    except StatementInvalid as invalid:
        raise UsageError(f"the data record is refused: {invalid.message}") from None


def _data_invalid(field: str, problem: str) -> StatementInvalid:
    return StatementInvalid("statement_invalid", f"{field} {problem}", field="data")


def _data_text(data: dict[str, Any] | None) -> str:
    if data is None:
        return "-"
    return _safe(json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(", ", ": ")))


def _transfer_lines(record: NameInfo) -> list[str]:
    offer = record.transfer
    if offer is None:
        return []
    expired = " (expired)" if offer["expires_at"] < time.time() * 1000 else ""
    return [f"  transfer   offered to {_short(offer['to'])} until {_when(offer['expires_at'])}{expired}"]


def _when(ms: object) -> str:
    if not isinstance(ms, int):
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _letter_summary(message: ReadMessage) -> dict[str, Any]:
    """What a list shows of a message: its verdict, and only if it verified, its sender and subject."""
    if message.opened is None:
        problem = message.problem
        return {"verified": False, "problem": str(problem), "problem_code": getattr(problem, "code", "")}
    letter = message.opened.letter
    if message.opened.sender_matches is False:
        detail = (
            f"the letter is signed by {_short(letter.from_)} but was delivered by {_short(message.meta.sender)} "
            "(a replay or a relay)"
        )
        return {"verified": False, "problem": detail, "problem_code": "envelope_sender_mismatch"}
    return {
        "verified": True,
        "from": letter.from_,
        "from_name": letter.from_name,
        "from_name_verified": message.from_name_verified,
        "to": letter.to,
        "subject": letter.subject,
        "sent_at": letter.sent_at,
        "sent_at_text": datetime.fromtimestamp(letter.sent_at / 1000).astimezone().isoformat(timespec="seconds"),
        "delivery_id": letter.id,
        "sender_verified_by_maxima": message.opened.sender_matches is True,
    }


def _sender_text(row: dict[str, Any]) -> str:
    key = _short(str(row.get("from")))
    name = row.get("from_name")
    if name and row.get("from_name_verified"):
        return f"{name} ({key}, name verified)"
    if name:
        return f"{key} (claims to be {_safe(name)!r}: NOT the name's owner)"
    return key


def _short(value: str | None, keep: int = 16) -> str:
    """A key or address shortened for people: RSA keys all start alike, so show the end."""
    if not value:
        return "-"
    if len(value) <= keep + 8:
        return value
    return f"{value[:6]}…{value[-keep:]}"


def _safe(text: str, *, multiline: bool = False) -> str:
    """Text from a stranger, made harmless for a terminal: control and bidi-override characters become U+FFFD."""
    keep = {"\n", "\t"} if multiline else set()
    return "".join(
        char if char in keep or unicodedata.category(char) not in ("Cc", "Cf") else "\ufffd" for char in text
    )


def _read_body(path: str | None) -> bytes:
    if path in (None, "-"):
        if sys.stdin.isatty():
            sys.stderr.write("Type the message; end it with Ctrl-D on a line of its own.\n")
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


# ------------------------------------------------------------------------------------------------ parser


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, before or after the command (``SUPPRESS`` keeps the two from clashing)."""
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--home", metavar="DIR", default=default, help="client folder (default $MNS_HOME or ~/.config/mns)"
    )
    group.add_argument("--node", metavar="URL", default=default, help=f"your node's RPC (default {DEFAULT_NODE})")
    group.add_argument(
        "--node-password", metavar="PW", default=default, help="your node's RPC password (or MNS_NODE_PASSWORD)"
    )
    group.add_argument("--gateway", metavar="URL", default=default, help="the gateway's URL (or MNS_GATEWAY)")
    group.add_argument("--listen", metavar="HOST", default=default, help="address your node can post webhooks to")
    group.add_argument(
        "--json", action="store_true", default=default if not top else False, help="print one JSON object"
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=default if not top else False, help="show every step"
    )


def _owner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", metavar="NAME", help="your name (default: the one you registered)")
    parser.add_argument(
        "--handshake", action="store_true", help="prove ownership with a fresh handshake, not the stored access token"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mns",
        description="MNS, the Minima Naming System: names, and encrypted mailboxes behind them. Your node signs, "
        "sends and decrypts; your private Maxima key never leaves it.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable[[Context], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
        _common(sub, top=False)
        sub.set_defaults(handler=handler)
        return sub

    init = command("init", cmd_init, "create your box key, check your node, show your Maxima identity")
    init.add_argument("--name", metavar="NAME", help="your default name, for the commands that act on your name")
    init.add_argument(
        "--reply-via",
        choices=REPLY_VIA_CHOICES,
        help="how the gateway reaches your node: auto (default: tested now), direct (its p2pidentity), contact "
        "(through its Maxima host, for a node behind NAT or on a phone), max (a MAX# address through its MLS)",
    )

    whois = command(
        "whois",
        cmd_whois,
        "look a name up; its binding signature is verified here, and the gateway's proof against the directory "
        "root your node reads on chain",
    )
    whois.add_argument("lookup_name", metavar="NAME", help="the name to look up, e.g. alice")

    register = command("register", cmd_register, "register NAME: your node signs and answers the gateway")
    register.add_argument("register_name", metavar="NAME", help="the name to register; your node becomes its owner")
    register.add_argument(
        "--payment-address", metavar="ADDRESS", help="a Minima address for `mns pay` (node: your node's own)"
    )

    send = command("send", cmd_send, "send a message (FILE, or - / nothing for stdin) and wait for the receipt")
    send.add_argument("send_name", metavar="NAME", help="the recipient's name")
    send.add_argument("file", metavar="FILE", nargs="?", help="the message body: a file, or - or nothing for stdin")
    send.add_argument("--subject", metavar="S", help="a subject line (up to 200 characters), encrypted with the body")
    send.add_argument(
        "--scheme",
        choices=sorted(SCHEME_ALIASES),
        default=SCHEME_NACL,
        metavar="SCHEME",
        help=f"how the letter is encrypted: nacl (= {SCHEME_NACL}, the default) to the recipient's box key, which "
        f"only their client can open; rsa (= {SCHEME_RSA}) to their Maxima key with maxencrypt, which their node "
        "opens (weaker: RSA-1024 and AES-CBC without a MAC; for recipients with nothing but a node)",
    )
    send.add_argument("--from", dest="from_name", metavar="NAME", help="your name, shown to the recipient")
    send.add_argument("--no-wait", action="store_true", help="do not wait for the gateway's receipt")
    send.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds to wait for the receipt")

    inbox = command("inbox", cmd_inbox, "list your mailbox (decrypted and verified here)")
    _owner_options(inbox)
    inbox.add_argument("--no-open", action="store_true", help="list without decrypting")

    read = command("read", cmd_read, "decrypt and show one message, verifying its sender's signature")
    _owner_options(read)
    read.add_argument("message_id", metavar="ID", help="the message's id, as `mns inbox` lists it")
    read.add_argument("--output", metavar="FILE", help="write the body to FILE")

    delete = command("delete", cmd_delete, "delete one message from your mailbox")
    _owner_options(delete)
    delete.add_argument("message_id", metavar="ID", help="the message's id, as `mns inbox` lists it")

    forward = command("forward", cmd_forward, "have the gateway forward your messages to your node (option 2)")
    _owner_options(forward)
    forward.add_argument("--auto", choices=["on", "off"], help="turn automatic forwarding of new messages on or off")
    forward.add_argument("--delete-after", action="store_true", help="delete each message once forwarded")
    forward.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for them")

    rotate = command("rotate-key", cmd_rotate_key, "make a new box key and publish it (signed by your node)")
    _owner_options(rotate)

    where = command(
        "set-address", cmd_set_address, "tell the gateway where your node is now (forwards and tokens go there)"
    )
    _owner_options(where)
    where.add_argument("address", metavar="ADDRESS", nargs="?", help="Mx…@host:port or MAX#… (default: your node's)")

    payment = command("set-payment", cmd_set_payment, "publish a payment address (default: your node's)")
    _owner_options(payment)
    payment.add_argument("address", metavar="ADDRESS", nargs="?", help="Mx… or 0x…, or node")
    payment.add_argument("--clear", action="store_true", help="remove the payment address")

    set_data = command("set-data", cmd_set_data, "publish the name's data record: one JSON object, signed by your node")
    _owner_options(set_data)
    set_data.add_argument(
        "data", metavar="JSON", nargs="?", help='e.g. \'{"website": "https://alice.example/"}\' (at most 1024 bytes)'
    )
    set_data.add_argument("--clear", action="store_true", help="remove the data record")

    transfer = command("transfer", cmd_transfer, "offer NAME to another owner key, or withdraw the offer")
    _owner_options(transfer)
    transfer.add_argument("transfer_name", metavar="NAME", help="your name to give away")
    transfer.add_argument("--to", metavar="KEY", help="the new owner's Maxima key (0x… or Mx…), or a name it owns")
    transfer.add_argument("--days", type=int, default=TRANSFER_DAYS, metavar="N", help="how long the offer stands")
    transfer.add_argument("--cancel", action="store_true", help="withdraw the pending offer")

    accept = command("accept-transfer", cmd_accept_transfer, "take NAME, offered to your node's key")
    accept.add_argument("accept_name", metavar="NAME", help="the name offered to you")
    accept.add_argument(
        "--payment-address", metavar="ADDRESS", help="a Minima address for `mns pay` (node: your node's own)"
    )

    pay = command("pay", cmd_pay, "send Minima (or a token) to a name's payment address through your node")
    pay.add_argument("pay_name", metavar="NAME", help="the name whose published payment address is paid")
    pay.add_argument("amount", metavar="AMOUNT", help="how much, in Minima (or in the token given with --token)")
    pay.add_argument("--token", metavar="ID", help="token id (default: Minima)")
    pay.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    pay.add_argument(
        "--wait",
        type=float,
        default=PAY_WAIT_SECONDS,
        metavar="S",
        help="seconds to wait for your coins to be deep enough to spend (3 blocks after they are mined)",
    )

    command("entry-points", cmd_entry_points, "the published entry points, and one picked at random")
    return parser


_ID_LIKE = re.compile(r"-[A-Za-z0-9_-]{7,}")


def _protect_ids(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Message ids are base64url, so one may start with ``-``: for ``read`` and ``delete``, an id-shaped word that
    is not one of the command's options is moved after ``--``, where argparse takes it as the ID."""
    if "--" in argv or not any(word in ("read", "delete") for word in argv):
        return argv
    options = set(parser._option_string_actions)
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for sub in getattr(action, "choices", {}).values():
            options |= set(sub._option_string_actions)
    ids = [word for word in argv if _ID_LIKE.fullmatch(word) and word not in options]
    return [word for word in argv if word not in ids] + (["--", *ids] if ids else [])


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(_protect_ids(parser, list(sys.argv[1:] if argv is None else argv)))
    except SystemExit as exit_:
        return int(exit_.code or 0) and EXIT_USAGE
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, stream=stderr, format="%(levelname)s %(name)s: %(message)s")
    else:  # failures are reported once, by ``Context.fail``; the modules' log lines are for --verbose
        logging.getLogger("mns_client").addHandler(logging.NullHandler())
        logging.getLogger("mns_client").propagate = False
    ctx = Context(args, stdout, stderr)
    try:
        return args.handler(ctx)
    except (MNSError, CodecError, ConfigError) as error:
        return ctx.fail(error)
    except KeyboardInterrupt:
        ctx.end_progress()
        stderr.write("mns: interrupted\n")
        return 130
    finally:
        with contextlib.suppress(MNSError):
            ctx.close()


if __name__ == "__main__":
    sys.exit(main())
