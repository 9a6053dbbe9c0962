"""The SDK without a gateway process: its REST error mapping, the local verification of name records, the
temporary webhook on a (simnet) node, and what it refuses before asking anyone."""

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mns_client.config import Home
from mns_client.listener import PATH_PREFIX, NodeListener
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.crypto import maxsign
from mns_client.protocol.errors import AddressUnresolved
from mns_client.protocol.rpc import MinimaRPC
from mns_client.protocol.statements import NameStatement, SignedStatement
from mns_client.sdk import (
    Client,
    GatewayAPI,
    GatewayRefused,
    GatewayUnreachable,
    HandshakeFailed,
    NotVerified,
    Unavailable,
    _verified_record,
)
from simnet import SimNetwork
from simnet.testing import WebhookReceiver
from testsupport import maxima_fixture
from testsupport.processes import free_port, wait_for

_OWNER = maxima_fixture("30-")["parsed"]["response"]
OWNER, OWNER_PRIVATE = _OWNER["publickey"], from_hex(_OWNER["privatekey"])
GATEWAY_KEY = maxima_fixture("01-")["parsed"]["response"]["publickey"]
BOX_KEY = to_hex(bytes(range(32)))


def record(**statement_overrides: Any) -> dict[str, Any]:
    """What ``GET /api/v1/names/alice`` answers, signed by the fixture 30 key."""
    statement = NameStatement(
        op="register",
        name="alice",
        owner=OWNER,
        box_key=BOX_KEY,
        seq=1,
        issued_at=1795660441638,
        gateway=GATEWAY_KEY,
        **statement_overrides,
    )
    signed = SignedStatement(statement=statement, signature=maxsign(OWNER_PRIVATE, statement.canonical()))
    return {
        "name": "alice",
        "status": "active",
        "owner": OWNER,
        "box_key": BOX_KEY,
        "payment_address": statement.payment_address,
        "gateways": [GATEWAY_KEY],
        "seq": 1,
        **signed.to_dict(),
    }


