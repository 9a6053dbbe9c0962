"""The MNS client SDK: one ``Client`` that talks to a gateway's REST API and to the user's own Minima node.

The user's private Maxima key never leaves their node: signing (``maxsign``), sending (``maxima action:send``),
opening ``maxencrypt`` blobs (``maxdecrypt``) and paying (``send``) are all done by the node over its RPC. The only
private key the client holds is the mailbox's X25519 box key (in ``Home``).

Everything the gateway says about a name is checked here before it is used: the binding signature is verified
with ``cryptography`` and the record's fields must be the signed statement's. Every letter read is decrypted and
its sender's signature verified locally (``envelope.open_letter``). A lookup's proof against the directory root on
chain, read through the user's own node, is checked by ``directory_check`` (``mns whois``; ``send`` refuses a key
the gateway is proven to have forged).

Waiting: a handshake is followed by polling ``GET /api/v1/handshakes/{id}`` (the gateway keeps its state);
receipts and forwarded messages come back over Maxima only, so the commands that wait for them hold a temporary
webhook on the node (``listener.NodeListener``) and give the node's reply address as ``reply_to``: its
``p2pidentity``, its ``contact`` or a ``MAX#`` address, as ``reply_via`` says (``reply.py``).

Every failure is an ``MNSError`` subclass with a ``code``; ``cli.exit_code_for`` maps them to exit codes.
"""

import logging
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import requests

from .config import AccessToken, BoxKey, Home
from .listener import MaximaEvent, NodeListener
from .protocol import entrypoints, lookup_proof
from .protocol.chainnames import ChainName, read_name
from .protocol.codecs import from_hex, mx_decode, parse_public_key, public_key_hex, to_hex
from .protocol.envelope import (
    SCHEME_NACL,
    SCHEMES,
    EnvelopeInvalid,
    Letter,
    Opened,
    SignedLetter,
    decrypt,
    encrypt,
    open_letter,
)
from .protocol.errors import AddressUnresolved, CodecError, DeliveryFailed, MNSError, RPCError
from .protocol.funds import DEFAULT_CONFIRMATIONS, spend_when_confirmed
from .protocol.handshake import Answer, new_verifier, verifier_hash
from .protocol.mailbox import (
    APPLICATION,
    Deliver,
    Forwarded,
    MailboxMessageInvalid,
    Receipt,
    access_token_header,
    access_token_read,
    new_delivery_id,
)
from .protocol.names import normalise
from .protocol.rpc import MaximaInfo, MinimaRPC
from .protocol.statements import NameStatement, SignedStatement, StatementInvalid, check_data
from .reply import REPLY_VIA_CHOICES, detect, reply_address

logger = logging.getLogger(__name__)

API = "/api/v1/"
DEFAULT_TIMEOUT = 15.0
PAY_WAIT_SECONDS = 300.0  # 3 confirmations take about 1 min on a test-mode node, about 2.5 min on mainnet
POLL_SECONDS = 0.5
TRANSFER_DAYS = 7  # how long an offer of a name stands unless said otherwise (the protocol allows up to 30)
CLAIM_GRACE_SECONDS = 300  # past the challenge's expiry, how long a register may wait for the network's claim
Progress = Callable[[str], None]


# ------------------------------------------------------------------------------------------------------- errors


class GatewayUnreachable(MNSError):
    """No answer from the gateway, or an answer that is not the API's (a proxy's error page, a 5xx without body)."""

    code = "gateway_unreachable"


