"""Signatures made by a (simulated) node's own ``maxsign`` over RPC, as an owner's node makes them."""

from collections.abc import Iterator

import pytest

from mns_client.protocol.errors import MNSError
from mns_client.protocol.rpc import MinimaRPC
from mns_client.protocol.statements import NameStatement, SignedStatement
from registry import services
from registry.tests.support import GATEWAY, ISSUED_AT, new_box_key
from simnet import SimNetwork


@pytest.fixture(scope="module")
def node_rpc() -> Iterator[MinimaRPC]:
    with SimNetwork(nodes=1, block_interval=5) as network:
        yield MinimaRPC(network.nodes[0].rpc_url)


def signed_by_node(rpc: MinimaRPC, **fields: object) -> SignedStatement:
    owner = rpc.maxima_info().publickey_hex
    statement = NameStatement(owner=owner, issued_at=ISSUED_AT, gateway=GATEWAY, **fields)
    return SignedStatement(statement, rpc.maxsign(statement.canonical()))


def test_a_statement_signed_by_a_simnet_nodes_maxsign_verifies_and_a_tampered_one_does_not(
    node_rpc: MinimaRPC,
) -> None:
    signed = signed_by_node(node_rpc, op="register", name="alice", box_key=new_box_key(), seq=1)
    signed.verify()
    tampered = SignedStatement(
        NameStatement(**{**signed.statement.to_dict(), "box_key": new_box_key()}), signed.signature
    )
    with pytest.raises(MNSError) as refused:
        tampered.verify()
    assert refused.value.code == "signature_invalid"


@pytest.mark.django_db
def test_the_gateway_holds_a_name_for_a_statement_a_simnet_node_signed(node_rpc: MinimaRPC) -> None:
    signed = signed_by_node(node_rpc, op="register", name="alice", box_key=new_box_key(), seq=1)
    record = services.name_hold(signed=signed, gateway_key=GATEWAY, source="maxima")
    assert (record.status, record.owner_key) == ("pending", node_rpc.maxima_info().publickey_hex)
