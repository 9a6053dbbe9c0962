"""The ``mns`` command line for real: ``python -m mns_client`` as a subprocess, against the gateway served by
gunicorn with a real Celery worker and beat on a private Redis, and simnet as everybody's Minima node
(or real nodes in interop mode, ``testsupport.nodes``).

Node 0 is the gateway's node; node 1 is alice's, node 2 bob's, node 3 carol's (her RPC needs a password). Each
person has their own client folder. The module's gateway is shared: tests only assert about what they made.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from mns_client.config import Home
from mns_client.listener import NodeListener
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.crypto import seal
from mns_client.protocol.envelope import SCHEME_NACL, Letter, SignedLetter
from mns_client.protocol.mailbox import Deliver, MailboxMessageInvalid, Receipt, new_delivery_id
from mns_client.protocol.rpc import MinimaRPC
from testsupport import REPO
from testsupport.nodes import Network, network, simnet_only
from testsupport.processes import RedisServer, free_port, wait_for
from testsupport.stack import OPEN_THROTTLES, gateway_env, live_gateway, migrate

pytestmark = [pytest.mark.slow]

HOOK_SECRET = "cli-e2e-" + "s" * 40
CAROL_PASSWORD = "carol-rpc-secret"
PEOPLE = {"alice": 1, "bob": 2, "carol": 3}


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class World:
    net: Network
    url: str
    homes: Path
    worker_log: Path

    def node(self, who: str) -> str:
        return self.net.nodes[PEOPLE[who]].rpc_url

    def rpc(self, who: str) -> MinimaRPC:
        return MinimaRPC(self.node(who), password=CAROL_PASSWORD if who == "carol" else None, timeout=30)

    def home(self, who: str) -> Home:
        return Home(self.homes / who)

    def key(self, who: str) -> str:
        return self.net.nodes[PEOPLE[who]].publickey_hex

    def mns(self, who: str, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Run:
        """Run ``python -m mns_client ARGS`` as ``who``: their folder, node and the gateway, from the environment."""
        child = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MNS_", "DJANGO_"))}
        child.update(MNS_HOME=str(self.homes / who), MNS_GATEWAY=self.url, MNS_NODE=self.node(who))
        if who == "carol":
            child["MNS_NODE_PASSWORD"] = CAROL_PASSWORD
        child.update(env or {})
        done = subprocess.run(
            [sys.executable, "-m", "mns_client", *args],
            input=stdin,
            capture_output=True,
            cwd=REPO,
            env=child,
            timeout=180,
            check=False,
        )
        return Run(done.returncode, done.stdout.decode(), done.stderr.decode())

    def api(self, method: str, path: str, *, auth: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": auth} if auth else {}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def token_header(self, who: str, name: str) -> str:
        token = self.home(who).token(self.url, name)
        assert token is not None
        return f"MNS-Token {token.token_id}:{token.secret}"

    def gateway_address(self) -> str:
        return self.api("GET", "/.well-known/mns.json").json()["maxima"]["address"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, django_db_blocker: Any) -> Iterator[World]:
    """The gateway on a database of its own (a fresh SQLite file, migrated here): the tests build on each other's
    state (alice registers once), which pytest-django's per-test rollback or flush of the test database would
    undo, and this process never reads it."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    tmp = tmp_path_factory.mktemp("cli-e2e")
    redis = RedisServer(free_port(), tmp)
    redis.start()
    with network(4, block_interval=0.5) as net:
        _carol_needs_a_password(net)
        with django_db_blocker.unblock():  # it reads the test database's settings
            env = gateway_env(
                net,
                tmp,
                redis_url=redis.url,
                hook_secret=HOOK_SECRET,
                MNS_HANDSHAKE_TTL_SECONDS="30",
                DATABASE_URL=f"sqlite://{tmp / 'gateway.sqlite3'}",
                **OPEN_THROTTLES,
            )
        migrate(env)
        with live_gateway(net, tmp, env) as live:
            world = World(net, live.url, tmp / "homes", live.worker_log)
            for who in PEOPLE:
                assert world.mns(who, "init").code == 0
            yield world
    redis.stop()