class GatewayRefused(MNSError):
    """The gateway answered with its error shape: ``status``, ``code`` (``name_taken``, …), ``detail``, ``fields``."""

    def __init__(self, status: int, code: str, detail: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(code, detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = fields or {}

    def __str__(self) -> str:
        return self.detail


class HandshakeFailed(MNSError):
    """The owner's node could not prove itself: ``code`` is the gateway's reason (``challenge_expired``,
    ``code_wrong``, ``too_many_attempts``, …) or ours (``not_owner``, ``answer_refused``, ``answer_not_delivered``)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class NotVerified(MNSError):
    """Something signed did not verify: a name's binding, or a letter (``code`` says which check failed)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


class DirectoryRefuted(NotVerified):
    """The gateway's proof against the directory root on chain is wrong (``docs/protocol.md``, "Transparency"):
    a root that differs from the chain's, a broken proof, a forged statement. ``directory`` is the whole outcome."""

    def __init__(self, check: lookup_proof.DirectoryCheck) -> None:
        super().__init__(check.status, check.detail)
        self.directory = check.to_dict()


UNRESOLVED = (
    "the gateway's Maxima address does not resolve right now: its node restarted and its relay (MLS) forgets "
    "addresses for about 5 minutes; nothing was sent, try again in a few minutes"
)


class DeliveryError(MNSError):
    """A message was not stored: ``refused`` (the receipt's ``reason`` and ``detail``), ``receipt_timeout``,
    ``not_delivered`` (the node could not reach the gateway), or ``too_large`` (checked before sending)."""

    def __init__(self, code: str, detail: str, *, reason: str | None = None, delivery_id: str | None = None) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
        self.reason = reason
        self.delivery_id = delivery_id

    def __str__(self) -> str:
        return self.detail


class Unavailable(MNSError):
    """What was asked for does not exist yet: entry points not published, a name without a payment address."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


# ------------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class GatewayInfo:
    url: str
    identity: str  # the gateway's Maxima identity key: the ``gateway`` of statements, the ``from`` of receipts
    address: str  # where to send Maxima messages
    name: str
    max_message_bytes: int
    schemes: tuple[str, ...]
    pool: tuple[str, ...] = ()  # the keys of the gateway's other nodes: its receipts may come from them too

    @property
    def senders(self) -> frozenset[str]:
        """The keys the gateway's messages to users may come from (Maxima verifies ``from``)."""
        return frozenset((self.identity, *self.pool))


@dataclass(frozen=True)
class NameInfo:
    """A name's current record, its binding signature verified by this client."""

    name: str
    status: str
    owner: str
    box_key: bytes | None
    payment_address: str | None
    gateways: list[str]
    seq: int
    signed: SignedStatement
    on_chain: dict[str, Any] | None = None  # the gateway's word (not verified here) on the name on chain
    transparency: Any = None  # the lookup's proof against the directory root, unchecked: see directory_check

    @property
    def owner_key(self) -> bytes:
        return from_hex(self.owner)

    @property
    def data(self) -> dict[str, Any] | None:
        """The owner's signed data record, if any."""
        return self.signed.statement.data

    @property
    def transfer(self) -> dict[str, Any] | None:
        """The pending offer of the name (``to``, ``expires_at`` in Unix ms, ``offer``: its seq), if any."""
        statement = self.signed.statement
        if statement.op != "transfer":
            return None
        return {"to": statement.to, "expires_at": statement.expires_at, "offer": statement.seq}


@dataclass(frozen=True)
class Registered:
    name: str
    owner: str
    box_key: str
    payment_address: str | None
    token_id: str
    gateway: str


@dataclass(frozen=True)
class Sent:
    delivery_id: str
    name: str
    scheme: str
    size: int  # the ciphertext's bytes: what the gateway stores
    status: str  # "stored", or "sent" when the receipt was not awaited
    message_id: str | None = None


@dataclass(frozen=True)
class MessageMeta:
    id: str
    sender: str
    sender_verified: bool
    scheme: str
    size: int
    received_at: str
    state: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> "MessageMeta":
        return cls(
            id=str(data["id"]),
            sender=str(data.get("sender") or ""),
            sender_verified=bool(data.get("sender_verified")),
            scheme=str(data["scheme"]),
            size=int(data["size"]),
            received_at=str(data.get("received_at") or ""),
            state=str(data.get("state") or "stored"),
            raw=data,
        )


@dataclass(frozen=True)
class ReadMessage:
    """A stored message, decrypted and checked: ``opened`` is None when it does not open or verify (``problem``)."""

    meta: MessageMeta
    opened: Opened | None
    problem: EnvelopeInvalid | None = None
    from_name_verified: bool | None = None  # the letter's from_name claim, checked by a lookup


@dataclass(frozen=True)
class ForwardResult:
    queued: int
    retried: int
    in_flight: int
    received: list[ReadMessage]


@dataclass(frozen=True)
class PaymentPlan:
    name: str
    address: str
    amount: str
    tokenid: str  # "0x00" is Minima


# -------------------------------------------------------------------------------------------------------- REST


class GatewayAPI:
    """The gateway's REST API: JSON in and out, its error shape turned into ``GatewayRefused``."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, session: requests.Session | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CodecError("a gateway URL is http(s)://host[:port]")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def request(
        self, method: str, path: str, *, json: Any = None, auth: str | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        url = self._same_origin(path) if path.startswith(("http://", "https://")) else self.url + path
        headers = {"Accept": "application/json"}
        if auth is not None:
            headers["Authorization"] = auth
        try:
            response = self.session.request(
                method, url, json=json, headers=headers, params=params, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise GatewayUnreachable(f"cannot reach the gateway at {self.url} ({type(exc).__name__})") from None
        return self._decode(response)

    def _same_origin(self, link: str) -> str:
        """A link the gateway gave (a page's ``next``), kept on this gateway's scheme and host: credentials are
        never sent anywhere else, whatever the link says."""
        ours, theirs = urllib.parse.urlsplit(self.url), urllib.parse.urlsplit(link)
        if (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc):
            return link
        return urllib.parse.urlunsplit((ours.scheme, ours.netloc, theirs.path, theirs.query, ""))

    def _decode(self, response: requests.Response) -> Any:
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= response.status_code < 300 and body is not None:
            return body
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            detail = str(body.get("detail") or body["error"])
            raise GatewayRefused(response.status_code, body["error"], detail, body.get("fields"))
        raise GatewayUnreachable(f"the gateway at {self.url} answered HTTP {response.status_code} without an API reply")


# ------------------------------------------------------------------------------------------------------ client


class Client:
    """One user's client: their node (``rpc``), one gateway (``gateway_url``) and their files (``home``).

    ``progress`` receives short human lines while the client waits (handshakes, receipts). ``use_token=False``
    makes owner commands do a handshake even when an access token is stored. Call ``close()`` when done: it
    revokes the handshake sessions this client opened.
    """

    def __init__(
        self,
        *,
        rpc: MinimaRPC,
        gateway_url: str,
        home: Home,
        progress: Progress | None = None,
        listen_host: str = "127.0.0.1",
        use_token: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        reply_via: str | None = None,
        confirmations: int = DEFAULT_CONFIRMATIONS,
    ) -> None:
        if reply_via not in (None, *REPLY_VIA_CHOICES):
            raise ValueError(f"reply_via: expected one of {', '.join(REPLY_VIA_CHOICES)}")
        self.rpc = rpc
        self.reply_via = reply_via
        self.confirmations = confirmations
        self.api = GatewayAPI(gateway_url, timeout=timeout)
        self.home = home
        self.progress = progress or (lambda line: None)
        self.listen_host = listen_host
        self.use_token = use_token
        self._identity: MaximaInfo | None = None
        self._gateway: GatewayInfo | None = None
        self._gateway_remembered = False
        self._sessions: dict[tuple[str, str], str] = {}

    @property
    def gateway_url(self) -> str:
        return self.api.url

    def close(self) -> None:
        """Revoke the sessions this client opened (best effort: they expire anyway)."""
        for token in self._sessions.values():
            try:
                self.api.request("DELETE", API + "session", auth=f"MNS-Session {token}")
            except MNSError as exc:
                logger.info("could not revoke a session: %s", exc.code)
        self._sessions.clear()

    # -- who is who

    def identity(self) -> MaximaInfo:
        """The user's node: its identity key (the owner key of their names) and addresses."""
        if self._identity is None:
            self._identity = self.rpc.maxima_info()
        return self._identity

    def reply_address(self) -> str:
        """Where the gateway should answer this node (``reply.py``): given in every message, so it follows a move."""
        return reply_address(self.identity(), self.reply_route())

    def reply_route(self) -> str:
        """``direct``, ``contact`` or ``max``: ``reply_via`` (else the settings'); ``auto`` measures it once per
        node address and keeps the result in the settings."""
        settings = self.home.settings()
        via = self.reply_via or settings.reply_via or "auto"
        if via != "auto":
            return via
        info = self.identity()
        known = settings.reachability
        if known.get("p2pidentity") == info.p2pidentity and known.get("via") in ("direct", "contact"):
            return str(known["via"])
        gateway = settings.gateways.get(self.gateway_url) or {}
        via = detect(self.rpc, info, gateway_address=gateway.get("address"))
        self.progress(f"your node is reached {'directly' if via == 'direct' else 'through its Maxima host'}")
        settings.reachability = {"p2pidentity": info.p2pidentity, "via": via}
        self.home.save_settings(settings)
        return via

    def gateway(self, *, remember: bool = True) -> GatewayInfo:
        """The gateway's policy and Maxima identity (``/.well-known/mns.json``), remembered in the settings unless
        ``remember`` is false (``mns init`` checks the gateway answers before it writes anything)."""
        if self._gateway is None:
            body = self.api.request("GET", "/.well-known/mns.json")
            body = body if isinstance(body, dict) else {}
            maxima = body.get("maxima") if isinstance(body.get("maxima"), dict) else {}
            if not maxima.get("publickey") or not maxima.get("address"):
                raise GatewayRefused(503, "gateway_not_ready", "The gateway does not know its Maxima identity yet.")
            limits = body.get("limits") or {}
            self._gateway = GatewayInfo(
                url=self.gateway_url,
                identity=str(maxima["publickey"]),
                address=str(maxima["address"]),
                name=str(body.get("name") or ""),
                max_message_bytes=int(limits.get("max_message_bytes") or 64 * 1024),
                schemes=tuple(body.get("schemes") or SCHEMES),
                pool=_pool_keys(maxima.get("pool")),
            )
        if remember and not self._gateway_remembered:
            self._remember_gateway(self._gateway)
            self._gateway_remembered = True
        return self._gateway

    def _remember_gateway(self, info: GatewayInfo) -> None:
        settings = self.home.settings()
        known = settings.gateways.get(info.url)
        entry = {"identity": info.identity, "address": info.address, "name": info.name}
        if known != entry:
            if known and known.get("identity") != info.identity:
                logger.warning("the gateway at %s has a new Maxima identity", info.url)
            settings.gateways[info.url] = entry
            self.home.save_settings(settings)

    # -- lookups

    def lookup(self, name: str) -> NameInfo:
        """A name's record with its binding verified here (``NotVerified`` otherwise)."""
        name = normalise(name)
        body = self.api.request("GET", API + "names/" + urllib.parse.quote(name, safe=""))
        return _verified_record(name, body)

    def directory_check(self, record: NameInfo) -> lookup_proof.DirectoryCheck:
        """Check a lookup's proof (``record.transparency``) against the directory root of the newest bulletin on
        chain, read through the user's own node as ``entry_points`` reads it (``docs/protocol.md``,
        "Transparency"). Never raises for what it finds: the outcome says it, and ``failed`` when the gateway's
        answer is proven wrong (``raise DirectoryRefuted(check)`` to stop there)."""
        try:
            config = self._entry_config()
            if config is None:
                return lookup_proof.unread("the gateway does not say where the entry-point bulletin is")
            reading = self._read_bulletin(config)
        except MNSError as exc:
            return lookup_proof.unread(f"{getattr(exc, 'code', '') or type(exc).__name__}: {exc}")
        return lookup_proof.check_lookup(
            name=record.name,
            current=record.signed,
            answer=record.transparency,
            chain_root=reading.bulletin.root if reading is not None else None,
            bulletin=reading.bulletin.seq if reading is not None else None,
            between=lambda: self._signed_history(record.name),
        )

    def _signed_history(self, name: str) -> list[SignedStatement]:
        """The name's statements as the gateway's history gives them; an entry that does not parse is left out
        (the chain of statements is then broken, which the caller reports)."""
        kept: list[SignedStatement] = []
        try:
            for entry in self._history(name):
                if len(kept) >= lookup_proof.MAX_HISTORY:
                    break
                try:
                    kept.append(
                        SignedStatement.from_dict({"statement": entry["statement"], "signature": entry["signature"]})
                    )
                except (StatementInvalid, KeyError, TypeError):
                    continue
        except (MNSError, AttributeError) as exc:
            logger.info("directory check: the history of %s could not be read: %s", name, getattr(exc, "code", exc))
        return kept

    def chain_lookup(self, name: str) -> ChainName | None:
        """``name`` as Minima's MNS holds it on chain, read through this client's own node and checked by its
        ``verify`` (not the gateway's word): None when it is not registered there."""
        return read_name(self.rpc, normalise(name))

    def owned_names(self) -> list[str]:
        """The names this node's key holds at the gateway (the reverse lookup), active ones first."""
        body = self.api.request("GET", API + "names", params={"owner": self.identity().publickey_hex})
        names = [entry for entry in body.get("names", []) if isinstance(entry, dict)]
        names.sort(key=lambda entry: entry.get("status") != "active")
        return [str(entry["name"]) for entry in names]

    def _last_seq(self, name: str) -> int:
        """The seq of a name's newest statement here (0 for a name never seen), for a new ``register``."""
        try:
            return self.lookup(name).seq
        except GatewayRefused as refused:
            if refused.code == "name_released":
                return max((entry["seq"] for entry in self._history(name)), default=0)
            if refused.code == "name_not_found":
                return 0
            raise

    def _history(self, name: str) -> Iterator[dict[str, Any]]:
        page: str | None = API + f"names/{urllib.parse.quote(name, safe='')}/history"
        while page:
            body = self.api.request("GET", page)
            yield from body.get("results", [])
            page = body.get("next")

    # -- registration

    def register(self, name: str, *, payment_address: str | None = None) -> Registered:
        """Sign the binding on the node, ask the gateway, answer its handshake from the node, and keep the access
        token (opened with the node's ``maxdecrypt``)."""
        name = normalise(name)
        info, gateway = self.identity(), self.gateway()
        box = self.home.current_box_key()
        asked = payment_address  # "node" is resolved only for a new statement: getaddress answers another each time
        payment = None if asked == "node" else self._payment_address(asked)
        signed = self._pending_registration(name, box_key=to_hex(box.public), asked=asked, payment_address=payment)
        if signed is None:
            payment = self._payment_address(asked) if asked == "node" else payment
            statement = NameStatement(
                op="register",
                name=name,
                owner=info.publickey_hex,
                box_key=to_hex(box.public),
                payment_address=payment,
                seq=self._last_seq(name) + 1,
                issued_at=_now_ms(),
                gateway=gateway.identity,
            )
            signed = self._sign_statement(statement)
            self._remember_pending(name, signed, asked=asked)
        statement = signed.statement
        verifier = new_verifier()
        self.progress(f"asking {gateway.url} for {name!r}")
        request = {**signed.to_dict(), "address": self.reply_address(), "verifier_hash": verifier_hash(verifier)}
        try:
            pending = self._ask_for_name(request, statement)
        except GatewayRefused as refused:
            if refused.status < 500:  # refused for good: a later attempt signs a new statement
                self._forget_pending(name)
            raise
        session = self._complete_handshake(pending["handshake"], verifier)
        self._sessions[(name, "register")] = session
        token = self._fetch_access_token(name, f"MNS-Session {session}")
        settings = self.home.settings()
        settings.names[name] = {"gateway": self.gateway_url}  # the pending statement is done with
        settings.name = settings.name or name
        self.home.save_settings(settings)
        return Registered(
            name=name,
            owner=info.publickey_hex,
            box_key=to_hex(box.public),
            payment_address=statement.payment_address,
            token_id=token.token_id,
            gateway=self.gateway_url,
        )

    def _ask_for_name(self, request: dict[str, Any], statement: NameStatement) -> Any:
        """``POST mailboxes``; a name Minima's MNS holds on chain for a key of this node's own wallet is asked for
        again with that key's signature (``chain_signature``), which the gateway wants before it lets it go."""
        try:
            return self.api.request("POST", API + "mailboxes", json=request)
        except GatewayRefused as refused:
            proof = self.chain_signature(statement) if refused.code == "name_held_on_chain" else None
            if proof is None:
                raise
            self.progress(f"{statement.name!r} is held on chain by this node's wallet: signing for it with that key")
            return self.api.request("POST", API + "mailboxes", json={**request, "chain_signature": to_hex(proof)})

    def chain_signature(self, statement: NameStatement) -> bytes | None:
        """The ``sign`` of the register ``statement`` by the key that holds its name on chain, when that key is in
        this node's wallet; None when the name is not on chain, or held by a key this node does not have."""
        try:
            held = self.chain_lookup(statement.name)
            if held is None or not self.rpc.keys(publickey=held.holder):
                return None
            return self.rpc.sign(publickey=held.holder, data=statement.canonical())
        except RPCError as failed:
            logger.info("no on-chain signature for %s: %s", statement.name, failed.code)
            return None

    def _pending_registration(
        self, name: str, *, box_key: str, asked: str | None, payment_address: str | None
    ) -> SignedStatement | None:
        """The statement of an earlier attempt to register ``name`` here whose handshake did not finish, if it says
        what this attempt would: the gateway holds the name for that exact statement and answers it with a new
        challenge (a new statement would be refused while the hold stands). A payment address ``asked`` as
        ``node`` matches one that was asked so too: the node's ``getaddress`` answers one of its default addresses
        at random, so the one it gave before is as much the node's own as the one it would give now."""
        saved = self.home.settings().names.get(name, {}).get("pending")
        if not isinstance(saved, dict) or saved.get("gateway") != self.gateway_url:
            return None
        try:
            signed = SignedStatement.from_dict(saved["signed"])
        except (StatementInvalid, KeyError, TypeError):
            return None
        statement = signed.statement
        same = (statement.owner, statement.box_key, statement.gateway) == (
            self.identity().publickey_hex,
            box_key,
            self.gateway().identity,
        )
        if asked == "node" and "asked" not in saved:  # kept by a client before 2026-12: compared as it did
            payment_address = self._payment_address(asked)
        elif asked == "node":
            if saved["asked"] != "node":
                return None  # signed for another address
            payment_address = None  # the node's own address, as that attempt resolved it
        if not same or (payment_address is not None and statement.payment_address != payment_address):
            return None
        self.progress("resuming the registration your node signed before")
        return signed

    def _remember_pending(self, name: str, signed: SignedStatement, *, asked: str | None) -> None:
        settings = self.home.settings()
        settings.names[name] = {
            "gateway": self.gateway_url,
            "pending": {"gateway": self.gateway_url, "signed": signed.to_dict(), "asked": asked},
        }
        self.home.save_settings(settings)

    def _forget_pending(self, name: str) -> None:
        settings = self.home.settings()
        if settings.names.get(name, {}).pop("pending", None) is not None:
            self.home.save_settings(settings)

    def _payment_address(self, address: str | None) -> str | None:
        """``None``, an address as given (checked), or ``"node"``: the node's own wallet address."""
        if address is None:
            return None
        if address == "node":
            wallet = self.rpc.getaddress()
            return str(wallet.get("miniaddress") or wallet["address"])
        if address.startswith("Mx"):
            mx_decode(address)
            return address
        return to_hex(from_hex(address))

    def _sign_statement(self, statement: NameStatement) -> SignedStatement:
        self.progress("signing the binding on your node (maxsign)")
        signed = SignedStatement(statement=statement, signature=self.rpc.maxsign(statement.canonical()))
        try:
            signed.verify()
        except StatementInvalid:
            raise NotVerified("signature_invalid", "the node's signature does not match its own identity key") from None
        return signed

    def _fetch_access_token(self, name: str, auth: str) -> AccessToken:
        body = self.api.request("GET", API + f"mailboxes/{name}/access-token", auth=auth)
        try:
            token_id, secret = access_token_read(self.rpc.maxdecrypt(from_hex(body["token"])))
        except (MailboxMessageInvalid, CodecError, KeyError, TypeError):
            raise NotVerified(
                "token_invalid", "the access token from the gateway does not open with this node"
            ) from None
        token = AccessToken(token_id=token_id, secret=secret)
        self.home.save_token(self.gateway_url, name, token)
        return token

    # -- handshakes

    def handshake(self, name: str, purpose: str) -> str:
        """A session token for ``purpose`` on ``name``: the gateway's code, answered by the owner's node."""
        name = normalise(name)
        cached = self._sessions.get((name, purpose))
        if cached:
            return cached
        record = self.lookup(name)
        if record.owner != self.identity().publickey_hex:
            raise HandshakeFailed(
                "not_owner", f"this node's key is not the owner of {name!r}: use the node that registered it"
            )
        verifier = new_verifier()
        issued = self.api.request(
            "POST",
            API + "handshakes",
            json={"name": name, "purpose": purpose, "verifier_hash": verifier_hash(verifier)},
        )
        self._sessions[(name, purpose)] = self._complete_handshake(issued, verifier)
        return self._sessions[(name, purpose)]

    def _complete_handshake(self, issued: dict[str, Any], verifier: str) -> str:
        challenge = str(issued["id"])
        before = self._challenge_state(challenge)
        self._send_answer(issued)
        self._await_verified(challenge, issued, before.get("attempts_left"))
        body = self.api.request("POST", API + f"handshakes/{challenge}/session", json={"verifier": verifier})
        return str(body["token"])

    def _challenge_state(self, challenge: str) -> dict[str, Any]:
        return self.api.request("GET", API + f"handshakes/{challenge}")

    def _send_to_gateway(self, address: str, data: bytes) -> None:
        """Send to the gateway's Maxima address. When a ``MAX#`` address does not resolve (the gateway's node
        restarted: its MLS forgets for minutes), ask the gateway for its current address once and send there: a
        gateway publishes its direct address while its ``MAX#`` one is dark. ``AddressUnresolved`` if that fails too.
        """
        try:
            self.rpc.maxima_send(to=address, application=APPLICATION, data=data)
            return
        except AddressUnresolved:
            self._gateway = None
            current = self.gateway().address
            if current == address:
                raise
        self.progress("the gateway's MAX# address does not resolve right now: sending to its current address")
        self.rpc.maxima_send(to=current, application=APPLICATION, data=data)

    def _send_answer(self, issued: dict[str, Any]) -> None:
        answer = Answer(challenge=str(issued["id"]), code=str(issued["code"]), reply_to=self.reply_address())
        self.progress("your node answers the gateway's challenge over Maxima")
        deadline = _deadline(issued.get("expires_at"))
        while True:
            try:
                self._send_to_gateway(str(issued["gateway_address"]), answer.to_bytes())
                return
            except AddressUnresolved:
                raise HandshakeFailed("gateway_unresolved", UNRESOLVED) from None
            except DeliveryFailed as failed:
                if failed.permanent or time.time() + 2 > deadline:
                    raise HandshakeFailed(
                        "answer_not_delivered",
                        f"your node could not deliver the answer to the gateway ({failed.error})",
                    ) from None
                time.sleep(1)

    def _await_verified(self, challenge: str, issued: dict[str, Any], attempts_before: int | None) -> None:
        deadline = _deadline(issued.get("expires_at"))
        while True:
            state = self._challenge_state(challenge)
            status = state.get("status")
            if status == "verified":
                self.progress("the gateway verified your node")
                return
            if status in ("failed", "expired"):
                reason = str(state.get("reason") or ("challenge_expired" if status == "expired" else "failed"))
                raise HandshakeFailed(reason, _handshake_failure(reason))
            left = state.get("attempts_left")
            if isinstance(attempts_before, int) and isinstance(left, int) and left < attempts_before:
                raise HandshakeFailed(
                    "answer_refused", "the gateway refused your node's answer (it did not come from the owner's key)"
                )
            remaining = deadline - time.time()
            if state.get("reason") == "claim_open":
                # A register answered, waiting for the MNS network to confirm the name (verified, or failed
                # name_taken/claim_expired, once the gateway's claim is decided; the claim ends on its own).
                if remaining < -CLAIM_GRACE_SECONDS:
                    raise HandshakeFailed("claim_expired", _handshake_failure("claim_expired"))
                self.progress("your node answered; waiting for the MNS network to confirm the name")
                time.sleep(POLL_SECONDS)
                continue
            if remaining < -5:  # the gateway should have said expired by now; do not wait for ever
                raise HandshakeFailed("challenge_expired", _handshake_failure("challenge_expired"))
            self.progress(f"waiting for the gateway to see your node's answer ({max(remaining, 0):.0f} s left)")
            time.sleep(POLL_SECONDS)

    # -- owner requests

    def _owner(self, name: str, purpose: str, method: str, path: str, *, json: Any = None) -> Any:
        """An owner's request on a mailbox: with the stored access token, else (or when it was refused) with a
        session from a fresh handshake."""
        name = normalise(name)
        token = self.home.token(self.gateway_url, name) if self.use_token else None
        if token is not None and (name, purpose) not in self._sessions:
            try:
                return self.api.request(method, path, json=json, auth=access_token_header(token.token_id, token.secret))
            except GatewayRefused as refused:
                if refused.code not in ("token_invalid", "token_revoked"):
                    raise
                logger.info("the stored access token was refused (%s): doing a handshake", refused.code)
                self.home.forget_token(self.gateway_url, name)
        session = self.handshake(name, purpose)
        return self.api.request(method, path, json=json, auth=f"MNS-Session {session}")

    # -- sending

    def send(
        self,
        name: str,
        body: bytes,
        *,
        subject: str | None = None,
        scheme: str = SCHEME_NACL,
        from_name: str | None = None,
        wait: bool = True,
        receipt_timeout: float = 60.0,
    ) -> Sent:
        """Encrypt a signed letter to ``name``, have the node deliver it to the gateway, and wait for the receipt.

        Raises ``DeliveryError``: ``refused`` (with the receipt's reason), ``receipt_timeout``, ``not_delivered``,
        ``too_large``; ``DirectoryRefuted`` before anything is encrypted when the gateway's proof against the
        directory root on chain is proven wrong (a box key it may have forged).
        """
        record = self.lookup(name)
        check = self.directory_check(record)
        if check.failed:
            raise DirectoryRefuted(check)
        gateway, info = self.gateway(), self.identity()
        if scheme not in SCHEMES:
            raise EnvelopeInvalid(
                "envelope_scheme_unknown", f"unknown scheme {scheme!r}: use one of {', '.join(SCHEMES)}"
            )
        if scheme == SCHEME_NACL and record.box_key is None:
            raise Unavailable("no_box_key", f"{record.name!r} has no box key")
        delivery_id = new_delivery_id()
        letter = Letter.make(
            id=delivery_id,
            sender=info.publickey_hex,
            to=record.name,
            sent_at=_now_ms(),
            body=body,
            subject=subject,
            from_name=normalise(from_name) if from_name else None,
        )
        self.progress("signing the letter on your node (maxsign)")
        signed = SignedLetter(letter=letter, signature=self.rpc.maxsign(letter.canonical()))
        signed.verify()
        ciphertext = encrypt(scheme, signed.to_bytes(), box_key=record.box_key, owner_key=record.owner_key)
        if len(ciphertext) > gateway.max_message_bytes:
            raise DeliveryError(
                "too_large",
                f"the encrypted message is {len(ciphertext)} bytes; this gateway takes at most "
                f"{gateway.max_message_bytes}",
                reason="too_large",
            )
        deliver = Deliver(
            id=delivery_id,
            to=record.name,
            scheme=scheme,
            ciphertext=ciphertext,
            reply_to=self.reply_address(),
            owner=record.owner,  # refused if the name changes hands before it arrives: never the next owner's
        )
        if not wait:
            self._deliver(gateway, deliver)
            return Sent(delivery_id, record.name, scheme, len(ciphertext), "sent")
        with NodeListener(self.rpc, host=self.listen_host) as listener:
            self._deliver(gateway, deliver)
            self.progress("waiting for the gateway's receipt")
            receipt = listener.wait_for(_receipt_picker(gateway.senders, delivery_id), timeout=receipt_timeout)
        if receipt is None:
            raise DeliveryError(
                "receipt_timeout",
                f"no receipt from the gateway within {receipt_timeout:.0f} s: the message may or may not be stored",
                delivery_id=delivery_id,
            )
        if receipt.status != "stored":
            raise DeliveryError(
                "refused",
                f"the gateway refused the message: {receipt.reason}"
                + (f" ({receipt.detail})" if receipt.detail else ""),
                reason=receipt.reason,
                delivery_id=delivery_id,
            )
        return Sent(delivery_id, record.name, scheme, len(ciphertext), "stored", receipt.message_id)

    def _deliver(self, gateway: GatewayInfo, deliver: Deliver) -> None:
        self.progress(f"your node sends the ciphertext to the gateway ({len(deliver.ciphertext)} bytes)")
        try:
            self._send_to_gateway(gateway.address, deliver.to_bytes())
        except AddressUnresolved:
            raise DeliveryError("gateway_unresolved", UNRESOLVED, delivery_id=deliver.id) from None
        except DeliveryFailed as failed:
            raise DeliveryError(
                "not_delivered",
                f"your node could not deliver the message to the gateway ({failed.error})",
                delivery_id=deliver.id,
            ) from None

    # -- reading (option 1)

    def messages(self, name: str) -> list[MessageMeta]:
        """The mailbox's messages, newest first (metadata only)."""
        name = normalise(name)
        found: list[MessageMeta] = []
        page: str | None = API + f"mailboxes/{name}/messages?limit=200"
        while page:
            body = self._owner(name, "read", "GET", page)
            found.extend(MessageMeta.from_api(item) for item in body.get("results", []))
            page = body.get("next")
        return found

    def read(self, name: str, message_id: str) -> ReadMessage:
        """Fetch one message, decrypt it here (or with the node's maxdecrypt), verify its letter."""
        name = normalise(name)
        body = self._owner(name, "read", "GET", API + f"mailboxes/{name}/messages/{_segment(message_id)}")
        meta = MessageMeta.from_api(body)
        return self._open(name, meta, from_hex(body["ciphertext"]))

    def delete(self, name: str, message_id: str) -> None:
        name = normalise(name)
        self._owner(name, "read", "DELETE", API + f"mailboxes/{name}/messages/{_segment(message_id)}")

    def _open(self, name: str, meta: MessageMeta, ciphertext: bytes) -> ReadMessage:
        sender = meta.sender if meta.sender_verified else None
        try:
            plaintext = decrypt(
                meta.scheme,
                ciphertext,
                box_privates=[key.private for key in reversed(self.home.box_keys())],
                maxdecrypt=self._maxdecrypt,
            )
            opened = open_letter(plaintext, name=name, delivery_sender=sender)
        except EnvelopeInvalid as problem:
            return ReadMessage(meta=meta, opened=None, problem=problem)
        return ReadMessage(meta=meta, opened=opened, from_name_verified=self._check_from_name(opened.letter))

    def _maxdecrypt(self, blob: bytes) -> bytes:
        try:
            return self.rpc.maxdecrypt(blob)
        except MNSError as exc:
            if exc.code in ("node_unreachable", "node_auth_failed"):
                raise
            raise EnvelopeInvalid("envelope_undecryptable", "your node's maxdecrypt did not open the blob") from None

    def _check_from_name(self, letter: Letter) -> bool | None:
        """Whether the sender's claimed name (if any) is owned by the key that signed the letter."""
        if letter.from_name is None:
            return None
        try:
            return self.lookup(letter.from_name).owner == letter.from_
        except MNSError:
            return False

    # -- forwarding (option 2)

    def forward(self, name: str, *, delete_after: bool = False, wait: float = 30.0) -> ForwardResult:
        """Have the gateway forward the stored messages to this node, and open the ones that arrive in ``wait``."""
        name = normalise(name)
        gateway = self.gateway()
        self._address_current(name)
        with NodeListener(self.rpc, host=self.listen_host) as listener:
            summary = self._owner(
                name, "forward", "POST", API + f"mailboxes/{name}/forward", json={"delete_after": delete_after}
            )
            expected = int(summary.get("queued", 0)) + int(summary.get("retried", 0)) + int(summary.get("in_flight", 0))
            self.progress(f"the gateway is forwarding {expected} message(s) to your node")
            forwarded = listener.collect(
                _forward_picker(gateway.senders, name),
                until=lambda found: len({item.message_id for item in found}) >= expected,
                timeout=wait if expected else 0,
            )
        unique = {item.message_id: item for item in forwarded}
        received = [self._open_forwarded(name, item) for item in unique.values()]
        return ForwardResult(
            queued=int(summary.get("queued", 0)),
            retried=int(summary.get("retried", 0)),
            in_flight=int(summary.get("in_flight", 0)),
            received=received,
        )

    def _open_forwarded(self, name: str, item: Forwarded) -> ReadMessage:
        meta = MessageMeta(
            id=item.message_id,
            sender=item.sender,
            sender_verified=item.sender_verified,
            scheme=item.scheme,
            size=len(item.ciphertext),
            received_at=datetime.fromtimestamp(item.received_at / 1000).astimezone().isoformat(timespec="seconds"),
            state="forwarded",
        )
        return self._open(name, meta, item.ciphertext)

    def set_auto_forward(self, name: str, on: bool) -> dict[str, Any]:
        name = normalise(name)
        return self._owner(name, "manage", "PATCH", API + f"mailboxes/{name}", json={"auto_forward": bool(on)})

    def set_address(self, name: str, address: str | None = None) -> dict[str, Any]:
        """Tell the gateway where this node is now (default: its reply address); what waits for the old one follows."""
        name = normalise(name)
        address = address or self.reply_address()
        return self._owner(name, "manage", "PATCH", API + f"mailboxes/{name}", json={"address": address})

    def _address_current(self, name: str) -> None:
        """Before the gateway sends this node anything: the mailbox's address is where the node is now."""
        current = self.reply_address()
        mailbox = self._owner(name, "forward", "GET", API + f"mailboxes/{name}")
        if mailbox.get("address") not in (current, ""):
            self.progress("your node moved: telling the gateway its new address")
            self.set_address(name, current)

    def mailbox(self, name: str) -> dict[str, Any]:
        name = normalise(name)
        return self._owner(name, "read", "GET", API + f"mailboxes/{name}")

    # -- changing the record

    def rotate_key(self, name: str) -> NameInfo:
        """A new box key: kept here first, then published as an owner-signed ``update``. Older keys are kept so
        older messages still open; if the gateway refuses, the new key is forgotten again."""
        record = self._own_record(name)
        new_key = self.home.add_box_key(BoxKey.generate())
        try:
            return self._update(record, box_key=to_hex(new_key.public))
        except BaseException:
            self.home.drop_box_key(new_key.public)
            raise

    def set_payment(self, name: str, address: str | None) -> NameInfo:
        """Publish a new payment address (``"node"``: the node's own wallet address; ``None``: none)."""
        record = self._own_record(name)
        return self._update(record, payment_address=self._payment_address(address), clear_payment=address is None)

    def set_data(self, name: str, data: dict[str, Any] | None) -> NameInfo:
        """Publish the name's data record (a JSON object, checked here as the gateway will), or remove it."""
        record = self._own_record(name)
        return self._update(record, data=None if data is None else check_data(data), clear_data=data is None)

    # -- transfers

    def transfer(self, name: str, to: str, *, days: int = TRANSFER_DAYS) -> NameInfo:
        """Offer the name to another owner key (``to``: its key as ``0x…``/``Mx…``, or a name whose owner it is),
        open for ``days``; the binding stands until that key accepts. Needs a ``delete`` handshake: it gives the
        name up."""
        record = self._own_record(name)
        new_owner = self._owner_key_of(to)
        current = record.signed.statement
        now = _now_ms()
        statement = NameStatement(
            op="transfer",
            name=record.name,
            owner=current.owner,
            box_key=current.box_key,
            payment_address=current.payment_address,
            data=current.data,
            to=new_owner,
            expires_at=now + days * 24 * 3600 * 1000,
            seq=record.seq + 1,
            issued_at=now,
            gateway=current.gateway,
        )
        return self._post_statement(record.name, self._sign_statement(statement), purpose="delete")

    def cancel_transfer(self, name: str) -> NameInfo:
        """Withdraw the pending offer: an ``update`` of the binding as it stands."""
        record = self._own_record(name)
        if record.transfer is None:
            raise GatewayRefused(409, "transfer_not_pending", f"no transfer of {record.name!r} is pending")
        return self._update(record)

    def accept_transfer(self, name: str, *, payment_address: str | None = None) -> NameInfo:
        """Take a name offered to this node's key: an ``accept`` signed by the node, with this client's own box
        key (nothing of the old owner's carries over: its mailbox is deleted, this one starts empty). No session:
        the node's signature over the offer's seq is the proof. Then the new mailbox learns this node's address,
        with a ``manage`` handshake, as a registration gives it."""
        record = self.lookup(name)
        me, offer = self.identity().publickey_hex, record.transfer
        if offer is None or offer["to"] != me:
            raise GatewayRefused(409, "transfer_not_pending", f"no transfer of {record.name!r} to this node is pending")
        if _now_ms() > offer["expires_at"]:
            raise GatewayRefused(409, "transfer_expired", f"the offer of {record.name!r} expired")
        statement = NameStatement(
            op="accept",
            name=record.name,
            owner=me,
            box_key=to_hex(self.home.current_box_key().public),
            payment_address=self._payment_address(payment_address),
            accepts=offer["offer"],
            seq=record.seq + 1,
            issued_at=_now_ms(),
            gateway=self.gateway().identity,
        )
        taken = self._post_statement(record.name, self._sign_statement(statement), purpose=None)
        settings = self.home.settings()
        settings.names[record.name] = {"gateway": self.gateway_url}
        settings.name = settings.name or record.name
        self.home.save_settings(settings)
        # The new mailbox knows no address yet (the statement carries none): forwards and tokens need one.
        self.progress("telling the gateway where your node is (forwards go there)")
        self.set_address(record.name)
        return taken

    def _owner_key_of(self, who: str) -> str:
        """A key as the protocol spells it, from a key in any spelling or from a name (its verified owner)."""
        try:
            return public_key_hex(parse_public_key(who))
        except CodecError:
            return self.lookup(who).owner

    def _own_record(self, name: str) -> NameInfo:
        record = self.lookup(name)
        if record.owner != self.identity().publickey_hex:
            raise HandshakeFailed("not_owner", f"this node's key is not the owner of {record.name!r}")
        return record

    def _update(
        self,
        record: NameInfo,
        *,
        box_key: str | None = None,
        payment_address: str | None = None,
        clear_payment: bool = False,
        data: dict[str, Any] | None = None,
        clear_data: bool = False,
    ) -> NameInfo:
        """An ``update`` keeping every field not given (the data record included: each statement carries the
        whole record); it also withdraws a pending transfer."""
        current = record.signed.statement
        statement = NameStatement(
            op="update",
            name=record.name,
            owner=current.owner,
            box_key=box_key or current.box_key,
            payment_address=None if clear_payment else (payment_address or current.payment_address),
            data=None if clear_data else (data or current.data),
            seq=record.seq + 1,
            issued_at=_now_ms(),
            gateway=current.gateway,
        )
        return self._post_statement(record.name, self._sign_statement(statement), purpose="rotate")

    def _post_statement(self, name: str, signed: SignedStatement, *, purpose: str | None) -> NameInfo:
        """Send a signed statement, with a handshake session for ``purpose`` (``None``: an accept, which has none)."""
        auth = f"Bearer {self.handshake(name, purpose)}" if purpose else None
        body = self.api.request("POST", API + f"names/{name}/statements", json=signed.to_dict(), auth=auth)
        return _verified_record(name, body)

    # -- paying

    def payment_plan(self, name: str, amount: str, *, tokenid: str | None = None) -> PaymentPlan:
        """What ``pay`` would send, from the name's verified record (``Unavailable`` if it has no address)."""
        record = self.lookup(name)
        if not record.payment_address:
            raise Unavailable("no_payment_address", f"{record.name!r} has no payment address")
        return PaymentPlan(name=record.name, address=record.payment_address, amount=amount, tokenid=tokenid or "0x00")

    def pay(self, plan: PaymentPlan, *, wait: float = PAY_WAIT_SECONDS) -> dict[str, Any]:
        """Have the user's node send the payment once its coins are deep enough to spend (waiting up to ``wait``
        seconds, with progress); returns the node's TxPoW (``txpowid``). ``NoFunds`` when the wallet lacks the
        amount, ``FundsNotConfirmed`` when it is there but not yet spendable at the end of the wait."""
        try:
            amount = Decimal(plan.amount)
        except ArithmeticError:
            raise CodecError("an amount is a positive decimal number such as 10 or 0.5") from None
        tokenid = None if plan.tokenid == "0x00" else plan.tokenid
        return spend_when_confirmed(
            self.rpc,
            lambda: self.rpc.send(address=plan.address, amount=plan.amount, tokenid=tokenid),
            amount=amount,
            tokenid=plan.tokenid,
            confirmations=self.confirmations,
            wait=wait,
            progress=self.progress,
        )

    # -- entry points

    def entry_points(self) -> dict[str, Any]:
        """An entry point picked at random from the newest list on chain, read through the user's own node.

        Where the list is (the publisher's token and owner key) comes from ``config.json`` (``entry_points``), or
        on first use from the gateway's ``/.well-known/mns.json``, then kept. The highest ``seq`` read is kept
        too: a lower one is refused afterwards. Only when the chain has no acceptable list does the client ask
        the gateway (``GET /api/v1/entry-points``). ``source`` in the answer says which it was.
        """
        config, reading = self._entry_config(), None
        if config is not None:
            try:
                reading = self._read_bulletin(config)
            except RPCError as exc:
                logger.warning("entry points: cannot read the chain through the node: %s", exc.code)
        if reading is not None and reading.bulletin.entries:
            picked = entrypoints.pick(reading.bulletin)
            return {**reading.to_dict(), "source": "chain", "picked": picked.to_dict()}
        return self._entry_points_from_gateway()

    def _read_bulletin(self, config: entrypoints.ChainConfig) -> entrypoints.Reading | None:
        """The newest bulletin the user's node reads, never one below the highest ``seq`` already read (kept)."""
        seen = int(self.home.settings().entry_points.get("seq") or 0)
        reading = entrypoints.read_from_node(self.rpc, config, min_seq=seen)
        if reading is not None and reading.bulletin.seq > seen:
            settings = self.home.settings()
            settings.entry_points = {**settings.entry_points, "seq": reading.bulletin.seq}
            self.home.save_settings(settings)
        return reading

    def _entry_config(self) -> entrypoints.ChainConfig | None:
        settings = self.home.settings()
        if settings.entry_points.get("tokenid"):
            return entrypoints.ChainConfig.from_dict(settings.entry_points)
        try:
            body = self.api.request("GET", "/.well-known/mns.json")
            config = entrypoints.ChainConfig.from_dict((body or {}).get("entry_points"))
        except (MNSError, AttributeError) as exc:
            logger.info("entry points: the gateway does not say where the list is: %s", getattr(exc, "code", exc))
            return None
        settings.entry_points = {**config.to_dict(), "learnt_from": self.gateway_url, "seq": 0}
        self.home.save_settings(settings)
        return config

    def _entry_points_from_gateway(self) -> dict[str, Any]:
        try:
            body = self.api.request("GET", API + "entry-points")
        except GatewayRefused as refused:
            if refused.status in (404, 503):
                raise Unavailable(
                    "not_published", f"entry points are not published yet (the gateway says {refused.code})"
                ) from None
            raise
        try:
            bulletin = entrypoints.bulletin_from_dict(body, where=f"the gateway {self.gateway_url}", others=True)
            picked = entrypoints.pick(bulletin)
        except entrypoints.BulletinInvalid as exc:
            raise Unavailable("not_published", f"the gateway's entry-point list is unusable: {exc}") from None
        entries = [entry.to_dict() for entry in bulletin.entries]
        return {**body, "entries": entries, "source": "gateway", "picked": picked.to_dict()}


# ------------------------------------------------------------------------------------------------------ helpers


def _verified_record(name: str, body: Any) -> NameInfo:
    """The record of a lookup, only if its statement verifies and its fields are the statement's."""
    try:
        signed = SignedStatement.from_dict({"statement": body["statement"], "signature": body["signature"]})
    except (StatementInvalid, KeyError, TypeError):
        raise NotVerified("record_invalid", f"the gateway's record of {name!r} has no valid signed statement") from None
    try:
        signed.verify()
    except StatementInvalid:
        raise NotVerified(
            "signature_invalid", f"the binding of {name!r} does NOT verify: its signature is not its owner's"
        ) from None
    statement = signed.statement
    claimed = (body.get("name"), body.get("owner"), body.get("box_key"), body.get("payment_address"), body.get("seq"))
    signed_fields = (statement.name, statement.owner, statement.box_key, statement.payment_address, statement.seq)
    if statement.name != name or claimed != signed_fields or statement.op == "release":
        raise NotVerified("record_mismatch", f"the gateway's record of {name!r} differs from what its owner signed")
    return NameInfo(
        name=statement.name,
        status=str(body.get("status") or ""),
        owner=statement.owner,
        box_key=statement.box_key_bytes,
        payment_address=statement.payment_address,
        gateways=list(body.get("gateways") or []),
        seq=statement.seq,
        signed=signed,
        on_chain=body.get("on_chain") if isinstance(body.get("on_chain"), dict) else None,
        transparency=body.get("transparency"),
    )


def _pool_keys(value: object) -> tuple[str, ...]:
    """``maxima.pool`` of the policy: the keys of the gateway's other nodes (absent for a gateway of one node)."""
    if not isinstance(value, list):
        return ()
    return tuple(key for key in value if isinstance(key, str) and key.startswith("0x"))


def _receipt_picker(senders: frozenset[str], delivery_id: str) -> Callable[[MaximaEvent], Receipt | None]:
    def pick(event: MaximaEvent) -> Receipt | None:
        if event.sender not in senders:
            return None  # only the gateway's own nodes can send its receipts (Maxima verifies "from")
        try:
            receipt = Receipt.from_bytes(event.data)
        except MailboxMessageInvalid:
            return None
        return receipt if receipt.id == delivery_id else None

    return pick


def _forward_picker(senders: frozenset[str], name: str) -> Callable[[MaximaEvent], Forwarded | None]:
    def pick(event: MaximaEvent) -> Forwarded | None:
        if event.sender not in senders:
            return None
        try:
            forwarded = Forwarded.from_bytes(event.data)
        except (MailboxMessageInvalid, CodecError, KeyError, TypeError):
            return None
        return forwarded if forwarded.name == name else None

    return pick


def _handshake_failure(reason: str) -> str:
    return {
        "challenge_expired": "the handshake expired before the gateway saw your node's answer",
        "code_wrong": "the gateway refused the code your node sent",
        "too_many_attempts": "the handshake failed: too many wrong answers",
        "challenge_used": "the handshake was already used",
        "name_changed": "the name changed while the handshake was open",
        "name_taken": "another owner got the name first in the MNS network",
        "claim_expired": "the MNS network did not confirm the name in time; try again",
    }.get(reason, f"the handshake failed: {reason}")


def _deadline(expires_at: object) -> float:
    """``expires_at`` (ISO 8601) as a Unix time; five minutes from now if it cannot be read."""
    try:
        return datetime.fromisoformat(str(expires_at).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + 300


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _now_ms() -> int:
    return int(time.time() * 1000)
