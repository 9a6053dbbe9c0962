"""Calls that arrive together: a node with a state directory answers every one and saves all of their effects."""

import json
import threading
from pathlib import Path

from simnet import SimNetwork
from simnet.testing import RpcReply, rpc

CALLERS = 32


def _at_once(url: str, commands: list[str]) -> list[RpcReply | Exception]:
    """Send each command on its own thread, all released together; the replies (or errors) in command order."""
    replies: list[RpcReply | Exception] = [RuntimeError("no reply")] * len(commands)
    start = threading.Barrier(len(commands))

    def call(i: int) -> None:
        start.wait()
        try:
            replies[i] = rpc(url, commands[i])
        except Exception as exc:  # a connection closed without an answer is what this test looks for
            replies[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(commands))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return replies


def test_every_one_of_many_concurrent_calls_is_answered_and_the_saved_state_holds_them_all(tmp_path: Path) -> None:
    keys = [f"0x{i:064X}" for i in range(CALLERS)]
    with SimNetwork(nodes=1, state_dir=tmp_path, block_interval=30) as net:
        node = net.nodes[0]

        replies = _at_once(node.rpc_url, [f"maxextra action:addpermanent publickey:{key}" for key in keys])

        assert [type(r).__name__ for r in replies] == ["RpcReply"] * CALLERS
        assert [(r.status, r.json()["status"]) for r in replies] == [(200, True)] * CALLERS
        saved = json.loads((tmp_path / "node-0.json").read_text())
        assert sorted(saved["permanent"]) == keys
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chain.json", "node-0.json"]


def test_reads_and_writes_mixed_together_are_all_answered_and_the_last_write_is_saved(tmp_path: Path) -> None:
    with SimNetwork(nodes=1, state_dir=tmp_path, block_interval=30) as net:
        node = net.nodes[0]
        commands = ["status", "maxima", "block", "maxima action:setname name:racer"] * (CALLERS // 4)

        replies = _at_once(node.rpc_url, commands)

        assert [isinstance(r, RpcReply) and r.json()["status"] for r in replies] == [True] * CALLERS
        assert json.loads((tmp_path / "node-0.json").read_text())["name"] == "racer"
