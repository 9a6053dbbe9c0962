"""The whole handshake for real: simnet nodes (or real ones in interop mode, ``testsupport.nodes``), the gateway
served by gunicorn, a real Celery worker.

Node 0 is the gateway's node, node 1 the owner's, node 2 a stranger's. The client asks for a challenge over REST,
the nodes send their answers with ``maxima action:send``, node 0 posts them to the gateway's webhook, the worker
judges them and sends the verdict back through node 0, and the client picks the session up and uses it.
"""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from handshake.models import Answer, Session
from maxima.services import node_supervise
from mns_client.protocol import batch
from mns_client.protocol.codecs import from_hex
from mns_client.protocol.handshake import Answer as AnswerMessage
from mns_client.protocol.handshake import Result, new_verifier, verifier_hash
from mns_client.protocol.rpc import MinimaRPC
from registry import services as registry
from registry.tests.support import Owner, SignsOnItsNode, new_box_key
from simnet.testing import WebhookReceiver
from testsupport.nodes import Network, Node, network
from testsupport.processes import celery_worker, child_env, free_port, gunicorn, process, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

HOOK_SECRET = "handshake-e2e-" + "s" * 30


@dataclass
class Gateway:
    net: Network
    url: str
    worker_log: Path

    def api(self, method: str, path: str, data: Any = None, *, auth: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"} | ({"Authorization": auth} if auth else {})
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    def poll(self, challenge_id: str) -> dict[str, Any]:
        return self.api("GET", f"/api/v1/handshakes/{challenge_id}")[1]


@pytest.fixture
def gateway(tmp_path: Path, settings: Any) -> Iterator[Gateway]:
    web_port = free_port()
    url = f"http://127.0.0.1:{web_port}"
    settings.MNS_HOOK_BASE_URL, settings.MAXIMA_HOOK_SECRET = url, HOOK_SECRET
    with network(3, block_interval=0.5) as net:
        env = child_env(
            MNS_VAR_DIR=str(tmp_path),  # the embedded filesystem broker, shared by the web server and the worker
            MINIMA_RPC_URL=net.nodes[0].rpc_url,
            MAXIMA_HOOK_SECRET=HOOK_SECRET,
            MNS_HOOK_BASE_URL=url,
        )
        for variable in ("CELERY_BROKER_URL", "REDIS_URL"):
            env.pop(variable, None)
        web_log, worker_log = tmp_path / "web.log", tmp_path / "worker.log"
        with (
            process(gunicorn(bind=f"127.0.0.1:{web_port}"), env=env, log=web_log),
            process(celery_worker(env=env, log=worker_log), env=env, log=worker_log),
        ):
            gateway = Gateway(net, url, worker_log)
            wait_for(lambda: _answers(gateway), timeout=30, what="gunicorn", log=web_log)
            wait_for((tmp_path / "broker" / "queue").exists, timeout=30, what="the worker", log=worker_log)
            assert node_supervise(client=MinimaRPC(net.nodes[0].rpc_url)).reachable  # node 0 now posts to the web
            yield gateway


def _answers(gateway: Gateway) -> bool:
    try:
        return gateway.api("GET", "/api/v1/handshakes/none")[0] == 404
    except OSError:
        return False


def send_answer(node: Node, started: dict[str, Any], code: str | None = None) -> str:
    """The node sends ``{"v":1,"type":"handshake",…}`` to the address the gateway gave, as any Maxima app would."""
    message = AnswerMessage(challenge=started["id"], code=code or started["code"], reply_to=node.address)
    sent = MinimaRPC(node.rpc_url, timeout=30).maxima_send(
        to=started["gateway_address"], application="mns", data=message.to_bytes()
    )
    return sent.msgid


@dataclass
class NodeOwner(SignsOnItsNode, Owner):
    """An owner whose node signs with its own ``maxsign``: a real node never shows its private key."""

    rpc: MinimaRPC = field(default=None, repr=False)  # type: ignore[assignment]


def owner_of(node: Node) -> Owner:
    """The node's identity as the owner of a name."""
    private_key = getattr(node, "private_key", None)
    if private_key is not None:
        return Owner(key=node.publickey_hex, private_key=private_key)
    return NodeOwner(key=node.publickey_hex, private_key=b"", rpc=MinimaRPC(node.rpc_url, timeout=30))


def verdicts(inbox: WebhookReceiver) -> list[Result]:
    """The handshake-result messages a node's webhook received, alone or in a batch of replies."""
    events = [request.json()["data"] for request in inbox.events("MAXIMA")]
    mns = [from_hex(event["data"]) for event in events if event["application"] == "mns"]
    return [Result.from_bytes(item) for data in mns for item in batch.messages_of(data)]


def test_the_owners_node_proves_the_mailbox_and_the_client_uses_the_session(gateway: Gateway) -> None:
    gateway_node, user, stranger = gateway.net.nodes
    owner = owner_of(user)
    home = gateway_node.publickey_hex
    registry.name_hold(signed=owner.sign("register", "alice", 1, gateway=home), gateway_key=home, source="api")
    registry.name_activate(name="alice")

    with WebhookReceiver() as user_inbox, WebhookReceiver() as stranger_inbox:
        MinimaRPC(user.rpc_url).webhooks_add(hook=user_inbox.url(), filter="MAXIMA")
        MinimaRPC(stranger.rpc_url).webhooks_add(hook=stranger_inbox.url(), filter="MAXIMA")

        # The client asks for a challenge; it keeps the verifier to itself.
        verifier = new_verifier()
        request = {"name": "Alice", "purpose": "rotate", "verifier_hash": verifier_hash(verifier)}
        status, started = gateway.api("POST", "/api/v1/handshakes", request)
        assert status == 201, started
        assert started["gateway_address"] == gateway_node.address

        # A stranger's node sends the right code: refused and counted, and the stranger hears nothing back.
        send_answer(stranger, started)
        wait_for(lambda: gateway.poll(started["id"])["attempts_left"] == 4, timeout=60, what="the stranger's answer")
        assert gateway.poll(started["id"])["status"] == "pending"
        assert gateway.api("POST", f"/api/v1/handshakes/{started['id']}/session", {"verifier": verifier})[0] == 409

        # The owner's node sends it: verified, and the verdict comes back to the owner's node.
        send_answer(user, started)
        wait_for(lambda: gateway.poll(started["id"])["status"] == "verified", timeout=60, what="the verification")
        user_inbox.wait_for(1, timeout=60)
        assert verdicts(user_inbox) == [Result(started["id"], "verified")]

        # The client picks the session up with its verifier, once.
        status, session = gateway.api("POST", f"/api/v1/handshakes/{started['id']}/session", {"verifier": verifier})
        assert (status, session["scope"], session["name"]) == (201, "rotate", "alice")
        again = gateway.api("POST", f"/api/v1/handshakes/{started['id']}/session", {"verifier": verifier})
        assert (again[0], again[1]["error"]) == (409, "session_already_issued")

        # And uses it: what it allows, then rotating the box key with an owner-signed statement.
        token = session["token"]
        assert gateway.api("GET", "/api/v1/session", auth=f"MNS-Session {token}")[1]["scope"] == "rotate"
        rotation = owner.sign("update", "alice", 2, box_key=new_box_key(), gateway=home)
        status, record = gateway.api(
            "POST", "/api/v1/names/alice/statements", rotation.to_dict(), auth=f"Bearer {token}"
        )
        assert (status, record["seq"], record["box_key"]) == (201, 2, rotation.statement.box_key)

        # A second valid answer (a new Maxima message) finds the challenge used: no second session is possible.
        send_answer(user, started)
        user_inbox.wait_for(2, timeout=60)
        assert verdicts(user_inbox)[1] == Result(started["id"], "failed", "challenge_used")

    assert stranger_inbox.events("MAXIMA") == []
    assert sorted(Answer.objects.values_list("reason", flat=True)) == ["", "challenge_used", "wrong_sender"]
    assert Session.objects.count() == 1


def test_a_wrong_code_from_the_owners_node_is_refused_over_maxima(gateway: Gateway) -> None:
    gateway_node, user, _ = gateway.net.nodes
    owner = owner_of(user)
    home = gateway_node.publickey_hex
    registry.name_hold(signed=owner.sign("register", "bob", 1, gateway=home), gateway_key=home, source="api")
    registry.name_activate(name="bob")
    with WebhookReceiver() as user_inbox:
        MinimaRPC(user.rpc_url).webhooks_add(hook=user_inbox.url(), filter="MAXIMA")
        request = {"name": "bob", "purpose": "read", "verifier_hash": verifier_hash(new_verifier())}
        started = gateway.api("POST", "/api/v1/handshakes", request)[1]
        send_answer(user, started, code="not-the-code")
        user_inbox.wait_for(1, timeout=60)
    assert verdicts(user_inbox) == [Result(started["id"], "failed", "code_wrong")]
    assert gateway.poll(started["id"])["status"] == "pending"
