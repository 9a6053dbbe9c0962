"""The three flows of the seed, end to end: three simnet nodes (the gateway's, the owner's, a sender's), the gateway
served by gunicorn, a real Celery worker and a beat on a private Redis.

The owner's node signs with its own ``maxsign``, answers handshakes over Maxima and opens the access token with
its own ``maxdecrypt``; receipts and forwards arrive at the nodes' webhooks. The test decrypts what it reads with
the owner's private keys: the box key for sealed boxes, the node's identity key for ``maxima-rsa-v1``.
"""

import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from mailboxes.models import Mailbox, Message
from mailboxes.tests.support import Opened, Owner, open_mailbox, usage
from maxima.models import InboundEvent, NodeState, OutboundMessage
from mns_client.protocol import batch
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.crypto import box_keypair, seal, unseal
from mns_client.protocol.handshake import Answer, new_verifier, verifier_hash
from mns_client.protocol.mailbox import (
    AccessTokenMessage,
    Deliver,
    Register,
    access_token_header,
    access_token_read,
    new_delivery_id,
)
from mns_client.protocol.rpc import MinimaRPC
from mns_client.protocol.statements import NameStatement, SignedStatement
from registry.tests.support import SignsOnItsNode
from simnet.testing import WebhookReceiver
from testsupport.nodes import Network, Node, network, simnet_only
from testsupport.processes import RedisServer, children, free_port, wait_for
from testsupport.stack import gateway_env, live_gateway, private_broker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

HOOK_SECRET = "e2e-mailboxes-" + "s" * 40
METRICS_TOKEN = "e2e-metrics-" + "m" * 40


@dataclass
class Gateway:
    net: Network
    redis: RedisServer
    web_url: str
    worker_pid: int
    worker_log: Path
    owner_inbox: WebhookReceiver  # what reaches node 1 (the owner's node)
    sender_inbox: WebhookReceiver  # what reaches node 2 (a sender's node)

    @property
    def gateway_node(self) -> Node:
        return self.net.nodes[0]

    @property
    def owner_node(self) -> Node:
        return self.net.nodes[1]

    @property
    def sender_node(self) -> Node:
        return self.net.nodes[2]

    def rpc(self, node: Node) -> MinimaRPC:
        return MinimaRPC(node.rpc_url, timeout=30)

    def api(self, method: str, path: str, data: Any = None, auth: str | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            self.web_url + path, data=None if data is None else json.dumps(data).encode(), method=method
        )
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                raw = reply.read()
                return reply.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, django_db_setup: None, django_db_blocker: Any
) -> Iterator[Gateway]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    tmp = tmp_path_factory.mktemp("mailboxes-e2e")
    redis = RedisServer(free_port(), tmp)
    redis.start()
    with network(3, block_interval=0.5) as net, WebhookReceiver() as owner, WebhookReceiver() as sender:
        MinimaRPC(net.nodes[1].rpc_url).webhooks_add(hook=owner.url(), filter="MAXIMA")
        MinimaRPC(net.nodes[2].rpc_url).webhooks_add(hook=sender.url(), filter="MAXIMA")
        with django_db_blocker.unblock():
            env = gateway_env(
                net,
                tmp,
                redis_url=redis.url,
                hook_secret=HOOK_SECRET,
                MNS_REST_SUBMISSION="true",
                MNS_OUTBOX_BACKOFF_MAX_SECONDS="2",
                MNS_MESSAGE_EXPIRE_EVERY="2",
                MNS_METRICS_TOKEN=METRICS_TOKEN,
            )
        with live_gateway(net, tmp, env, separate_beat=True) as live:
            yield Gateway(net, redis, live.url, live.worker.pid, live.worker_log, owner, sender)
    redis.stop()


@pytest.fixture(autouse=True)
def on_private_broker(gateway: Gateway) -> Iterator[None]:
    """What this test process queues (an access token it made itself) goes to the gateway's worker, for real."""
    with private_broker(gateway.redis.url):
        yield


@pytest.fixture
def node_known(gateway: Gateway) -> NodeState:
    """Supervision has written the gateway's identity and address (again: each test starts on an empty database)."""
    return wait_for(
        lambda: NodeState.objects.filter(pk=1).exclude(p2pidentity="").first(),
        timeout=30,
        what="node supervision",
        log=gateway.worker_log,
    )


