"""Names registered on chain by Minima's MNS are honoured: a simnet chain where a node registers a name exactly as
the MNS MiniDapp does (``send amount:0.01 address:0xFFEEDDFFEEDDFFEEDD state:{…}``, fixture 122), and the
gateway's registration API and lookups reading it through the gateway's own simnet node."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client

from mailboxes.models import AccessToken, Mailbox
from mailboxes.tests.support import VERIFIER, Opened, Owner, answer, body, error, open_mailbox, snapshot
from maxima.models import NodeState
from mns_client.protocol.chainnames import MNS_ADDRESS
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.handshake import verifier_hash
from mns_client.protocol.rpc import MinimaRPC
from mns_client.protocol.statements import SignedStatement
from onchain import services, tasks
from onchain.models import ChainCoin, ChainProof
from registration import services as registration_services
from simnet import SimNetwork, SimNode
from simnet.testing import rpc
from testsupport.processes import free_port

pytestmark = pytest.mark.django_db


def mns_register(node: SimNode, name: str, *, transfer: str | None = None, key: str | None = None) -> None:
    """What MNS 0.6's ``sendNameUpdate`` makes the node do: convert, sign, then one ``send`` with the state."""
    key = key or node.wallet_keys[0]
    transfer = transfer or key
    datastr = json.dumps({"address": node.default_address}, separators=(",", ":"))
    text = quote(f"{key}:{transfer}:{name}:{datastr}:0x00", safe="-_.!~*()").replace("'", "%27")
    hexdata = rpc(node.rpc_url, f"convert from:string to:hex data:{text}").json()["response"]["conversion"]
    signature = rpc(node.rpc_url, f"sign publickey:{key} data:{hexdata}").json()["response"]
    state = {"0": f"[{key}]", "1": f"[{transfer}]", "2": f"[{name}]", "3": f"[{datastr}]", "4": "0x00", "5": signature}
    sent = rpc(node.rpc_url, f"send amount:0.01 address:{MNS_ADDRESS} state:{json.dumps(state, separators=(',', ':'))}")
    assert sent.json()["status"] is True, sent.json().get("error")


@contextmanager
def carol_on_chain() -> Iterator[SimNetwork]:
    """Node 0 is the gateway's; node 1 registered ``carol`` on chain; node 2 squatted on it one block later."""
    with SimNetwork(nodes=3, block_interval=3600) as net:
        for _ in range(3):
            net.make_block()
        mns_register(net.nodes[1], "carol")
        net.make_block()
        mns_register(net.nodes[2], "carol")
        for _ in range(2):
            net.make_block()
        yield net


@pytest.fixture(scope="module")
def chain() -> Iterator[SimNetwork]:
    with carol_on_chain() as net:
        yield net


@pytest.fixture
def node(chain: SimNetwork, settings: Any, gateway: NodeState) -> SimNetwork:
    settings.MINIMA_RPC_URL = chain.nodes[0].rpc_url
    settings.MNS_CHAIN_NAMES = True
    return chain


def holder_of(chain: SimNetwork) -> str:
    return chain.nodes[1].wallet_keys[0]


def register_request(owner: Owner, signed: SignedStatement, **extra: Any) -> dict[str, Any]:
    return {**signed.to_dict(), "address": owner.address, "verifier_hash": verifier_hash(VERIFIER), **extra}


def chain_sign(node: SimNode, signed: SignedStatement) -> str:
    """The on-chain holder's wallet signing the register statement (its canonical bytes) on its own node."""
    signature = MinimaRPC(node.rpc_url).sign(publickey=node.wallet_keys[0], data=signed.statement.canonical())
    return to_hex(signature)


def post(client: Client, data: dict[str, Any]) -> Any:
    return client.post("/api/v1/mailboxes", data, content_type="application/json")


def gateway_rows() -> dict[str, Any]:
    return {**snapshot(), "proofs": list(ChainProof.objects.values())}


