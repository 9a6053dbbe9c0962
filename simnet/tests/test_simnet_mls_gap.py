"""A restarted node's MAX# address is dark until its Maxima loop registers it with its MLS again (fixtures 174-178b).

Real nodes keep their MLS table in memory: after node A restarts, `maxextra action:getaddress` for A's MAX# address
answers `success:false` with `mlsresponse:"{}"` and sends to it fail `MAX address invalid..` for about 4.5 minutes;
while A's process is down both fail with the ConnectException text. Here the gap is shortened to a second.
"""

from collections.abc import Iterator

import pytest

from mns_client.protocol.errors import AddressUnresolved, RPCError
from mns_client.protocol.rpc import MinimaRPC
from simnet import SimNetwork
from simnet.network import MLS_GAP_SECONDS
from testsupport.processes import wait_for

GAP = 1.0


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    with SimNetwork(nodes=2, block_interval=0.5, mls_gap=GAP) as network:
        yield network


def permanent(net: SimNetwork) -> str:
    """Node 0's MAX# address, with node 0 as its own MLS (as a gateway publishes it)."""
    a = net.nodes[0]
    MinimaRPC(a.rpc_url).maxextra_addpermanent(a.publickey)
    return f"MAX#{a.publickey_hex}#{a.address}"


def resolves(net: SimNetwork, address: str) -> bool | str:
    try:
        return MinimaRPC(net.nodes[1].rpc_url).maxextra_getaddress(address) is not None
    except RPCError as exc:
        return exc.message


def wait_until_resolves(net: SimNetwork, address: str, seconds: float) -> bool:
    return bool(wait_for(lambda: resolves(net, address) is True, timeout=seconds, what="the MAX# address to resolve"))


def test_the_default_gap_is_the_one_measured_on_real_nodes() -> None:
    assert 242 < MLS_GAP_SECONDS < 272  # still failing at 242 s, resolving at 272 s (fixture 178b)


def test_a_first_start_registers_with_the_mls_at_once(net: SimNetwork) -> None:
    assert wait_until_resolves(net, permanent(net), 5)


def test_while_the_mls_process_is_down_lookups_and_sends_fail_with_the_connect_exception(net: SimNetwork) -> None:
    address = permanent(net)
    assert wait_until_resolves(net, address, 5)
    net.nodes[0].stop()

    assert resolves(net, address) == "java.net.ConnectException: Connection refused"
    with pytest.raises(RPCError, match=r"java\.net\.ConnectException: Connection refused"):
        MinimaRPC(net.nodes[1].rpc_url).maxima_send(to=address, application="test", data=b"\x01")


def test_after_a_restart_the_max_address_is_dark_for_the_gap_then_resolves_again(net: SimNetwork) -> None:
    address = permanent(net)
    assert wait_until_resolves(net, address, 5)
    net.nodes[0].stop()
    net.nodes[0].start()

    assert resolves(net, address) is False
    with pytest.raises(AddressUnresolved):
        MinimaRPC(net.nodes[1].rpc_url).maxima_send(to=address, application="test", data=b"\x01")
    assert wait_until_resolves(net, address, GAP + 5)
    sent = MinimaRPC(net.nodes[1].rpc_url).maxima_send(to=address, application="test", data=b"\x01")
    assert sent.delivered