_BOX_KEYS = box_keypair()  # the mailbox's box key pair, as the owner's client made it


@pytest.fixture
def owner(gateway: Gateway) -> Owner:
    """The owner: node 1's own identity key pair, a box key pair the client made, node 1's address. A real node
    keeps its private key: it signs and opens tokens itself."""
    node = gateway.owner_node
    private_key = getattr(node, "private_key", None)
    if private_key is None:
        return NodeOwner(node.publickey_hex, b"", *_BOX_KEYS, node.address, rpc=gateway.rpc(node))
    return Owner(node.publickey_hex, private_key, *_BOX_KEYS, node.address)


@dataclass
class NodeOwner(SignsOnItsNode, Owner):
    """An owner whose (real) node signs with ``maxsign`` and opens tokens with ``maxdecrypt``."""

    rpc: MinimaRPC = field(default=None, repr=False)  # type: ignore[assignment]

    def open_token(self, blob: bytes) -> tuple[str, str]:
        return access_token_read(self.rpc.maxdecrypt(blob))


@pytest.fixture
def mailbox(node_known: NodeState, owner: Owner) -> Opened:
    """alice's mailbox, made directly (the create flow itself is the first test)."""
    return open_mailbox(owner, "alice", gateway=node_known.publickey)


def arrived(inbox: WebhookReceiver, message_type: str) -> list[dict[str, Any]]:
    """The ``mns`` messages of one type that reached a node, oldest first."""
    found = []
    for request in list(inbox.requests):
        event = request.json()
        if event.get("event") != "MAXIMA" or event["data"]["application"] != "mns":
            continue
        for data in batch.messages_of(from_hex(event["data"]["data"])):  # alone, or in a batch of replies
            body = json.loads(data)
            if body.get("type") == message_type:
                found.append(body)
    return found


def wait_arrived(inbox: WebhookReceiver, message_type: str, match: Any = None, *, timeout: float = 30) -> dict:
    return wait_for(
        lambda: next((b for b in arrived(inbox, message_type) if match is None or match(b)), None),
        timeout=timeout,
        what=f"a {message_type} message",
    )


def send_delivery(gateway: Gateway, body: dict[str, Any]) -> str:
    reply = gateway.rpc(gateway.sender_node).maxima_send(
        to=gateway.gateway_node.address, application="mns", data=json.dumps(body).encode()
    )
    return reply.msgid


def delivery(gateway: Gateway, to: str, ciphertext: bytes, scheme: str = "nacl-sealedbox-v1") -> dict[str, Any]:
    return Deliver(
        id=new_delivery_id(), to=to, scheme=scheme, ciphertext=ciphertext, reply_to=gateway.sender_node.address
    ).to_dict()


def receipt_for(gateway: Gateway, delivery_id: str) -> dict[str, Any]:
    return wait_arrived(gateway.sender_inbox, "receipt", lambda b: b["id"] == delivery_id)


# --------------------------------------------------------------------------------------------------- create