def test_a_name_held_on_chain_is_refused_to_another_owner_and_nothing_is_written(
    client: Client, node: SimNetwork, bob: Owner
) -> None:
    before = gateway_rows()
    response = post(client, register_request(bob, bob.register("carol")))
    assert error(response) == (409, "name_held_on_chain")
    assert holder_of(node) in body(response)["detail"]
    assert gateway_rows() == before


def test_the_squatters_later_coin_does_not_make_the_squatter_the_holder(
    client: Client, node: SimNetwork, bob: Owner
) -> None:
    squatter = node.nodes[2]
    before = gateway_rows()
    signed = bob.register("carol")
    response = post(client, register_request(bob, signed, chain_signature=chain_sign(squatter, signed)))
    assert error(response) == (400, "chain_signature_invalid")
    assert gateway_rows() == before
    # Both coins were read, the first one verified; the squatter's coin was never worth a node call.
    assert sorted((row.owner, row.valid) for row in ChainCoin.objects.all()) == sorted(
        [(holder_of(node), True), (squatter.wallet_keys[0], None)]
    )


def test_with_the_on_chain_holders_signature_the_registration_is_accepted(
    client: Client, node: SimNetwork, bob: Owner
) -> None:
    signed = bob.register("carol")
    response = post(client, register_request(bob, signed, chain_signature=chain_sign(node.nodes[1], signed)))
    assert response.status_code == 201, body(response)
    assert body(response)["status"] == "pending"
    assert list(ChainProof.objects.values_list("name", "owner_key", "holder")) == [("carol", bob.key, holder_of(node))]


def test_a_signature_over_another_statement_is_refused(client: Client, node: SimNetwork, bob: Owner) -> None:
    other = chain_sign(node.nodes[1], bob.register("carol"))  # the holder's key, over another statement
    before = gateway_rows()
    assert error(post(client, register_request(bob, bob.register("carol"), chain_signature=other))) == (
        400,
        "chain_signature_invalid",
    )
    assert gateway_rows() == before


def test_a_name_not_on_chain_registers_as_before_and_its_lookup_says_nothing_of_the_chain(
    client: Client, node: SimNetwork, alice: Owner
) -> None:
    open_mailbox(alice, "dave")
    looked_up = client.get("/api/v1/names/dave")
    assert looked_up.status_code == 200
    assert "on_chain" not in body(looked_up)
    assert not ChainProof.objects.exists()


def test_the_lookup_says_the_name_is_on_chain_and_agrees_while_its_owner_proved_the_holder_key(
    client: Client, node: SimNetwork, bob: Owner
) -> None:
    opened = register_and_confirm(bob, "carol", node.nodes[1])
    assert opened.mailbox.record.name == "carol"
    on_chain = body(client.get("/api/v1/names/carol"))["on_chain"]
    assert on_chain == {
        "holder": holder_of(node),
        "registered_block": on_chain["registered_block"],
        "updated_block": on_chain["registered_block"],
        "data": json.dumps({"address": node.nodes[1].default_address}, separators=(",", ":")),
        "agrees": True,
    }