def _carol_needs_a_password(net: Network) -> None:
    """Carol's node asks for a password: simnet's is set directly; a real node's at runtime with ``rpc`` (it keeps
    it until it restarts, so a second run finds it set already)."""
    carol = net.nodes[PEOPLE["carol"]]
    if not hasattr(carol, "runtime_password"):
        MinimaRPC(carol.rpc_url, password=CAROL_PASSWORD).command("rpc", enable="true", password=CAROL_PASSWORD)
        carol.password = CAROL_PASSWORD
        return
    carol.runtime_password = CAROL_PASSWORD


@pytest.fixture(scope="module")
def alice(world: World) -> dict[str, Any]:
    """alice registered (with her node's wallet as payment address): the register command's JSON output."""
    run = world.mns("alice", "register", "alice", "--payment-address", "node", "--json")
    assert run.code == 0, run.err + run.out
    return run.json


@pytest.fixture
def drop_deliveries(world: World) -> Iterator[Callable[[str], None]]:
    """Make a node take incoming Maxima messages and lose them (the gateway's: ``gateway``)."""
    dropped: list[int] = []

    def drop(who: str) -> None:
        index = 0 if who == "gateway" else PEOPLE[who]
        world.net.nodes[index].faults.drop_deliveries = True
        dropped.append(index)

    yield drop
    for index in dropped:
        world.net.nodes[index].faults.drop_deliveries = False


def send(world: World, who: str, text: str, *args: str) -> Run:
    return world.mns(who, "send", "alice", "--json", *args, stdin=text.encode())


def sent_id(run: Run) -> str:
    assert run.code == 0, run.err + run.out
    assert run.json["status"] == "stored"
    return run.json["message_id"]


# ---------------------------------------------------------------------------------------------------- init


def test_init_makes_a_private_box_key_and_shows_the_nodes_identity(world: World) -> None:
    run = world.mns("bob", "init", "--json")

    assert run.code == 0, run.err
    assert run.json["node"]["publickey"] == world.key("bob")
    assert run.json["box_key_created"] is False  # made by the fixture's first init, kept since
    assert run.json["gateway"]["url"] == world.url
    folder = world.homes / "bob"
    assert {oct(p.stat().st_mode & 0o777) for p in folder.iterdir()} == {"0o600"}
    private = json.loads((folder / "box-keys.json").read_text())["keys"][0]["private"]
    assert private[2:] not in run.out.upper()


def test_init_reads_the_node_password_from_the_environment(world: World) -> None:
    run = world.mns("carol", "init")

    assert run.code == 0, run.err
    assert "identity" in run.out


# ---------------------------------------------------------------------------------------------------- register


def test_register_signs_on_the_node_answers_the_handshake_and_keeps_the_access_token(
    world: World, alice: dict[str, Any]
) -> None:
    assert alice["name"] == "alice"
    assert alice["owner"] == world.key("alice")
    assert alice["status"] == "active"
    assert alice["payment_address"].startswith("Mx")
    token = world.home("alice").token(world.url, "alice")
    assert token is not None
    assert token.token_id == alice["access_token_id"]
    assert token.secret not in json.dumps(alice)
    # the token the node opened is the one the gateway accepts
    assert world.api("GET", "/api/v1/mailboxes/alice", auth=world.token_header("alice", "alice")).status_code == 200


def test_register_refuses_a_reserved_name_with_its_reason(world: World) -> None:
    run = world.mns("bob", "register", "admin", "--json")

    assert run.code == 4
    assert run.json["error"] == "name_reserved"


def test_register_refuses_a_taken_name_with_its_reason(world: World, alice: dict[str, Any]) -> None:
    run = world.mns("bob", "register", "alice")

    assert run.code == 4
    assert "name_taken" in run.err


def test_register_refuses_a_name_that_is_not_a_name_before_asking_anyone(world: World) -> None:
    run = world.mns("bob", "register", "no spaces", "--json")

    assert run.code == 4
    assert run.json["error"] == "name_invalid"