class FakeGateway:
    """Answers each path from ``routes`` (status, body: a JSON value, or bytes sent as they are)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, Any]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                status, body = routes.get(self.path, (404, {"error": "not_found", "detail": "Not found."}))
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(scope="module")
def net() -> Iterator[SimNetwork]:
    with SimNetwork(nodes=2, block_interval=0.5) as network:
        yield network


def client_for(gateway: FakeGateway, tmp_path: Path, node_url: str = "http://127.0.0.1:9") -> Client:
    return Client(rpc=MinimaRPC(node_url, timeout=2), gateway_url=gateway.url, home=Home(tmp_path))


# ------------------------------------------------------------------------------------------------ REST


def test_the_gateways_error_shape_becomes_gateway_refused_with_its_code(gateway: FakeGateway) -> None:
    gateway.routes["/x"] = (409, {"error": "name_taken", "detail": "Taken.", "fields": {"name": ["taken"]}})

    with pytest.raises(GatewayRefused) as caught:
        GatewayAPI(gateway.url).request("GET", "/x")

    assert (caught.value.status, caught.value.code, caught.value.detail) == (409, "name_taken", "Taken.")
    assert caught.value.fields == {"name": ["taken"]}


@pytest.mark.parametrize("reply", [(502, b"<html>Bad gateway</html>"), (200, b"not json"), (500, b"")])
def test_an_answer_that_is_not_the_api_means_the_gateway_is_unreachable(
    gateway: FakeGateway, reply: tuple[int, bytes]
) -> None:
    gateway.routes["/x"] = reply

    with pytest.raises(GatewayUnreachable):
        GatewayAPI(gateway.url).request("GET", "/x")


def test_a_gateway_nobody_answers_at_is_unreachable() -> None:
    with pytest.raises(GatewayUnreachable, match="cannot reach the gateway"):
        GatewayAPI(f"http://127.0.0.1:{free_port()}", timeout=2).request("GET", "/")


def test_a_gateway_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        GatewayAPI("ftp://example.org")


# ------------------------------------------------------------------------------------------------ records


def test_a_record_whose_statement_verifies_and_matches_is_accepted() -> None:
    info = _verified_record("alice", record())

    assert (info.name, info.owner, info.box_key, info.seq) == ("alice", OWNER, from_hex(BOX_KEY), 1)


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda r: r["statement"].update(box_key=to_hex(bytes(32))), "signature_invalid"),
        (lambda r: r.update(signature="0x" + "00" * 128), "signature_invalid"),
        (lambda r: r.update(box_key=to_hex(bytes(32))), "record_mismatch"),
        (lambda r: r.update(owner=GATEWAY_KEY), "record_mismatch"),
        (lambda r: r.update(payment_address="0x" + "11" * 32), "record_mismatch"),
        (lambda r: r.update(seq=2), "record_mismatch"),
        (lambda r: r.pop("signature"), "record_invalid"),
        (lambda r: r["statement"].update(seq="1"), "record_invalid"),
    ],
)
def test_a_record_that_does_not_verify_or_differs_from_its_statement_is_refused(tamper: Any, code: str) -> None:
    body = record()
    tamper(body)

    with pytest.raises(NotVerified) as caught:
        _verified_record("alice", body)

    assert caught.value.code == code


def test_a_record_for_another_name_is_refused() -> None:
    with pytest.raises(NotVerified) as caught:
        _verified_record("bob", record())

    assert caught.value.code == "record_mismatch"


def test_lookup_normalises_the_name_and_verifies_what_the_gateway_says(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.routes["/api/v1/names/alice"] = (200, record())

    assert client_for(gateway, tmp_path).lookup("ALICE").owner == OWNER


def test_paying_a_name_without_a_payment_address_is_unavailable(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.routes["/api/v1/names/alice"] = (200, record())

    with pytest.raises(Unavailable) as caught:
        client_for(gateway, tmp_path).payment_plan("alice", "1")

    assert caught.value.code == "no_payment_address"


def test_a_payment_plan_uses_the_signed_payment_address(gateway: FakeGateway, tmp_path: Path) -> None:
    address = "MxG084YFVG7QG3CANA9ZUUH20FB4ENY85S6VW5UT4WV23T9RNUSAA1F4WG1CVK4"
    body = record(payment_address=address)
    gateway.routes["/api/v1/names/alice"] = (200, body)

    plan = client_for(gateway, tmp_path).payment_plan("alice", "2.5")

    assert (plan.address, plan.amount, plan.tokenid) == (address, "2.5", "0x00")


def test_entry_points_are_unavailable_while_the_gateway_does_not_serve_them(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    with pytest.raises(Unavailable, match="not published yet"):
        client_for(gateway, tmp_path).entry_points()


def test_entry_points_pick_one_of_the_gateways_entries_when_the_chain_is_not_configured(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    key = "0x" + maxima_fixture("01-")["parsed"]["response"]["publickey"][2:]
    mls = maxima_fixture("01-")["parsed"]["response"]["localidentity"]
    entries = [
        {"maxima_address": f"MAX#{key}#{mls}", "identity_key": key, "api_url": f"https://gw{i}.example/api/v1/"}
        for i in range(2)
    ]
    body = {"v": 1, "seq": 3, "issued_at": 1, "entries": [*entries, {"maxima_address": "nowhere"}]}
    gateway.routes["/api/v1/entry-points"] = (200, body)

    answer = client_for(gateway, tmp_path).entry_points()

    assert answer["source"] == "gateway"
    assert answer["entries"] == entries
    assert answer["picked"] in entries


def test_a_gateway_that_does_not_know_its_maxima_identity_is_not_ready(gateway: FakeGateway, tmp_path: Path) -> None:
    gateway.routes["/.well-known/mns.json"] = (200, {"maxima": {"publickey": None, "address": None}})

    with pytest.raises(GatewayRefused) as caught:
        client_for(gateway, tmp_path).gateway()

    assert (caught.value.status, caught.value.code) == (503, "gateway_not_ready")


# ------------------------------------------------------------------------------------------------ the listener


def test_the_listener_hears_mns_messages_sent_to_its_node_and_removes_its_hook(net: SimNetwork) -> None:
    sender, receiver = MinimaRPC(net.nodes[0].rpc_url), MinimaRPC(net.nodes[1].rpc_url)

    with NodeListener(receiver) as listener:
        assert listener.entry in receiver.webhooks_list()
        sender.maxima_send(to=net.nodes[1].address, application="other", data=b"not for us")
        sender.maxima_send(to=net.nodes[1].address, application="mns", data=b'{"hello":1}')
        event = listener.wait_for(lambda e: e, timeout=10)

    assert event is not None
    assert (event.application, event.data, event.sender) == ("mns", b'{"hello":1}', net.nodes[0].publickey_hex)
    assert not any(PATH_PREFIX in hook for hook in receiver.webhooks_list())


def test_the_listener_gives_up_after_its_timeout(net: SimNetwork) -> None:
    with NodeListener(MinimaRPC(net.nodes[1].rpc_url)) as listener:
        assert listener.wait_for(lambda e: e, timeout=0.2) is None


def test_a_hook_left_by_a_killed_command_is_removed_by_the_next_one(net: SimNetwork) -> None:
    node = MinimaRPC(net.nodes[1].rpc_url)
    stale = f"http://127.0.0.1:{free_port()}{PATH_PREFIX}left-behind"
    node.webhooks_add(hook=stale, filter="MAXIMA")

    with NodeListener(node):
        hooks = node.webhooks_list()

    assert f"MAXIMA#{stale}" not in hooks
    wait_for(lambda: not any(PATH_PREFIX in h for h in node.webhooks_list()), timeout=5, what="no hook left")


def test_the_listener_ignores_posts_to_another_path(net: SimNetwork) -> None:
    import requests

    with NodeListener(MinimaRPC(net.nodes[1].rpc_url)) as listener:
        base = listener.url.rsplit("/", 1)[0]
        reply = requests.post(base + "/guess", data=b'{"event":"MAXIMA"}', timeout=5)

        assert reply.status_code == 404
        assert listener.events == []


def test_links_the_gateway_gives_are_followed_on_its_own_host_only() -> None:
    api = GatewayAPI("http://gw.example:8000")

    assert api._same_origin("http://gw.example:8000/api/v1/x?cursor=a") == "http://gw.example:8000/api/v1/x?cursor=a"
    assert api._same_origin("https://evil.example/api/v1/x?cursor=a") == "http://gw.example:8000/api/v1/x?cursor=a"


# ------------------------------------------------------------------------------------------------ handshakes


def test_a_register_waiting_for_the_networks_claim_is_polled_past_its_expiry_until_it_is_decided(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    path = "/api/v1/handshakes/hs-1"
    state = {"id": "hs-1", "name": "alice", "purpose": "register", "attempts_left": 5, "session_issued": False}
    gateway.routes[path] = (200, {**state, "status": "pending", "reason": "claim_open"})
    decided = threading.Timer(
        1.5, lambda: gateway.routes.update({path: (200, {**state, "status": "failed", "reason": "name_taken"})})
    )
    decided.start()
    a_minute_ago = datetime.fromtimestamp(time.time() - 60, tz=UTC).isoformat()
    expired = {"id": "hs-1", "expires_at": a_minute_ago}  # a plain pending would give up at once

    with pytest.raises(HandshakeFailed) as caught:
        client_for(gateway, tmp_path)._await_verified("hs-1", expired, 5)

    decided.cancel()
    assert caught.value.code == "name_taken"


# ------------------------------------------------------------------------------------ the gateway's MAX# gap


def test_when_the_gateways_max_address_is_dark_the_client_sends_to_the_address_it_publishes_meanwhile(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    with SimNetwork(nodes=2, block_interval=0.5, mls_gap=60) as net, WebhookReceiver() as inbox:
        gw, user = net.nodes
        MinimaRPC(gw.rpc_url).maxextra_addpermanent(gw.publickey)
        MinimaRPC(gw.rpc_url).webhooks_add(hook=inbox.url(), filter="MAXIMA")
        permanent = f"MAX#{gw.publickey_hex}#{gw.address}"
        policy = {"maxima": {"publickey": gw.publickey_hex, "address": permanent}}
        gateway.routes["/.well-known/mns.json"] = (200, policy)
        client = client_for(gateway, tmp_path, user.rpc_url)
        assert client.gateway().address == permanent
        gw.stop()
        gw.start()  # its MLS forgot it: dark for the next minute
        gateway.routes["/.well-known/mns.json"] = (200, {"maxima": {**policy["maxima"], "address": gw.address}})

        client._send_to_gateway(permanent, b'{"v":1}')

        assert inbox.wait_for(1)[0].json()["data"]["from"] == user.publickey_hex
        assert client.gateway().address == gw.address


def test_when_the_gateway_has_no_other_address_a_dark_max_address_is_a_clear_error(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    with SimNetwork(nodes=2, block_interval=0.5, mls_gap=60) as net:
        gw, user = net.nodes
        MinimaRPC(gw.rpc_url).maxextra_addpermanent(gw.publickey)
        permanent = f"MAX#{gw.publickey_hex}#{gw.address}"
        gateway.routes["/.well-known/mns.json"] = (
            200,
            {"maxima": {"publickey": gw.publickey_hex, "address": permanent}},
        )
        gw.stop()
        gw.start()

        with pytest.raises(AddressUnresolved):
            client_for(gateway, tmp_path, user.rpc_url)._send_to_gateway(permanent, b'{"v":1}')
