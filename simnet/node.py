"""One simulated Minima node: its keys, RPC server, Maxima transport, contacts, MLS service and webhooks.

Threads: the RPC server and the P2P server run one thread per connection; commands and incoming messages may run
concurrently, so the node's mutable state is guarded by ``self.lock``. The lock is never held across network I/O
(a node can send to itself, and two nodes can send to each other at once).
"""

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mns_client.protocol import crypto
from mns_client.protocol.codecs import MaximaAddress, from_hex, mx_encode, to_hex
from simnet import p2p
from simnet.chain import Chain, Coin, Txn, miniaddress, script_address
from simnet.commands import CommandError
from simnet.httpserver import RpcServer
from simnet.mds import Mds, mds_root, remove_root
from simnet.message import (
    MAX_PACKAGE_SIZE,
    MaximaMessage,
    open_package,
    package_recipient,
    package_size,
    seal_package,
)
from simnet.sending import SendPipeline, SendTiming
from simnet.txpow import block_txpow
from simnet.util import java_date, now_ms, random_bytes, write_file_atomic
from simnet.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from simnet.commands import CommandSpec

logger = logging.getLogger(__name__)

CONTACT_APPLICATION = "**maxima_contact_ctrl**"
RESERVED_APPLICATIONS = frozenset(
    {CONTACT_APPLICATION, "**maxima_check_connect**", "**maxima_mls_set**", "**maxima_mls_get**"}
)
MAX_CONTACTS = 30
# A node's default addresses in -test mode (Wallet.NUMBER_GETADDRESS_KEYS: 64 on mainnet, 8 with -test).
DEFAULT_KEYS = 8
POLL_STACK_LIMIT = 256
UNREACHABLE_MODES = ("refuse", "silent")


@dataclass
class Faults:
    """Test controls, settable at any time.

    ``drop_deliveries``: incoming messages are acknowledged (the sender sees ``delivered:true``) and then lost,
    the case a gateway must survive because ``delivered`` is not end-to-end. ``delivery_delay``: seconds this node
    waits before acknowledging each incoming message (the sender's synchronous send takes that much longer).
    ``webhook_delay``: seconds before each webhook POST, like a slow endpoint; it delays later events of this node.
    """

    drop_deliveries: bool = False
    delivery_delay: float = 0.0
    webhook_delay: float = 0.0


@dataclass
class Contact:
    id: int
    publickey: str
    currentaddress: str
    myaddress: str
    lastseen: int
    extradata: dict[str, Any] = field(default_factory=dict)


@dataclass
class MlsEntry:
    address: str
    allowed: list[str]


