"""The `mns` client registering a name its own node's wallet holds on chain: refused at first
(``name_held_on_chain``), it signs the statement with that wallet key on its node and asks again, and the gateway
(the live server, reading simnet's chain through node 0) accepts it. A node whose wallet does not hold the key
signs nothing."""

from pathlib import Path
from typing import Any

import pytest

from mailboxes.tests.support import VERIFIER, Owner
from mns_client.config import Home
from mns_client.protocol.handshake import verifier_hash
from mns_client.protocol.rpc import MinimaRPC
from mns_client.sdk import Client
from onchain.models import ChainProof
from onchain.tests.test_whois import chain  # noqa: F401
from simnet import SimNetwork

pytestmark = pytest.mark.django_db(transaction=True)


def client_on(node_url: str, gateway_url: str, home: Path) -> Client:
    return Client(rpc=MinimaRPC(node_url), gateway_url=gateway_url, home=Home(home))


def test_a_client_whose_wallet_holds_the_name_on_chain_signs_for_it_and_is_accepted(
    chain: SimNetwork,  # noqa: F811
    live_server: Any,
    tmp_path: Path,
    bob: Owner,
) -> None:
    signed = bob.register("carol")
    request = {**signed.to_dict(), "address": bob.address, "verifier_hash": verifier_hash(VERIFIER)}
    holder = client_on(chain.nodes[1].rpc_url, live_server.url, tmp_path)
    pending = holder._ask_for_name(request, signed.statement)
    assert (pending["name"], pending["status"]) == ("carol", "pending")
    assert ChainProof.objects.filter(name="carol", holder=chain.nodes[1].wallet_keys[0]).exists()


def test_a_node_that_does_not_hold_the_key_signs_nothing(
    chain: SimNetwork,  # noqa: F811
    live_server: Any,
    tmp_path: Path,
    bob: Owner,
) -> None:
    squatter = client_on(chain.nodes[2].rpc_url, live_server.url, tmp_path)
    assert squatter.chain_signature(bob.register("carol").statement) is None
    assert squatter.chain_signature(bob.register("nobody").statement) is None