# ---------------------------------------------------------------------------------------------------- whois


def test_whois_shows_the_record_and_that_its_binding_verified_here(world: World, alice: dict[str, Any]) -> None:
    human = world.mns("bob", "whois", "ALICE")
    as_json = world.mns("bob", "whois", "alice", "--json")

    assert human.code == 0, human.err
    assert "verified here" in human.out
    assert as_json.json["verified"] is True
    assert as_json.json["owner"] == world.key("alice")
    assert as_json.json["box_key"] == alice["box_key"]


def test_whois_of_an_unknown_name_says_it_is_not_found(world: World) -> None:
    run = world.mns("bob", "whois", "nobody-here", "--json")

    assert run.code == 4
    assert run.json["error"] == "name_not_found"


class TamperingGateway:
    """A proxy in front of the real gateway that changes the name records it passes on."""

    def __init__(self, upstream: str, tamper: Callable[[dict[str, Any]], None]) -> None:
        handler = self._handler(upstream, tamper)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _handler(upstream: str, tamper: Callable[[dict[str, Any]], None]) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                reply = requests.get(upstream + self.path, timeout=30)
                body = reply.json()
                if self.path.startswith("/api/v1/names/") and reply.status_code == 200:
                    tamper(body)
                data = json.dumps(body).encode()
                self.send_response(reply.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


MALLORY_BOX_KEY = to_hex(bytes(range(32)))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda record: record["statement"].update(box_key=MALLORY_BOX_KEY),  # the signed statement changed
        lambda record: record.update(box_key=MALLORY_BOX_KEY),  # the record says another key than the statement
        lambda record: record.update(signature="0x" + "00" * 128),
    ],
)
def test_whois_says_clearly_when_the_binding_does_not_verify(
    world: World, alice: dict[str, Any], tamper: Callable[[dict[str, Any]], None]
) -> None:
    proxy = TamperingGateway(world.url, tamper)
    try:
        run = world.mns("bob", "whois", "alice", "--gateway", proxy.url)
    finally:
        proxy.close()

    assert run.code == 6
    assert "does NOT verify" in run.err or "differs from what its owner signed" in run.err
    assert run.out == ""


def test_send_never_encrypts_to_a_box_key_the_owner_did_not_sign(world: World, alice: dict[str, Any]) -> None:
    proxy = TamperingGateway(world.url, lambda record: record["statement"].update(box_key=MALLORY_BOX_KEY))
    try:
        run = world.mns("bob", "send", "alice", "--gateway", proxy.url, "--json", stdin=b"secret plans")
    finally:
        proxy.close()

    assert run.code == 6
    assert run.json["error"] == "signature_invalid"


# ------------------------------------------------------------------------------------------ sending and reading


def test_a_text_message_in_the_default_scheme_is_stored_then_read_and_verified(
    world: World, alice: dict[str, Any]
) -> None:
    sent = send(world, "bob", "Hello Alice,\nlunch at noon?", "--subject", "Lunch?")
    message_id = sent_id(sent)

    assert sent.json["scheme"] == "nacl-sealedbox-v1"
    read = world.mns("alice", "read", message_id, "--json")
    assert read.code == 0, read.err
    assert read.json["verified"] is True
    assert read.json["from"] == world.key("bob")
    assert read.json["sender_verified_by_maxima"] is True
    assert (read.json["subject"], read.json["body"]) == ("Lunch?", "Hello Alice,\nlunch at noon?")
    human = world.mns("alice", "read", message_id)
    assert "Hello Alice,\nlunch at noon?" in human.out
    assert "signature verified here" in human.out