class SimNode:
    """A simulated node. Build it through SimNetwork; ``start``/``stop`` may be called any number of times."""

    def __init__(
        self,
        network: Any,
        index: int,
        host: str,
        rpc_port: int,
        p2p_port: int,
        chain: Chain,
        commands: dict[str, "CommandSpec"],
        rpc_password: str | None = None,
        state_file: Path | None = None,
        send_timing: SendTiming | None = None,
        mds_port: int | None = None,
        mds_password: str | None = None,
    ) -> None:
        self.network = network
        self.index = index
        self.host = host
        self.rpc_port = rpc_port
        self.p2p_port = p2p_port
        self.chain = chain
        self.commands = commands
        self.startup_password = rpc_password
        self.runtime_password: str | None = None
        self.state_file = state_file
        self.lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._saved_text: str | None = None
        self.faults = Faults()
        self.sends = SendPipeline(send_timing if send_timing is not None else SendTiming())
        self.webhook_log: list[tuple[str, int | Exception]] = []
        self.started_at = now_ms()
        self.name = "noname"
        self.icon = "0x00"
        self.hooks: list[str] = []
        self.contacts: list[Contact] = []
        self.next_contact_id = 1
        self.permanent: list[str] = []
        self.static_mls: str | None = None
        self.allow_all_contacts = True
        self.allowed_contacts: list[str] = []
        self.tracked: list[str] = []
        self.coin_notify: set[str] = set()  # in memory only, as on real nodes
        self.mds_port, self.mds_password = mds_port, mds_password
        self.mds: Mds | None = None
        self._mds_root: Path | None = None
        self.key_uses: dict[str, int] = {}
        self.txns: dict[str, Txn] = {}
        self.mls_registry: dict[str, MlsEntry] = {}
        self.pending_adds = 0
        self._rpc: RpcServer | None = None
        self._p2p: p2p.P2PServer | None = None
        self._hooks: WebhookDispatcher | None = None
        self._poll: queue.Queue[tuple[MaximaMessage, str, int, int] | None] | None = None
        self._poll_thread: threading.Thread | None = None
        self.maxima_host: SimNode | None = None  # set by hide_behind: this node is reachable only through it
        self.advertised_port: int | None = None
        self.unreachable_mode = "refuse"
        self._dead_port: p2p.DeadPort | None = None
        self.cut_off: set[int] = set()  # P2P ports of nodes this one cannot reach (``SimNetwork.cut``)
        self._mls_stop: threading.Event | None = None
        self.wallet_count = DEFAULT_KEYS
        self.default_count = DEFAULT_KEYS
        self._loaded_keys: dict[bytes, crypto.MaximaPrivateKey] = {}
        self._loading_keys = threading.Lock()
        self._new_keys()
        # A node that ran before (started again here, or loaded from its state) comes back with an empty MLS
        # table: real nodes keep it in memory (see ``mls_loop``).
        self._ran_before = False
        if state_file is not None and state_file.exists():
            self._load(json.loads(state_file.read_text()))
            self._ran_before = True
        self.wallet_keys = chain.register_wallet(self.wallet_secret, self.wallet_count)
        chain.genesis_coin(self.default_address)

    # ------------------------------------------------------------------------------------ identity

    def _new_keys(self) -> None:
        self.identity_private, self.identity_public = crypto.generate_maxima_keypair()
        self.mls_private, self.mls_public = crypto.generate_maxima_keypair()
        self.hostkey_private, self.hostkey_public = crypto.generate_maxima_keypair()
        self.wallet_secret = random_bytes(32)

    @property
    def publickey(self) -> bytes:
        return self.identity_public

    @property
    def private_key(self) -> bytes:
        return self.identity_private

    def loaded_key(self, private_key: bytes) -> crypto.MaximaPrivateKey:
        """One of this node's own private keys, loaded once: it signs and opens every message with them, and
        loading a key costs some fifty signatures (simnet's CPU, not the node's send time it models)."""
        with self._loading_keys:  # the RPC's threads and the poll thread may need one first at the same time
            loaded = self._loaded_keys.get(private_key)
            if loaded is None:
                loaded = self._loaded_keys[private_key] = crypto.MaximaPrivateKey(private_key)
            return loaded

    @property
    def identity_key(self) -> crypto.MaximaPrivateKey:
        return self.loaded_key(self.identity_private)

    @property
    def publickey_hex(self) -> str:
        return to_hex(self.identity_public)

    def hide_behind(self, host: "SimNode", advertised_port: int, mode: str = "refuse") -> None:
        """Make this node unreachable directly: it advertises ``advertised_port``, where nothing answers (``mode``
        ``refuse`` or ``silent``), and is reached only through ``host``, which relays for its per-host key."""
        if mode not in UNREACHABLE_MODES:
            raise ValueError(f"unknown unreachable mode {mode!r}")
        self.maxima_host, self.advertised_port, self.unreachable_mode = host, advertised_port, mode

    @property
    def address(self) -> str:
        """The node's ``localidentity``/``p2pidentity``: ``Mx<MLS key>@host:<p2p port>`` (the advertised port of a
        node that cannot be reached directly, where nothing answers: fixture 180)."""
        return str(MaximaAddress(self.mls_public, self.host, self.advertised_port or self.p2p_port))

    @property
    def contact_address(self) -> str:
        """With no Maxima hosts, ``contact`` is the local address (fixture 01); behind a host, the node's per-host
        key at the host's address (fixture 180)."""
        if self.maxima_host is None:
            return self.address
        return str(MaximaAddress(self.hostkey_public, self.maxima_host.host, self.maxima_host.p2p_port))

    @property
    def mls_address(self) -> str:
        """A static MLS when set; else the host of a node behind one (fixture 180), else the node itself."""
        if self.static_mls:
            return self.static_mls
        return self.maxima_host.address if self.maxima_host is not None else self.address

    def hosts_json(self) -> list[dict[str, Any]]:
        """``maxima action:hosts`` (fixture 181): the host this node connected out to, if any."""
        if self.maxima_host is None:
            return []
        host = self.maxima_host
        return [
            {
                "host": f"{host.host}:{host.p2p_port}",
                "public": to_hex(self.hostkey_public),
                "lastseen": java_date(self.started_at),
                "connected": host.running,
                "address": self.contact_address,
            }
        ]

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.rpc_port}/"

    @property
    def default_key(self) -> str:
        """The first wallet key: the genesis coin's. ``getaddress`` answers any of ``default_keys``."""
        return self.wallet_keys[0]

    def default_keys(self) -> list[str]:
        """The keys of the node's default addresses, of which ``getaddress`` answers one at random (a real node's
        ``Wallet.getDefaultAddress``); ``newaddress`` makes keys after them."""
        return self.wallet_keys[: self.default_count]

    @property
    def default_address(self) -> str:
        return script_address(f"RETURN SIGNEDBY({self.default_key})")

    def new_wallet_key(self) -> str:
        """One more wallet key (``newaddress``), kept across restarts with ``--state``."""
        with self.lock:
            self.wallet_count += 1
            self.wallet_keys = self.chain.register_wallet(self.wallet_secret, self.wallet_count)
        self.save()
        return self.wallet_keys[-1]

    def wallet_addresses(self) -> set[str]:
        return {script_address(f"RETURN SIGNEDBY({key})") for key in self.wallet_keys}

    def relevant_addresses(self) -> set[str]:
        return self.wallet_addresses() | set(self.tracked)

    def private_key_for(self, key: bytes) -> crypto.MaximaPrivateKey | None:
        """The private key matching a package's ``to``: identity, MLS or (behind a host) per-host key."""
        if key == self.identity_public:
            return self.loaded_key(self.identity_private)
        if key == self.mls_public:
            return self.loaded_key(self.mls_private)
        if key == self.hostkey_public and self.maxima_host is not None:
            return self.loaded_key(self.hostkey_private)
        return None

    def relay_client(self, key: bytes) -> "SimNode | None":
        """The running node behind this one whose per-host key is ``key`` (this node is its Maxima host)."""
        for node in self.network.nodes:
            if node.maxima_host is self and node.hostkey_public == key and node.running:
                return node
        return None

    def summary(self) -> dict[str, Any]:
        """The JSON line simnet prints for this node."""
        line = {"node": self.index, "rpc": self.rpc_url, "publickey": self.publickey_hex, "address": self.address}
        if self.mds_port is not None and self.mds_password:
            line["mds"] = f"https://{self.host}:{self.mds_port}"
        return line

    # ------------------------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._rpc is not None

    def start(self) -> None:
        with self.lock:
            if self.running:
                return
            self.runtime_password = None
            self.started_at = now_ms()
            self._p2p = p2p.P2PServer(self.host, self.p2p_port, self.handle_frame)
            if self.advertised_port is not None:
                self._dead_port = p2p.DeadPort(
                    self.host, self.advertised_port, silent=self.unreachable_mode == "silent"
                )
            self._hooks = WebhookDispatcher(
                str(self.index), lambda: self.hooks, lambda: self.faults.webhook_delay, self.webhook_log
            )
            self._poll = queue.Queue()
            self._poll_thread = threading.Thread(target=self._poll_loop, args=(self._poll,), daemon=True)
            self._poll_thread.start()
            self._rpc = RpcServer(self.host, self.rpc_port, self.run_command, self.password)
            if self.mds_port is not None and self.mds_password:
                if self._mds_root is None:
                    state_dir = self.state_file.parent if self.state_file is not None else None
                    self._mds_root = mds_root(state_dir, self.index)
                self.mds = Mds(self, self.mds_port, self.mds_password, self._mds_root)
                self.mds.start()
            self._mls_stop = threading.Event()
            first = self.network.mls_gap if self._ran_before else 0.0
            self._ran_before = True
            threading.Thread(target=self.mls_loop, args=(self._mls_stop, first), daemon=True).start()

    def stop(self) -> None:
        """Close both ports (connections are refused), drop queued events and poll sends; keys and hooks stay."""
        with self.lock:
            rpc, p2p_server, hooks, poll = self._rpc, self._p2p, self._hooks, self._poll
            self._rpc = self._p2p = self._hooks = self._poll = None
            mds, self.mds = self.mds, None
            dead, self._dead_port = self._dead_port, None
            if self._mls_stop is not None:
                self._mls_stop.set()
            self.mls_registry.clear()  # in memory only, as on real nodes
        if dead is not None:
            dead.close()
        if mds is not None:
            mds.close()
        if rpc is not None:
            rpc.close()
        if p2p_server is not None:
            p2p_server.close()
        if hooks is not None:
            hooks.close()
        if poll is not None:
            poll.put(None)
        self.save()

    def password(self) -> str | None:
        return self.runtime_password or self.startup_password

    # ------------------------------------------------------------------------------------ commands

    def run_command(self, text: str) -> str:
        """Run a request body as the RPC port would (without HTTP); returns the reply JSON text."""
        from simnet.commands import run_multi

        result = run_multi(self, text, self.commands)
        self.save()
        return result

    # ------------------------------------------------------------------------------------ events

    def post_event(self, event: str, data: Any) -> None:
        """``PostNotifyEvent`` to everyone: the webhooks, and every MiniDapp when MDS is on."""
        hooks = self._hooks
        if hooks is not None:
            hooks.post_event(event, data)
        self.post_mds_event(event, data)

    def post_mds_event(self, event: str, data: Any) -> None:
        mds = self.mds
        if mds is not None:
            mds.post(event, data)

    def discard(self) -> None:
        """Remove what this node keeps outside its state file (a temporary MDS folder), once it is stopped."""
        if self._mds_root is not None:
            remove_root(self._mds_root)

    def on_block(self, changes: list[tuple[Coin, bool]], block: dict[str, Any]) -> None:
        """NEWCOIN for every spent or created coin at an address this node tracks (fixtures 86, 91, 92), and
        NOTIFYCOIN for one at an address under ``coinnotify`` (TxPoWTreeNode: ``address`` first, no ``relevant``);
        then, to MiniDapps only, NEWBALANCE when a relevant coin changed and NEWBLOCK (simnet's webhooks never had
        these two, and gateways do not listen for them)."""
        relevant = self.relevant_addresses()
        for coin, spent in changes:
            if coin.address in self.coin_notify:
                notify = {
                    "address": coin.address,
                    "txblockid": block["hash"],
                    "txblock": block["block"],
                    "spent": spent,
                    "coin": coin.to_json(simple_state=True),
                }
                self.post_event("NOTIFYCOIN", notify)
            if coin.address in relevant:
                data = {
                    "relevant": True,
                    "txblockid": block["hash"],
                    "txblock": block["block"],
                    "spent": spent,
                    "coin": coin.to_json(simple_state=True),
                }
                self.post_event("NEWCOIN", data)
        if any(coin.address in relevant for coin, _ in changes):
            self.post_mds_event("NEWBALANCE", {})
        self.post_mds_event("NEWBLOCK", {"txpow": block_txpow(self.chain, block)})

    # ------------------------------------------------------------------------------------ sending

    def new_message(self, to_key: bytes, application: str, data: bytes) -> MaximaMessage:
        return MaximaMessage(self.identity_public, to_key, random_bytes(32), now_ms(), application, data)

    def exchange(self, host: str, port: int, kind: bytes, payload: bytes) -> bytes:
        """One frame to another node, as ``p2p.exchange``; refused at once when the network is cut between them."""
        if port in self.cut_off:
            raise p2p.TransportError("java.net.ConnectException: Connection refused")
        return p2p.exchange(host, port, kind, payload)

    def deliver(self, message: MaximaMessage, host: str, port: int) -> bytes:
        """Seal and send one message; returns the receiver's answer or raises p2p.TransportError."""
        package = seal_package(message, self.identity_key)
        return self.exchange(host, port, p2p.KIND_MESSAGE, package)

    def send_package(self, message: MaximaMessage, package: bytes, host: str, port: int) -> tuple[bytes, float]:
        """Send a sealed package through this node's send pipeline (simnet.sending); returns the receiver's answer
        and the seconds until the package left the pipeline. A package over the limit is refused at once, as on a
        real node (fixture 19: 31 ms for 300 000 bytes), so only its base time counts."""
        size = len(message.data) if package_size(package) <= MAX_PACKAGE_SIZE else 0
        return self.sends.send(size, lambda: self.exchange(host, port, p2p.KIND_MESSAGE, package))

    def queue_poll(self, message: MaximaMessage, host: str, port: int, delay_ms: int) -> None:
        poll = self._poll
        if poll is None:
            return
        if poll.qsize() >= POLL_STACK_LIMIT:
            while not poll.empty():
                poll.get_nowait()
        poll.put((message, host, port, delay_ms))

    def poll_count(self) -> int:
        poll = self._poll
        return 0 if poll is None else poll.qsize()

    def _poll_loop(self, poll: "queue.Queue[tuple[MaximaMessage, str, int, int] | None]") -> None:
        """One asynchronous attempt per poll send; errors are swallowed and nothing is retried (REFERENCE §2)."""
        while True:
            item = poll.get()
            if item is None:
                return
            message, host, port, delay_ms = item
            if delay_ms > 0:
                time.sleep(delay_ms / 1000)
            try:
                self.send_package(message, seal_package(message, self.identity_key), host, port)
            except p2p.TransportError as exc:
                logger.info("simnet node %s: poll send lost (%s)", self.index, exc)

    def send_async(self, func: Callable[[], Any]) -> None:
        threading.Thread(target=func, daemon=True).start()

    # ------------------------------------------------------------------------------------ receiving

    def handle_frame(self, kind: bytes, payload: bytes) -> bytes:
        if kind == p2p.KIND_MESSAGE:
            return self._receive_package(payload)
        if kind == p2p.KIND_MLS_LOOKUP:
            return json.dumps(self.mls_lookup(json.loads(payload))).encode()
        if kind == p2p.KIND_MLS_REGISTER:
            self.mls_register(json.loads(payload))
            return p2p.RESPONSE_OK
        return p2p.RESPONSE_UNKNOWN

    def _receive_package(self, package: bytes) -> bytes:
        if package_size(package) > MAX_PACKAGE_SIZE:
            return p2p.RESPONSE_TOOBIG
        try:
            recipient = package_recipient(package)
        except ValueError:
            return p2p.RESPONSE_UNKNOWN
        private_key = self.private_key_for(recipient)
        if private_key is None:
            return self._relay(recipient, package)
        if self.faults.delivery_delay > 0:
            time.sleep(self.faults.delivery_delay)
        if self.faults.drop_deliveries:
            logger.info("simnet node %s: dropping an incoming message (fault)", self.index)
            return p2p.RESPONSE_OK
        message = open_package(package, private_key)
        if message is None:
            logger.info("simnet node %s: incoming message failed its checks; dropped", self.index)
        elif message.application in RESERVED_APPLICATIONS:
            self.send_async(lambda: self._handle_reserved(message))
        else:
            self.post_event("MAXIMA", message.event_json())
        return p2p.RESPONSE_OK

    def _relay(self, key: bytes, package: bytes) -> bytes:
        """As a Maxima host: pass a package for a client's per-host key on to that client (UNKNOWN if none)."""
        client = self.relay_client(key)
        if client is None:
            return p2p.RESPONSE_UNKNOWN
        try:
            return self.exchange(client.host, client.p2p_port, p2p.KIND_MESSAGE, package)
        except p2p.TransportError as exc:
            logger.info("simnet node %s: relay to node %s failed (%s)", self.index, client.index, exc)
            return p2p.RESPONSE_UNKNOWN

    def _handle_reserved(self, message: MaximaMessage) -> None:
        if message.application != CONTACT_APPLICATION:
            return
        try:
            payload = json.loads(message.data.decode("utf-8"))
        except ValueError:
            return
        from simnet.contacts import receive_contact_message

        receive_contact_message(self, to_hex(message.sender), payload)

    # ------------------------------------------------------------------------------------ MLS service

    def mls_register(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.mls_registry[entry["publickey"]] = MlsEntry(entry["address"], list(entry["allowed"]))

    def mls_lookup(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer for a key if it is permanent here, or the asker is that key or one of its contacts."""
        target, requester = request.get("publickey", ""), request.get("requester", "")
        with self.lock:
            entry = self.mls_registry.get(target)
            allowed = target in self.permanent or (entry is not None and requester in (target, *entry.allowed))
            if entry is None or not allowed:
                return {}
            return {"publickey": target, "address": entry.address, "ranmdomuid": to_hex(random_bytes(32))}

    def mls_entry(self) -> dict[str, Any]:
        with self.lock:
            return {
                "publickey": self.publickey_hex,
                "address": self.contact_address,
                "allowed": [c.publickey for c in self.contacts],
            }

    def register_with_mls(self) -> None:
        entry = self.mls_entry()
        mls = MaximaAddress.parse(self.mls_address)
        if mls.host == self.host and mls.port == self.p2p_port:
            self.mls_register(entry)
            return
        try:
            self.exchange(mls.host, mls.port, p2p.KIND_MLS_REGISTER, json.dumps(entry).encode())
        except p2p.TransportError as exc:
            logger.info("simnet node %s: MLS registration failed (%s)", self.index, exc)

    def mls_loop(self, stop: threading.Event, first: float) -> None:
        """Register with our MLS, then again every ``network.mls_gap`` seconds while running.

        Real nodes register on their Maxima loop (``MAXIMA_LOOP``, 3 min, then ``MAXIMA_REFRESH``, 60 s), so after a
        restart a node's ``MAX#`` address does not resolve through its MLS for about 4.5 minutes (fixture ``178b``:
        ``getaddress`` fails, sends fail ``MAX address invalid..``), and a node whose MLS restarted is found again
        only once its own loop registers it anew. A first start registers at once.
        """
        if stop.wait(first):
            return
        while not stop.is_set():
            self.register_with_mls()
            if stop.wait(self.network.mls_gap or 60.0):
                return

    def register_with_mls_async(self) -> None:
        self.send_async(self.register_with_mls)

    def lookup_via_mls(self, target_hex: str, mls: MaximaAddress) -> dict[str, Any]:
        """The MLS's answer for a key (``{}`` when it does not know it); an MLS whose process is gone makes the
        command fail as on real nodes (fixtures 174, 175: ``java.net.ConnectException: Connection refused``)."""
        request = json.dumps({"publickey": target_hex, "requester": self.publickey_hex}).encode()
        try:
            answer = self.exchange(mls.host, mls.port, p2p.KIND_MLS_LOOKUP, request)
        except p2p.TransportError as exc:
            raise CommandError(str(exc)) from None
        try:
            result = json.loads(answer)
        except ValueError:
            return {}
        return result if isinstance(result, dict) else {}

    # ------------------------------------------------------------------------------------ contacts

    def contact_info(self, intro: bool) -> dict[str, Any]:
        """The payload of a ``**maxima_contact_ctrl**`` message (REFERENCE §4), in the node's key order."""
        return {
            "delete": False,
            "intro": intro,
            "publickey": self.publickey_hex,
            "address": self.contact_address,
            "name": self.name,
            "icon": self.icon,
            "minimaaddress": miniaddress(self.default_address),
            "topblock": str(self.chain.block),
            "checkblock": "1",
            "checkhash": self.chain.hashes[1],
            "mls": self.mls_address,
        }

    def contact_json(self, contact: Contact) -> dict[str, Any]:
        checkhash = contact.extradata.get("checkhash", "")
        return {
            "id": contact.id,
            "publickey": contact.publickey,
            "currentaddress": contact.currentaddress,
            "myaddress": contact.myaddress,
            "lastseen": contact.lastseen,
            "date": java_date(contact.lastseen),
            "extradata": contact.extradata,
            "chaintip": str(self.chain.block),
            "samechain": checkhash == self.chain.hashes[1],
        }

    # ------------------------------------------------------------------------------------ persistence

    def save(self) -> None:
        """Write the node's state file if it changed since the last save; safe from any number of threads.

        Every RPC command ends here, and commands run concurrently: saves are serialised by ``_save_lock``, and each
        one dumps the state inside it, so the last file written holds the latest state (an earlier dump can never
        replace a later one). The node's own lock is held only while dumping, not across the disk write.
        """
        if self.state_file is None:
            return
        with self._save_lock:
            with self.lock:
                text = json.dumps(self._dump())
            if text == self._saved_text:
                return
            write_file_atomic(self.state_file, text)
            self._saved_text = text

    def _dump(self) -> dict[str, Any]:
        return {
            "identity_private": to_hex(self.identity_private),
            "mls_private": to_hex(self.mls_private),
            "hostkey_private": to_hex(self.hostkey_private),
            "wallet_secret": to_hex(self.wallet_secret),
            "wallet_count": self.wallet_count,
            "default_count": self.default_count,
            "name": self.name,
            "icon": self.icon,
            "hooks": self.hooks,
            "contacts": [c.__dict__ for c in self.contacts],
            "next_contact_id": self.next_contact_id,
            "permanent": self.permanent,
            "static_mls": self.static_mls,
            "allow_all_contacts": self.allow_all_contacts,
            "tracked": self.tracked,
            "key_uses": self.key_uses,
        }

    def _load(self, data: dict[str, Any]) -> None:
        self.identity_private = from_hex(data["identity_private"])
        self.identity_public = crypto.maxima_public_key(self.identity_private)
        self.mls_private = from_hex(data["mls_private"])
        self.mls_public = crypto.maxima_public_key(self.mls_private)
        if "hostkey_private" in data:  # state saved before simnet modelled hosts has none: keep the new one
            self.hostkey_private = from_hex(data["hostkey_private"])
            self.hostkey_public = crypto.maxima_public_key(self.hostkey_private)
        self.wallet_secret = from_hex(data["wallet_secret"])
        self.wallet_count = int(data.get("wallet_count", 2))
        self.default_count = int(data.get("default_count", 1))  # saved before: getaddress answered the first key
        self.name, self.icon = data["name"], data["icon"]
        self.hooks = list(data["hooks"])
        self.contacts = [Contact(**c) for c in data["contacts"]]
        self.next_contact_id = data["next_contact_id"]
        self.permanent = list(data["permanent"])
        self.static_mls = data["static_mls"]
        self.allow_all_contacts = data["allow_all_contacts"]
        self.tracked = list(data["tracked"])
        self.key_uses = dict(data.get("key_uses", {}))

    def mx_publickey(self) -> str:
        return mx_encode(self.identity_public)
