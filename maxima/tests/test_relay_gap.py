"""The MAX# gap after a relay restarts (fixtures 174-178b), as the gateway meets it.

Real nodes keep their MLS table in memory: for about 4.5 minutes after a node restarts, the MAX# addresses it serves
do not resolve, and sends to them fail `MAX address invalid..`. The gateway's outbox waits such a send out without
using up its attempts; supervision finds when the gateway's own published MAX# address does not resolve, health says
so, and the direct address is handed out meanwhile. Simnet shortens the gap to a second here.
"""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from maxima.models import NodeState, OutboundMessage
from maxima.selectors import gateway_address
from maxima.services import node_supervise, outbound_enqueue, outbound_send
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork
from simnet.testing import WebhookReceiver
from testsupport.processes import wait_for

pytestmark = pytest.mark.django_db
GAP = 1.0


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    with SimNetwork(nodes=2, block_interval=0.5, mls_gap=GAP) as network:
        yield network


def permanent(net: SimNetwork, index: int) -> str:
    """Node ``index``'s MAX# address, the node being its own MLS (as a gateway publishes its own)."""
    node = net.nodes[index]
    MinimaRPC(node.rpc_url).maxextra_addpermanent(node.publickey)
    return f"MAX#{node.publickey_hex}#{node.address}"


def resolves(net: SimNetwork, address: str) -> bool:
    return MinimaRPC(net.nodes[0].rpc_url).maxextra_getaddress(address) is not None


def restart(net: SimNetwork, index: int) -> None:
    net.nodes[index].stop()
    net.nodes[index].start()


def test_a_send_to_a_dark_max_address_waits_without_using_up_its_attempts_and_goes_once_it_resolves(
    net: SimNetwork,
) -> None:
    address = permanent(net, 1)
    wait_for(lambda: resolves(net, address), timeout=5, what="the MAX# address to resolve")
    with WebhookReceiver() as inbox:
        MinimaRPC(net.nodes[1].rpc_url).webhooks_add(hook=inbox.url(), filter="MAXIMA")
        restart(net, 1)
        gateway = MinimaRPC(net.nodes[0].rpc_url)
        message = outbound_enqueue(destination=address, application="mns", payload=b"{}", idempotency_key="gap")

        assert outbound_send(message_id=message.id, client=gateway) == "queued"
        message.refresh_from_db()
        # The try is made, but not counted against its budget: waiting out a dark address uses up nothing.
        assert (message.status, message.attempts, message.uncounted, message.max_attempts) == ("queued", 1, 1, 12)
        assert message.unresolved_since is not None
        assert "waiting for the MAX# address to resolve again" in message.last_error

        wait_for(lambda: resolves(net, address), timeout=GAP + 5, what="the MAX# address to resolve again")
        OutboundMessage.objects.filter(id=message.id).update(next_attempt_at=message.created_at)
        assert outbound_send(message_id=message.id, client=gateway) == "sent"
        assert len(inbox.wait_for(1)) == 1
        assert OutboundMessage.objects.get(id=message.id).unresolved_since is None


def test_a_send_whose_max_address_stays_dark_too_long_fails_for_good(net: SimNetwork, settings: object) -> None:
    settings.MNS_OUTBOX_UNRESOLVED_GIVE_UP_SECONDS = 600
    address = permanent(net, 1)
    wait_for(lambda: resolves(net, address), timeout=5, what="the MAX# address to resolve")
    restart(net, 1)
    gateway = MinimaRPC(net.nodes[0].rpc_url)
    message = outbound_enqueue(destination=address, application="mns", payload=b"{}", idempotency_key="too-long")
    # Queued two hours ago and retried since: the first dark try waits; the give-up counts from the first one.
    OutboundMessage.objects.filter(id=message.id).update(created_at=timezone.now() - timedelta(hours=2))
    assert outbound_send(message_id=message.id, client=gateway) == "queued"

    dark_since = timezone.now() - timedelta(seconds=601)
    OutboundMessage.objects.filter(id=message.id).update(unresolved_since=dark_since, next_attempt_at=dark_since)
    assert outbound_send(message_id=message.id, client=gateway) == "failed"
    assert "gave up" in OutboundMessage.objects.get(id=message.id).last_error


def test_supervision_finds_the_gateways_max_address_dark_after_a_restart_and_health_says_so(
    net: SimNetwork, settings: object, client: Client
) -> None:
    settings.MINIMA_RPC_URL = net.nodes[0].rpc_url
    settings.MNS_MAXIMA_ADDRESS = address = permanent(net, 0)
    gateway = MinimaRPC(net.nodes[0].rpc_url)
    wait_for(lambda: resolves(net, address), timeout=5, what="the MAX# address to resolve")
    assert node_supervise(client=gateway).address_resolves is True
    assert gateway_address() == address

    restart(net, 0)
    wait_for(lambda: node_supervise(client=gateway).reachable, timeout=5, what="the node to answer")

    state = NodeState.objects.get()
    assert (state.address_resolves, state.address_dark_since is not None) == (False, True)
    assert gateway_address() == state.p2pidentity  # never an address known not to resolve
    assert client.get("/.well-known/mns.json").json()["maxima"]["address"] == state.p2pidentity
    health = client.get("/api/v1/health").json()
    assert health["status"] != "ok"
    assert health["checks"]["address"]["ok"] is False
    assert "does not resolve through its MLS" in health["checks"]["address"]["detail"]

    wait_for(lambda: resolves(net, address), timeout=GAP + 5, what="the MAX# address to resolve again")
    assert node_supervise(client=gateway).address_resolves is True
    assert NodeState.objects.get().address_dark_since is None
    assert gateway_address() == address


def test_a_gateway_without_a_max_address_has_no_address_part_in_its_health(
    net: SimNetwork, settings: object, client: Client
) -> None:
    settings.MINIMA_RPC_URL = net.nodes[0].rpc_url
    settings.MNS_MAXIMA_ADDRESS = ""
    assert node_supervise(client=MinimaRPC(net.nodes[0].rpc_url)).address_resolves is None
    assert "address" not in client.get("/api/v1/health").json()["checks"]