def test_a_binary_file_in_the_maxima_rsa_scheme_is_opened_by_the_owners_node(
    world: World, alice: dict[str, Any], tmp_path: Path
) -> None:
    original = bytes(range(256)) * 4
    (tmp_path / "photo.bin").write_bytes(original)
    sent = world.mns("bob", "send", "alice", str(tmp_path / "photo.bin"), "--scheme", "maxima-rsa-v1", "--json")
    message_id = sent_id(sent)

    assert sent.json["scheme"] == "maxima-rsa-v1"
    read = world.mns("alice", "read", message_id, "--output", str(tmp_path / "out.bin"))
    assert read.code == 0, read.err
    assert (tmp_path / "out.bin").read_bytes() == original
    assert "written to" in read.out


def test_the_senders_claimed_name_is_shown_only_when_its_owner_signed(world: World, alice: dict[str, Any]) -> None:
    message_id = sent_id(send(world, "bob", "it is me", "--from", "alice"))

    read = world.mns("alice", "read", message_id, "--json")

    assert read.code == 0
    assert (read.json["from_name"], read.json["from_name_verified"]) == ("alice", False)


def test_inbox_lists_sizes_and_schemes_and_the_subjects_it_decrypted(world: World, alice: dict[str, Any]) -> None:
    message_id = sent_id(send(world, "bob", "for the list", "--subject", "Listed"))

    run = world.mns("alice", "inbox", "--json")
    plain = world.mns("alice", "inbox", "--no-open", "--json")

    assert run.code == 0, run.err
    row = next(m for m in run.json["messages"] if m["id"] == message_id)
    assert (row["subject"], row["verified"], row["scheme"]) == ("Listed", True, "nacl-sealedbox-v1")
    assert row["size"] == sent_size(world, message_id)
    assert "subject" not in next(m for m in plain.json["messages"] if m["id"] == message_id)


def sent_size(world: World, message_id: str) -> int:
    reply = world.api(
        "GET", f"/api/v1/mailboxes/alice/messages/{message_id}", auth=world.token_header("alice", "alice")
    )
    return len(from_hex(reply.json()["ciphertext"]))


def test_read_with_a_fresh_handshake_instead_of_the_access_token(world: World, alice: dict[str, Any]) -> None:
    message_id = sent_id(send(world, "bob", "read me with a handshake"))

    run = world.mns("alice", "read", message_id, "--handshake", "--json")

    assert run.code == 0, run.err
    assert run.json["body"] == "read me with a handshake"


def test_delete_removes_the_message(world: World, alice: dict[str, Any]) -> None:
    message_id = sent_id(send(world, "bob", "delete me"))

    deleted = world.mns("alice", "delete", message_id)
    again = world.mns("alice", "read", message_id, "--json")

    assert deleted.code == 0, deleted.err
    assert again.code == 4
    assert again.json["error"] == "message_not_found"


def test_a_refused_delivery_exits_7_with_the_receipts_reason(world: World, alice: dict[str, Any]) -> None:
    owner = world.token_header("alice", "alice")
    assert world.api("PATCH", "/api/v1/mailboxes/alice", auth=owner, json={"blocked": [world.key("bob")]}).ok
    try:
        run = send(world, "bob", "you blocked me?")
    finally:
        assert world.api("PATCH", "/api/v1/mailboxes/alice", auth=owner, json={"blocked": []}).ok

    assert run.code == 7
    assert (run.json["error"], run.json["reason"]) == ("refused", "blocked")


@simnet_only("makes bob's node lose the receipt (a simnet fault)")
def test_no_receipt_in_time_exits_7(world: World, alice: dict[str, Any], drop_deliveries: Any) -> None:
    drop_deliveries("bob")  # bob's node loses the receipt

    run = send(world, "bob", "is anyone there?", "--timeout", "3")

    assert run.code == 7
    assert run.json["error"] == "receipt_timeout"


def test_a_message_too_large_for_the_gateway_is_refused_before_sending(world: World, alice: dict[str, Any]) -> None:
    run = world.mns("bob", "send", "alice", "--json", stdin=os.urandom(70 * 1024))

    assert run.code == 7
    assert run.json["error"] == "too_large"


# ---------------------------------------------------------------------------------- letters that do not verify