def test_the_lookup_disagrees_once_the_name_moves_on_chain_to_a_key_the_owner_did_not_prove(
    client: Client, settings: Any, gateway: NodeState, bob: Owner
) -> None:
    with carol_on_chain() as net:  # a chain of its own: this test changes it
        settings.MINIMA_RPC_URL = net.nodes[0].rpc_url
        register_and_confirm(bob, "carol", net.nodes[1])
        first = client.get("/api/v1/names/carol")
        new_holder = net.nodes[0].wallet_keys[0]
        for _ in range(3):  # the holder's change is spendable once deep enough (fixtures 149b-149d)
            net.make_block()
        mns_register(net.nodes[1], "carol", transfer=new_holder)  # the holder's coin handing the name on
        net.make_block()
        coin = MinimaRPC(net.nodes[0].rpc_url).coins(
            address=MNS_ADDRESS, state="carol", order="desc", simplestate=True
        )[0]
        # The node's NOTIFYCOIN for the new coin: kept by the hook, then verified by the task.
        hook = client.post(
            f"/onchain/hook/{settings.MAXIMA_HOOK_SECRET}/",
            json.dumps({"event": "NOTIFYCOIN", "data": {"address": MNS_ADDRESS, "coin": coin}}),
            content_type="application/json",
        )
        assert body(hook) == {"stored": True, "name": "carol"}
        tasks.coin_check(ChainCoin.objects.get(coinid=coin["coinid"]).id)
        second = client.get("/api/v1/names/carol", HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200  # the ETag moved with the chain
    assert body(second)["on_chain"]["holder"] == new_holder
    assert body(second)["on_chain"]["agrees"] is False


def test_the_hook_refuses_a_wrong_secret_and_ignores_coins_elsewhere(
    client: Client, node: SimNetwork, settings: Any
) -> None:
    assert client.post("/onchain/hook/wrong/", "{}", content_type="application/json").status_code == 404
    other = {"event": "NOTIFYCOIN", "data": {"coin": {"address": "0x01", "tokenid": "0x00"}}}
    url = f"/onchain/hook/{settings.MAXIMA_HOOK_SECRET}/"
    ignored = client.post(url, json.dumps(other), content_type="application/json")
    assert body(ignored)["stored"] is False
    assert not ChainCoin.objects.exists()


# ------------------------------------------------------------------------------------------------ helpers


def register_and_confirm(owner: Owner, name: str, holder: SimNode) -> Opened:
    """The whole registration with the on-chain holder's proof: request, the owner's node answering, the token."""
    signed = owner.register(name)
    pending = registration_services.mailbox_register(
        signed=signed,
        address=owner.address,
        verifier_hash=verifier_hash(VERIFIER),
        source="api",
        chain_signature=from_hex(chain_sign(holder, signed)),
    )
    assert answer(owner, pending.issued.challenge.id, pending.issued.code) == "verified"
    mailbox = Mailbox.objects.select_related("record").get(record__name=name)
    token = AccessToken.objects.get(mailbox=mailbox, revoked_at=None)
    token_id, secret = owner.open_token(bytes(token.blob))
    return Opened(mailbox=mailbox, owner=owner, token_id=token_id, secret=secret)


def test_a_node_that_cannot_be_read_fails_the_registration_closed_and_writes_nothing(
    client: Client, settings: Any, gateway: NodeState, bob: Owner
) -> None:
    settings.MINIMA_RPC_URL = f"http://127.0.0.1:{free_port()}"
    before = gateway_rows()
    assert error(post(client, register_request(bob, bob.register("carol")))) == (503, "chain_unreadable")
    assert gateway_rows() == before


def test_without_a_node_or_with_the_check_off_nothing_is_read(
    client: Client, settings: Any, node: SimNetwork, bob: Owner
) -> None:
    settings.MNS_CHAIN_NAMES = False
    response = post(client, register_request(bob, bob.register("carol")))
    assert response.status_code == 201, body(response)
    assert not ChainCoin.objects.exists()


def test_watching_asks_the_node_for_coin_events_once(node: SimNetwork, settings: Any) -> None:
    rpc_client = MinimaRPC(node.nodes[0].rpc_url)
    hook = services.hook_url()
    for _ in range(2):  # the periodic task runs again and again: nothing doubles
        services.watch(client=rpc_client, hook=hook)
    assert rpc_client.coinnotify(action="check", address=MNS_ADDRESS)["found"] is True
    assert rpc_client.webhooks_list().count(f"NOTIFYCOIN#{hook}") == 1
    rpc_client.webhooks_remove(f"NOTIFYCOIN#{hook}")


def test_each_change_of_what_a_lookup_says_on_chain_goes_through_the_registered_guard(
    node: SimNetwork, bob: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered: list[tuple[str, list[str]]] = []

    @contextmanager
    def guard(names: Any) -> Iterator[None]:
        entered.append(("before", list(names)))
        yield
        entered.append(("after", list(names)))

    monkeypatch.setattr(services, "_guards", [guard])
    register_and_confirm(bob, "carol", node.nodes[1])
    # The holder's coin judged valid by the node, then the proof kept: each wrapped.
    assert entered == [("before", ["carol"]), ("after", ["carol"])] * 2
