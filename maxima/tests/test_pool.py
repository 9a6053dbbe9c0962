"""A pool of nodes against simnet: each supervised with the same webhook, sends to users spread over the nodes
whose key is published, a peer's messages from the identity node only, health naming each node."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from core.env import EnvError, env_url_list
from maxima import node as pool
from maxima.models import NodeState, OutboundMessage
from maxima.node import hook_url, send_node
from maxima.selectors import gateway_identity
from maxima.services import outbound_enqueue, outbound_send
from maxima.tasks import supervise_node
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork
from simnet.testing import WebhookReceiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    """Nodes 0 and 1 are the gateway's pool (0 the identity node), node 2 a user's."""
    with SimNetwork(nodes=3, block_interval=0.5) as network:
        yield network


@pytest.fixture
def pooled(net: SimNetwork, settings: Any) -> SimNetwork:
    settings.MINIMA_RPC_URL = f"{net.nodes[0].rpc_url},{net.nodes[1].rpc_url}"
    pool._reachable = (0.0, "", ())  # what another test's settings left in this process's cache
    return net


@pytest.fixture
def user_inbox(net: SimNetwork) -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        MinimaRPC(net.nodes[2].rpc_url).webhooks_add(hook=receiver.url(), filter="MAXIMA")
        yield receiver


def _send_all(net: SimNetwork, application: str, count: int) -> None:
    for n in range(count):
        message = outbound_enqueue(
            destination=net.nodes[2].address,
            application=application,
            payload=b"{}",
            idempotency_key=f"{application}{n}",
        )
        assert outbound_send(message_id=message.id) == OutboundMessage.Status.SENT


def test_supervision_records_each_node_and_registers_the_same_hook_on_each(pooled: SimNetwork) -> None:
    assert supervise_node() is True
    states = {state.pk: state for state in NodeState.objects.all()}
    assert {pk: state.publickey for pk, state in states.items()} == {
        1: pooled.nodes[0].publickey_hex,
        2: pooled.nodes[1].publickey_hex,
    }
    for node in pooled.nodes[:2]:
        assert MinimaRPC(node.rpc_url).webhooks_list() == [f"MAXIMA#{hook_url()}"]


def test_the_identity_is_the_first_nodes_and_the_pool_lists_the_others(pooled: SimNetwork) -> None:
    supervise_node()
    identity = gateway_identity()
    assert identity["publickey"] == pooled.nodes[0].publickey_hex
    assert identity["address"] == NodeState.objects.get(pk=1).p2pidentity
    assert identity["pool"] == [pooled.nodes[1].publickey_hex]


def test_messages_to_users_leave_from_every_node_of_the_pool(pooled: SimNetwork, user_inbox: WebhookReceiver) -> None:
    supervise_node()
    _send_all(pooled, "mns", 4)
    senders = [request.json()["data"]["from"] for request in user_inbox.wait_for(4)]
    assert sorted(senders) == sorted([pooled.nodes[0].publickey_hex, pooled.nodes[1].publickey_hex] * 2)


def test_messages_to_peers_leave_from_the_identity_node_only(pooled: SimNetwork, user_inbox: WebhookReceiver) -> None:
    supervise_node()
    _send_all(pooled, "mns-sync", 3)
    senders = {request.json()["data"]["from"] for request in user_inbox.wait_for(3)}
    assert senders == {pooled.nodes[0].publickey_hex}


def test_a_node_whose_key_is_not_known_yet_sends_nothing(pooled: SimNetwork, user_inbox: WebhookReceiver) -> None:
    _send_all(pooled, "mns", 3)  # supervision has not run: only the identity node is known to users
    senders = {request.json()["data"]["from"] for request in user_inbox.wait_for(3)}
    assert senders == {pooled.nodes[0].publickey_hex}


def test_a_node_found_unreachable_is_left_out_and_a_retry_moves_to_the_next_node(pooled: SimNetwork) -> None:
    supervise_node()
    assert {send_node(message_id=n, attempt=1, application="mns") for n in range(4)} == {1, 2}
    assert send_node(message_id=7, attempt=2, application="mns") != send_node(
        message_id=7, attempt=1, application="mns"
    )
    pooled.nodes[1].stop()
    supervise_node()
    pool._reachable = (0.0, "", ())
    assert NodeState.objects.get(pk=2).reachable is False
    assert {send_node(message_id=n, attempt=1, application="mns") for n in range(4)} == {1}


def test_health_names_a_pool_node_that_is_down_and_stays_up(pooled: SimNetwork, client: Client) -> None:
    body = json.loads(client.get("/api/v1/health").content)
    assert body["checks"]["pool"]["ok"] is True
    pooled.nodes[1].stop()
    response = client.get("/api/v1/health")
    body = json.loads(response.content)
    assert response.status_code == 200  # degraded: the identity node still sends everything
    assert body["checks"]["pool"]["ok"] is False
    assert "node 2" in body["checks"]["pool"]["detail"]


@pytest.mark.parametrize(
    "value",
    [
        "http://127.0.0.1:9005,",
        ",http://127.0.0.1:9005",
        "http://127.0.0.1:9005,,http://127.0.0.1:9105",
        "http://127.0.0.1:9005,http://127.0.0.1:9005",
        "http://127.0.0.1:9005,ftp://127.0.0.1:9105",
        "http://127.0.0.1:9005,http://127.0.0.1:99999",
    ],
)
def test_a_node_list_that_is_not_a_list_of_distinct_urls_is_refused(value: str) -> None:
    with pytest.raises(EnvError):
        env_url_list("MINIMA_RPC_URL", schemes=("http", "https"), most=16, env={"MINIMA_RPC_URL": value})


def test_a_node_list_is_read_with_its_spaces_dropped() -> None:
    env = {"MINIMA_RPC_URL": " http://127.0.0.1:9005 , http://127.0.0.1:9105 "}
    assert env_url_list("MINIMA_RPC_URL", schemes=("http",), most=16, env=env) == (
        "http://127.0.0.1:9005,http://127.0.0.1:9105"
    )