def deliver_raw(world: World, via: str, plaintext: bytes) -> str:
    """Have ``via``'s node deliver a hand-made plaintext to alice's mailbox; returns the stored message's id."""
    record = world.api("GET", "/api/v1/names/alice").json()
    delivery = Deliver(
        id=new_delivery_id(),
        to="alice",
        scheme=SCHEME_NACL,
        ciphertext=seal(from_hex(record["box_key"]), plaintext),
        reply_to=world.rpc(via).maxima_info().p2pidentity,
    )

    def receipt(event: Any) -> Receipt | None:
        try:
            found = Receipt.from_bytes(event.data)
        except MailboxMessageInvalid:
            return None
        return found if found.id == delivery.id else None

    rpc = world.rpc(via)
    with NodeListener(rpc) as listener:
        rpc.maxima_send(to=world.gateway_address(), application="mns", data=delivery.to_bytes())
        stored = listener.wait_for(receipt, timeout=30)
    assert stored is not None
    assert stored.status == "stored"
    return str(stored.message_id)


BODY = "the body of a letter that does not verify"


def letter_from(world: World, who: str, *, to: str = "alice", signer: str | None = None) -> bytes:
    letter = Letter.make(id=new_delivery_id(), sender=world.key(who), to=to, sent_at=1795660441638, body=BODY.encode())
    signature = world.rpc(signer or who).maxsign(letter.canonical())
    return SignedLetter(letter=letter, signature=signature).to_bytes()


@pytest.mark.parametrize(
    ("make", "via", "expected"),
    [
        (lambda w: letter_from(w, "bob", signer="carol"), "bob", "signature does not match"),
        (lambda w: letter_from(w, "bob", to="carol"), "bob", "written to 'carol'"),
        (lambda w: letter_from(w, "bob"), "carol", "a replay or a relay"),
        (lambda w: BODY.encode(), "bob", "not a signed MNS letter"),
    ],
    ids=["forged-signature", "re-addressed", "replayed-by-another-sender", "unsigned"],
)
def test_read_says_clearly_when_a_letter_does_not_verify_and_shows_nothing_of_it(
    world: World, alice: dict[str, Any], make: Callable[[World], bytes], via: str, expected: str
) -> None:
    message_id = deliver_raw(world, via, make(world))

    run = world.mns("alice", "read", message_id)
    listed = world.mns("alice", "inbox", "--json")

    assert run.code == 6
    assert "DOES NOT VERIFY" in run.out
    assert expected in run.out
    assert BODY not in run.out + run.err
    assert next(m for m in listed.json["messages"] if m["id"] == message_id)["verified"] is False


# ---------------------------------------------------------------------------------------------------- forwarding


def test_forward_has_the_gateway_send_the_stored_messages_to_the_owners_node(
    world: World, alice: dict[str, Any]
) -> None:
    world.mns("alice", "forward", "--timeout", "20")  # whatever earlier tests left
    first = sent_id(send(world, "bob", "forward me, first", "--subject", "one"))
    second = sent_id(send(world, "bob", "forward me, second", "--scheme", "rsa"))

    run = world.mns("alice", "forward", "--json", "--timeout", "30")

    assert run.code == 0, run.err + run.out
    received = {item["id"]: item for item in run.json["received"]}
    assert {first, second} <= set(received)
    assert received[first]["body"] == "forward me, first"
    assert received[second]["body"] == "forward me, second"
    assert all(item["verified"] for item in received.values())
    states = {m["id"]: m["state"] for m in world.mns("alice", "inbox", "--no-open", "--json").json["messages"]}
    assert states[first] == states[second] == "forwarded"


def test_forward_auto_turns_automatic_forwarding_on_and_off(world: World, alice: dict[str, Any]) -> None:
    on = world.mns("alice", "forward", "--auto", "on", "--json")
    off = world.mns("alice", "forward", "--auto", "off", "--json")

    assert (on.code, on.json["auto_forward"]) == (0, True)
    assert (off.code, off.json["auto_forward"]) == (0, False)


# ---------------------------------------------------------------------------------------------------- the record


