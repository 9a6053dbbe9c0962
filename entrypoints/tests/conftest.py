from collections.abc import Iterator
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from federation.models import Peer
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.rpc import MinimaRPC
from testsupport.nodes import Network, network


@pytest.fixture
def net() -> Iterator[Network]:
    """Node 0 is the publishing gateway's node, node 1 a reader's (a user, or another gateway); real nodes in
    interop mode (``testsupport.nodes``)."""
    with network(2, block_interval=0.2) as nodes:
        yield nodes


@pytest.fixture
def publisher(net: Network, settings: object) -> MinimaRPC:
    settings.MINIMA_RPC_URL = net.nodes[0].rpc_url
    settings.MNS_PUBLISHER = True
    settings.MNS_ENTRYPOINTS_COUNT = 3
    settings.MNS_MAXIMA_ADDRESS = f"MAX#{net.nodes[0].publickey_hex}#{net.nodes[0].address}"
    return MinimaRPC(net.nodes[0].rpc_url, timeout=10)


def _rsa_key_hex() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (Maxima keys are RSA-1024)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return to_hex(der)


@pytest.fixture
def peers(net: Network) -> list[Peer]:
    """Five healthy peers with permanent MAX# addresses (their MLS is node 0), one paused, one not permanent."""
    mls = net.nodes[0].address
    made = []
    for index in range(7):
        key = _rsa_key_hex()
        made.append(
            Peer.objects.create(
                name=f"gw{index}",
                identity_key=key,
                address=f"MAX#{key}#{mls}" if index != 6 else mls,
                permanent=index != 6,
                api_url=f"https://gw{index}.example/api/v1/",
                paused=index == 5,
                last_heard_at=timezone.now() - timedelta(seconds=5),
            )
        )
    return made