def test_create_a_mailbox_and_open_the_access_token_with_the_owners_node(
    gateway: Gateway, node_known: NodeState, owner: Owner
) -> None:
    node = gateway.rpc(gateway.owner_node)
    statement = NameStatement(
        op="register",
        name="carol",
        owner=owner.key,
        box_key=to_hex(owner.box_public),
        seq=1,
        issued_at=int(time.time() * 1000),
        gateway=gateway.gateway_node.publickey_hex,
    )
    signed = SignedStatement(statement, node.maxsign(statement.canonical()))  # the owner's node signs
    verifier = new_verifier()
    request = {**signed.to_dict(), "address": owner.address, "verifier_hash": verifier_hash(verifier)}
    status, pending = gateway.api("POST", "/api/v1/mailboxes", request)
    assert (status, pending["status"], pending["handshake"]["purpose"]) == (201, "pending", "register")
    challenge = pending["handshake"]
    assert challenge["gateway_address"] == gateway.gateway_node.address

    answer = Answer(challenge=challenge["id"], code=challenge["code"], reply_to=owner.address)
    node.maxima_send(to=challenge["gateway_address"], application="mns", data=answer.to_bytes())
    wait_for(
        lambda: gateway.api("GET", f"/api/v1/handshakes/{challenge['id']}")[1]["status"] == "verified",
        timeout=30,
        what="the handshake to verify",
        log=gateway.worker_log,
    )
    status, opened = gateway.api("POST", f"/api/v1/handshakes/{challenge['id']}/session", {"verifier": verifier})
    assert (status, opened["scope"]) == (201, "register")

    status, fetched = gateway.api("GET", "/api/v1/mailboxes/carol/access-token", auth=f"MNS-Session {opened['token']}")
    assert status == 200
    token_id, secret = access_token_read(node.maxdecrypt(from_hex(fetched["token"])))  # the owner's node opens it
    assert token_id == fetched["token_id"]

    arrived_token = wait_arrived(gateway.owner_inbox, "access-token", lambda b: b["name"] == "carol")
    sent = AccessTokenMessage.from_bytes(json.dumps(arrived_token).encode())
    assert (sent.name, sent.token_id) == ("carol", token_id)
    assert access_token_read(node.maxdecrypt(sent.blob)) == (token_id, secret)

    status, mailbox = gateway.api("GET", "/api/v1/mailboxes/carol", auth=access_token_header(token_id, secret))
    assert (status, mailbox["owner"], mailbox["address"]) == (200, owner.key, owner.address)
    assert gateway.api("GET", "/api/v1/names/carol")[1]["status"] == "active"


def test_create_a_mailbox_entirely_over_maxima(gateway: Gateway, node_known: NodeState) -> None:
    node, rpc = gateway.sender_node, gateway.rpc(gateway.sender_node)
    statement = NameStatement(
        op="register",
        name="dave",
        owner=node.publickey_hex,
        box_key=to_hex(box_keypair()[1]),
        seq=1,
        issued_at=int(time.time() * 1000),
        gateway=gateway.gateway_node.publickey_hex,
    )
    request = Register(signed=SignedStatement(statement, rpc.maxsign(statement.canonical())), address=node.address)
    rpc.maxima_send(to=gateway.gateway_node.address, application="mns", data=request.to_bytes())
    challenge = wait_arrived(gateway.sender_inbox, "register-challenge", lambda b: b["name"] == "dave")
    answer = Answer(challenge=challenge["challenge"], code=challenge["code"], reply_to=node.address)
    rpc.maxima_send(to=gateway.gateway_node.address, application="mns", data=answer.to_bytes())
    sent = wait_arrived(gateway.sender_inbox, "access-token", lambda b: b["name"] == "dave")
    token_id, secret = access_token_read(rpc.maxdecrypt(from_hex(sent["token"])))
    status, _ = gateway.api("GET", "/api/v1/mailboxes/dave", auth=access_token_header(token_id, secret))
    assert status == 200


# -------------------------------------------------------------------------------------------------- deliver


def test_a_delivery_over_maxima_is_stored_once_and_receipted(gateway: Gateway, mailbox: Opened) -> None:
    body = delivery(gateway, "alice", seal(mailbox.owner.box_public, b"hello"))
    first = send_delivery(gateway, body)
    receipt = receipt_for(gateway, body["id"])
    message = Message.objects.get()
    assert receipt == {"v": 1, "type": "receipt", "id": body["id"], "status": "stored", "message_id": message.uid}
    assert (message.sender_key, message.sender_verified) == (gateway.sender_node.publickey_hex, True)

    second = send_delivery(gateway, body)  # the sender's node sends it again: a new msgid, the same delivery
    assert second != first
    wait_for(lambda: InboundEvent.objects.filter(msgid=second, status="done").exists(), timeout=30, what="the repeat")
    assert Message.objects.count() == usage()[0] == 1
    assert OutboundMessage.objects.filter(idempotency_key__startswith=f"receipt:{body['id']}:").count() == 1