def test_rotate_key_publishes_a_new_box_key_and_older_messages_still_open(world: World, alice: dict[str, Any]) -> None:
    before = sent_id(send(world, "bob", "sealed to the old key"))

    run = world.mns("alice", "rotate-key", "--json")
    after = sent_id(send(world, "bob", "sealed to the new key"))

    assert run.code == 0, run.err
    assert run.json["box_key"] == to_hex(world.home("alice").current_box_key().public)
    assert world.mns("bob", "whois", "alice", "--json").json["box_key"] == run.json["box_key"]
    assert world.mns("alice", "read", before, "--json").json["body"] == "sealed to the old key"
    assert world.mns("alice", "read", after, "--json").json["body"] == "sealed to the new key"


def test_set_payment_publishes_an_address_and_pay_sends_minima_to_it(world: World, alice: dict[str, Any]) -> None:
    address = world.rpc("alice").getaddress()["address"]
    published = world.mns("alice", "set-payment", address, "--json")

    paid = world.mns("bob", "pay", "alice", "7", "--yes", "--json")

    assert published.code == 0, published.err
    assert published.json["payment_address"] == address
    assert paid.code == 0, paid.err
    assert (paid.json["address"], paid.json["amount"], paid.json["tokenid"]) == (address, "7", "0x00")
    assert paid.json["txpowid"].startswith("0x")
    wait_for(
        lambda: any(c["amount"] == "7" for c in world.rpc("alice").coins(address=address)),
        timeout=30,
        what="the payment to be mined",
    )


def test_pay_shows_what_it_would_send_and_sends_nothing_unless_confirmed(world: World, alice: dict[str, Any]) -> None:
    run = world.mns("bob", "pay", "alice", "5", stdin=b"n\n")

    assert run.code == 1
    assert "Send 5 Minima to alice at " in run.err
    assert "not paid" in run.err


def test_pay_a_name_without_a_payment_address_exits_8(world: World, alice: dict[str, Any]) -> None:
    assert world.mns("alice", "set-payment", "--clear").code == 0
    try:
        run = world.mns("bob", "pay", "alice", "1", "--yes", "--json")
    finally:
        assert world.mns("alice", "set-payment", "node").code == 0

    assert run.code == 8
    assert run.json["error"] == "no_payment_address"


def test_pay_more_than_the_wallet_holds_exits_2_saying_no_funds(world: World, alice: dict[str, Any]) -> None:
    run = world.mns("bob", "pay", "alice", "999999999", "--yes")

    assert run.code == 2
    assert "no funds: your node's wallet holds " in run.err


# ---------------------------------------------------------------------------------------------------- failures


def test_an_unreachable_node_exits_2(world: World, alice: dict[str, Any]) -> None:
    run = world.mns("alice", "init", env={"MNS_NODE": f"http://127.0.0.1:{free_port()}"})

    assert run.code == 2
    assert "cannot reach your Minima node" in run.err


def test_a_wrong_node_password_exits_2(world: World) -> None:
    run = world.mns("carol", "init", "--json", env={"MNS_NODE_PASSWORD": "wrong"})

    assert run.code == 2
    assert run.json["error"] == "node_auth_failed"
    assert "wrong" not in run.out


def test_an_unreachable_gateway_exits_3(world: World) -> None:
    run = world.mns("bob", "whois", "alice", "--gateway", f"http://127.0.0.1:{free_port()}")

    assert run.code == 3
    assert "cannot reach the gateway" in run.err


