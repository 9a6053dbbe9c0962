"""The interop script's node command lines (no Java needed) and, in interop mode, the real nodes it started."""

from pathlib import Path

import pytest

from interop import nodes
from mns_client.protocol.errors import NodeAuthError
from mns_client.protocol.rpc import MinimaRPC
from testsupport.nodes import RealNetwork, interop_urls, requires_interop

JAVA = ["java", "-cp", "minima.jar", "org.minima.Minima"]


def test_node_0_creates_the_chain_on_its_first_start_only(tmp_path: Path) -> None:
    first = nodes.Node(tmp_path, 0, 9001)
    assert first.command(JAVA, 9001)[-2:] == ["-nop2p", "-genesis"]

    (first.dir / "data" / "1.0").mkdir(parents=True)
    assert first.command(JAVA, 9001)[-1] == "-nop2p"


def test_the_other_nodes_connect_to_node_0_on_loopback_only(tmp_path: Path) -> None:
    command = nodes.Node(tmp_path, 2, 11001).command(JAVA, 9001)

    assert command[-2:] == ["-connect", "127.0.0.1:9001"]
    assert "-genesis" not in command
    assert command[command.index("-port") + 1] == "11001"


@pytest.mark.parametrize("index", [0, 1])
def test_every_node_runs_in_test_mode_with_rpc_and_advertises_loopback(tmp_path: Path, index: int) -> None:
    command = nodes.Node(tmp_path, index, 9001 + 1000 * index).command(JAVA, 9001)

    assert {"-test", "-rpcenable", "-allowallip", "-daemon", "-nodefaultminidapps"} <= set(command)
    assert command[command.index("-host") + 1] == "127.0.0.1"
    assert command[command.index("-data") + 1] == str(tmp_path / f"node{index}" / "data")


def test_a_node_rpc_url_is_its_p2p_port_plus_4(tmp_path: Path) -> None:
    assert nodes.Node(tmp_path, 1, 10001).rpc_url == "http://127.0.0.1:10005"


def test_a_users_node_runs_mds_with_the_password_given_and_node_0_never_does(tmp_path: Path) -> None:
    user = nodes.Node(tmp_path, 1, 10001, mds_password="Secret123")
    assert user.command(JAVA, 9001)[-3:] == ["-mdsenable", "-mdspassword", "Secret123"]
    assert user.mds_url == "https://127.0.0.1:10003"
    assert "-mdsenable" not in nodes.Node(tmp_path, 1, 10001).command(JAVA, 9001)


def test_a_path_that_is_neither_a_jar_nor_a_minima_checkout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(nodes.NodeError, match="neither a Minima jar nor a Minima source checkout"):
        nodes.classpath(tmp_path, tmp_path / "state", tmp_path)
    assert not (tmp_path / "state").exists()


def test_interop_mode_refuses_a_node_that_is_not_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNS_INTEROP_NODES", "http://127.0.0.1:9005,http://192.0.2.1:9005")

    with pytest.raises(ValueError, match="not on loopback"):
        interop_urls()


def test_the_real_nodes_answer_and_each_sees_node_0_among_its_maxima_hosts() -> None:
    requires_interop()
    net = RealNetwork(interop_urls())
    first = net.nodes[0]
    assert first.address.startswith("Mx")
    assert "@127.0.0.1:" in first.address
    seen = 0
    for node in net.nodes[1:]:
        try:
            hosts = MinimaRPC(node.rpc_url).command("maxima", action="hosts")["hosts"]
        except NodeAuthError:
            continue  # the CLI suite gave this node (carol's) a password at runtime
        seen += 1
        assert any(host["host"] == first.address.split("@")[1] and host["connected"] for host in hosts)
    assert seen >= 1