def test_a_refused_delivery_is_receipted_with_its_reason_and_stores_nothing(gateway: Gateway, mailbox: Opened) -> None:
    unknown = delivery(gateway, "nobody", b"x" * 10)
    bad_scheme = delivery(gateway, "alice", b"x" * 10, scheme="rot13")
    for body in (unknown, bad_scheme):
        send_delivery(gateway, body)
    assert receipt_for(gateway, unknown["id"])["reason"] == "unknown_name"
    assert receipt_for(gateway, bad_scheme["id"])["reason"] == "bad_scheme"
    assert not Message.objects.exists()
    assert usage()[0] == 0


def test_a_delivery_over_rest_is_stored_with_an_unverified_sender(gateway: Gateway, mailbox: Opened) -> None:
    data = {"id": new_delivery_id(), "scheme": "nacl-sealedbox-v1", "ciphertext": to_hex(b"\x07" * 80)}
    status, stored = gateway.api("POST", "/api/v1/names/alice/messages", data)
    assert (status, stored["status"]) == (201, "stored")
    assert Message.objects.get(uid=stored["message_id"]).sender_verified is False


# ----------------------------------------------------------------------------------------------------- read


def test_the_owner_reads_and_decrypts_both_schemes(gateway: Gateway, mailbox: Opened) -> None:
    owner_node = gateway.owner_node
    sealed = delivery(gateway, "alice", seal(mailbox.owner.box_public, b"sealed for alice"))
    rsa_blob = gateway.rpc(gateway.sender_node).maxencrypt(data=b"rsa for alice", publickey=owner_node.publickey)
    rsa = delivery(gateway, "alice", rsa_blob, scheme="maxima-rsa-v1")
    for body in (sealed, rsa):
        send_delivery(gateway, body)
        assert receipt_for(gateway, body["id"])["status"] == "stored"

    auth = access_token_header(mailbox.token_id, mailbox.secret)
    status, page = gateway.api("GET", "/api/v1/mailboxes/alice/messages", auth=auth)
    assert status == 200
    assert [item["scheme"] for item in page["results"]] == ["maxima-rsa-v1", "nacl-sealedbox-v1"]  # newest first
    assert all("ciphertext" not in item for item in page["results"])
    opened = {}
    for item in page["results"]:
        _, full = gateway.api("GET", f"/api/v1/mailboxes/alice/messages/{item['id']}", auth=auth)
        ciphertext = from_hex(full["ciphertext"])
        if item["scheme"] == "nacl-sealedbox-v1":
            opened[item["scheme"]] = unseal(mailbox.owner.box_private, ciphertext)
        else:
            opened[item["scheme"]] = gateway.rpc(owner_node).maxdecrypt(ciphertext)  # the owner's node opens it
    assert opened == {"nacl-sealedbox-v1": b"sealed for alice", "maxima-rsa-v1": b"rsa for alice"}


# -------------------------------------------------------------------------------------------------- forward


@simnet_only("stops and restarts the owner's node")
def test_forwarding_retries_until_the_owners_node_takes_it(gateway: Gateway, mailbox: Opened) -> None:
    body = delivery(gateway, "alice", seal(mailbox.owner.box_public, b"forward me"))
    send_delivery(gateway, body)
    message_id = receipt_for(gateway, body["id"])["message_id"]
    auth = access_token_header(mailbox.token_id, mailbox.secret)

    gateway.owner_node.stop()
    try:
        status, summary = gateway.api("POST", "/api/v1/mailboxes/alice/forward", {}, auth=auth)
        assert (status, summary) == (202, {"queued": 1, "retried": 0, "in_flight": 0})
        failed_once = wait_for(
            lambda: OutboundMessage.objects.filter(
                idempotency_key__startswith="forward:", attempts__gte=1, status="queued"
            ).first(),
            timeout=30,
            what="a failed first attempt",
            log=gateway.worker_log,
        )
        assert failed_once.last_error
        assert Message.objects.get(uid=message_id).state == "forwarding"
    finally:
        gateway.owner_node.start()

    forwarded = wait_for(
        lambda: Message.objects.filter(uid=message_id, state="forwarded").first(),
        timeout=60,
        what="the retry to be delivered",
        log=gateway.worker_log,
    )
    assert forwarded.forwarded_at is not None
    body = wait_arrived(gateway.owner_inbox, "forwarded", lambda b: b["message_id"] == message_id)
    assert body["sender"] == gateway.sender_node.publickey_hex
    assert unseal(mailbox.owner.box_private, from_hex(body["ciphertext"])) == b"forward me"