@simnet_only("makes the gateway's node lose the answer (a simnet fault)")
@pytest.mark.parametrize("payment", [[], ["--payment-address", "node"]], ids=["no-payment", "the-nodes-address"])
def test_an_expired_handshake_exits_5_and_registering_again_resumes_the_same_hold(
    world: World, drop_deliveries: Any, payment: list[str]
) -> None:
    name = "bobby" if not payment else "bobbie"
    drop_deliveries("gateway")  # the gateway's node takes the answer and loses it
    expired = world.mns("bob", "register", name, *payment, "--json")
    world.net.nodes[0].faults.drop_deliveries = False
    pending = world.home("bob").settings().names[name]["pending"]["signed"]["statement"]

    # the node's getaddress answers one of its default addresses at random, as a real node's does: resuming keeps
    # the one the first attempt signed, where a new statement would be refused while the hold stands
    again = world.mns("bob", "register", name, *payment, "--json", "--verbose")

    assert expired.code == 5
    assert expired.json["error"] == "challenge_expired"
    assert again.code == 0, again.err + again.out
    assert (again.json["name"], again.json["owner"]) == (name, world.key("bob"))
    assert "resuming the registration your node signed before" in again.err
    if payment:
        from simnet.chain import miniaddress, script_address

        node = world.net.nodes[PEOPLE["bob"]]
        own = {miniaddress(script_address(f"RETURN SIGNEDBY({key})")) for key in node.default_keys()}
        assert again.json["payment_address"] == pending["payment_address"]  # the address the node gave first
        assert pending["payment_address"] in own


def test_a_node_that_does_not_own_the_name_cannot_open_its_mailbox(world: World, alice: dict[str, Any]) -> None:
    run = world.mns("carol", "inbox", "--name", "alice", "--json")

    assert run.code == 5
    assert run.json["error"] == "not_owner"


def test_an_owner_command_without_a_name_uses_the_one_name_the_node_holds(world: World, alice: dict[str, Any]) -> None:
    holder = world.mns("alice", "inbox", "--no-open", "--json", env={"MNS_HOME": str(world.homes / "alice-new")})
    nobody = world.mns("carol", "inbox")

    assert holder.code == 0, holder.err
    assert holder.json["name"] == "alice"
    assert nobody.code == 1
    assert "this node holds no name here" in nobody.err


def test_entry_points_say_they_are_not_published_yet(world: World) -> None:
    run = world.mns("bob", "entry-points")

    assert run.code == 8
    assert "not published yet" in run.err


def test_a_missing_gateway_is_a_usage_error(world: World, tmp_path: Path) -> None:
    # A client folder that never remembered a gateway (`mns init` remembers the one it was given).
    run = world.mns("bob", "whois", "alice", env={"MNS_GATEWAY": "", "MNS_HOME": str(tmp_path / "fresh")})

    assert run.code == 1
    assert "no gateway" in run.err


def test_bad_arguments_are_a_usage_error_and_help_documents_every_exit_code(world: World) -> None:
    bad = world.mns("bob", "send")
    helped = world.mns("bob", "send", "--help")

    assert bad.code == 1
    assert helped.code == 0
    assert all(f"\n  {code}  " in helped.out for code in range(9))


# ---------------------------------------------------------------------------------------------------- the demo


