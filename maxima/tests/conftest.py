from collections.abc import Iterator

import pytest

from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork
from simnet.testing import WebhookReceiver


@pytest.fixture
def simnet() -> Iterator[SimNetwork]:
    """Two simulated Minima nodes: node 0 is the gateway's own, node 1 a user's."""
    with SimNetwork(nodes=2, block_interval=0.5) as net:
        yield net


@pytest.fixture
def gateway_node(simnet: SimNetwork, settings: object) -> MinimaRPC:
    settings.MINIMA_RPC_URL = simnet.nodes[0].rpc_url
    return MinimaRPC(simnet.nodes[0].rpc_url, timeout=30)


@pytest.fixture
def user_inbox(simnet: SimNetwork) -> Iterator[WebhookReceiver]:
    """What arrives at the user's node (node 1), as its webhook sees it."""
    with WebhookReceiver() as receiver:
        MinimaRPC(simnet.nodes[1].rpc_url).webhooks_add(hook=receiver.url(), filter="MAXIMA")
        yield receiver