# --------------------------------------------------------------------------------------------------- delete


def test_deleting_gives_the_room_back(gateway: Gateway, mailbox: Opened) -> None:
    bodies = [delivery(gateway, "alice", b"m" * size) for size in (10, 20, 30)]
    for body in bodies:
        send_delivery(gateway, body)
    ids = [receipt_for(gateway, body["id"])["message_id"] for body in bodies]
    auth = access_token_header(mailbox.token_id, mailbox.secret)
    assert gateway.api("DELETE", f"/api/v1/mailboxes/alice/messages/{ids[0]}", auth=auth) == (204, None)
    assert gateway.api("POST", "/api/v1/mailboxes/alice/messages/ack", {"ids": ids[1:]}, auth=auth) == (
        200,
        {"deleted": 2},
    )
    _, box = gateway.api("GET", "/api/v1/mailboxes/alice", auth=auth)
    assert box["quota"]["messages"] == box["quota"]["bytes"] == 0
    assert not Message.objects.exists()


# --------------------------------------------------------------------------------------------- worker killed


@pytest.mark.usefixtures("postgres")
def test_a_worker_killed_during_a_delivery_loses_nothing_and_stores_nothing_twice(
    gateway: Gateway, mailbox: Opened
) -> None:
    body = delivery(gateway, "alice", b"k" * 40)
    with transaction.atomic():
        Mailbox.objects.select_for_update().get(id=mailbox.mailbox.id)  # the delivery will wait on this row
        msgid = send_delivery(gateway, body)
        wait_for(
            lambda: InboundEvent.objects.filter(msgid=msgid, status="processing").exists(),
            timeout=30,
            what="a worker to claim the delivery",
            log=gateway.worker_log,
        )
        wait_for(_someone_waits_on_a_lock, timeout=10, what="the handler to wait on the mailbox row")
        for child in children(gateway.worker_pid):
            os.kill(child, signal.SIGKILL)  # the pool processes die mid-delivery, inside its transaction
    event = wait_for(
        lambda: InboundEvent.objects.filter(msgid=msgid, status="done").first(),
        timeout=90,
        what="the delivery to be processed again",
        log=gateway.worker_log,
    )
    assert event.attempts == 2
    assert receipt_for(gateway, body["id"])["status"] == "stored"
    assert Message.objects.filter(delivery_id=body["id"]).count() == 1
    assert usage()[0] == 1
    assert OutboundMessage.objects.filter(idempotency_key__startswith=f"receipt:{body['id']}:").count() == 1


def _someone_waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


# -------------------------------------------------------------------------------------------------- metrics


def scrape(gateway: Gateway) -> dict[str, float]:
    """``/metrics`` of the live gateway (any of its gunicorn workers answers), as {name{labels}: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(gateway.web_url + "/metrics")
    request.add_header("Authorization", f"Bearer {METRICS_TOKEN}")
    with urllib.request.urlopen(request, timeout=30) as reply:
        text = reply.read().decode()
    return {
        sample.name + (json.dumps(sample.labels, sort_keys=True) if sample.labels else ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_show_the_deliveries_stored_and_refused_and_the_nodes_sends(gateway: Gateway, mailbox: Opened) -> None:
    stored = delivery(gateway, "alice", seal(mailbox.owner.box_public, b"hello"))
    refused = delivery(gateway, "nobody", b"x" * 10)
    for body in (stored, refused):
        send_delivery(gateway, body)
        receipt_for(gateway, body["id"])
    figures = wait_for(
        lambda: (f := scrape(gateway))["mns_node_sends_last_hour"] >= 2 and f, timeout=30, what="the receipts sent"
    )
    assert figures["mns_deliveries_stored_last_hour"] == 1
    assert figures['mns_deliveries_refused_last_hour{"reason": "unknown_name"}'] == 1
    assert figures["mns_inbound_queue_depth"] == 0
    # The node's webhook posts reached the web workers: summed over every gunicorn worker (multiprocess mode).
    assert figures['mns_http_request_duration_seconds_count{"route": "maxima-hook", "status_class": "2xx"}'] >= 2