def test_the_demo_walks_through_every_flow_with_the_real_client(
    world: World, alice: dict[str, Any], tmp_path: Path
) -> None:
    # fresh client folders: alice's node already holds the name, so the demo publishes her new box key first
    args = ["--gateway", world.url, "--alice-node", world.node("alice"), "--bob-node", world.node("bob")]
    args += ["--alice-home", str(tmp_path / "alice"), "--bob-home", str(tmp_path / "bob")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MNS_", "DJANGO_"))}

    done = subprocess.run(
        [sys.executable, "-m", "mns_client.demo", *args],
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=600,
        check=False,
    )

    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "her client folder is new, so she publishes its box key" in out
    assert "bytes of nacl-sealedbox-v1 ciphertext" in out
    assert "bytes of maxima-rsa-v1 ciphertext" in out
    assert "signature verified" in out
    assert "paid 10 Minima to alice" in out
    assert out.rstrip().endswith("never a plaintext or a private key.")


# ------------------------------------------------------------------------------------- data records, transfers


def test_set_data_publishes_a_signed_record_that_whois_shows(world: World) -> None:
    assert world.mns("bob", "register", "shop", "--json").code == 0
    site = '{"website": "https://shop.example/", "minima": "0x' + "AB" * 32 + '"}'

    published = world.mns("bob", "set-data", site, "--name", "shop", "--json")
    seen = world.mns("alice", "whois", "shop")

    assert published.code == 0, published.err
    assert published.json["data"] == json.loads(site)
    assert published.json["statement"]["data"] == json.loads(site)
    assert seen.code == 0, seen.err
    assert '"website": "https://shop.example/"' in seen.out


def test_set_data_refuses_a_record_that_is_not_one_json_object_and_changes_nothing(world: World) -> None:
    before = world.mns("alice", "whois", "shop", "--json").json
    runs = [
        world.mns("bob", "set-data", '{"a": 1, "a": 2}', "--name", "shop"),
        world.mns("bob", "set-data", '{"blob": "' + "x" * 1100 + '"}', "--name", "shop"),
        world.mns("bob", "set-data", "[1, 2]", "--name", "shop"),
        world.mns("bob", "set-data", "{not json", "--name", "shop"),
    ]

    assert [run.code for run in runs] == [1, 1, 1, 1]
    assert "written twice" in runs[0].err
    assert "at most 1024" in runs[1].err
    assert world.mns("alice", "whois", "shop", "--json").json["seq"] == before["seq"]


def test_a_transfer_is_offered_shown_accepted_and_the_old_mail_stays_behind(world: World) -> None:
    # given mail for bob in shop's mailbox
    stored = world.mns("alice", "send", "shop", "--json", stdin=b"for bob, the first owner")
    assert stored.code == 0, stored.err
    # when bob offers shop to carol's key, carol sees the offer and accepts it
    offered = world.mns("bob", "transfer", "shop", "--to", world.key("carol"), "--json")
    pending = world.mns("alice", "whois", "shop")
    not_for_alice = world.mns("alice", "accept-transfer", "shop", "--json")
    accepted = world.mns("carol", "accept-transfer", "shop", "--json")

    assert offered.code == 0, offered.err
    assert offered.json["transfer"]["to"] == world.key("carol")
    assert offered.json["owner"] == world.key("bob")
    assert "transfer   offered to" in pending.out
    assert not_for_alice.code == 4
    assert not_for_alice.json["error"] == "transfer_not_pending"
    assert accepted.code == 0, accepted.err
    assert (accepted.json["owner"], accepted.json["transfer"], accepted.json["data"]) == (
        world.key("carol"),
        None,
        None,
    )
    assert accepted.json["box_key"] == to_hex(world.home("carol").current_box_key().public)
    # then carol's mailbox is empty: bob's letter never reaches her; and bob no longer opens it
    inbox = world.mns("carol", "inbox", "--name", "shop", "--json")
    assert inbox.code == 0, inbox.err
    assert inbox.json["messages"] == []
    assert world.mns("bob", "inbox", "--name", "shop", "--json").json["error"] == "not_owner"
    # the accept told the gateway where carol's node is: forwarding works (without an address it is refused)
    forwarded = world.mns("carol", "forward", "--name", "shop", "--json")
    assert forwarded.code == 0, forwarded.err + forwarded.out
    # and new mail is carol's
    assert world.mns("alice", "send", "shop", "--json", stdin=b"for carol").code == 0
    read = world.mns("carol", "inbox", "--name", "shop", "--json")
    assert [message["verified"] for message in read.json["messages"]] == [True]


def test_an_offer_can_be_withdrawn_before_it_is_accepted(world: World) -> None:
    assert world.mns("bob", "register", "stall", "--json").code == 0

    offered = world.mns("bob", "transfer", "stall", "--to", "shop", "--json")  # to the key that owns shop: carol
    cancelled = world.mns("bob", "transfer", "stall", "--cancel", "--json")
    too_late = world.mns("carol", "accept-transfer", "stall", "--json")

    assert offered.json["transfer"]["to"] == world.key("carol")
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json["transfer"] is None
    assert (too_late.code, too_late.json["error"]) == (4, "transfer_not_pending")
    assert world.mns("alice", "whois", "stall", "--json").json["owner"] == world.key("bob")
