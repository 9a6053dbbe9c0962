"""Node-level behaviour: RPC auth, interoperable crypto, state persistence, the control endpoint and the command."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest

from mns_client.protocol import crypto
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.errors import NodeAuthError
from mns_client.protocol.rpc import MinimaRPC
from simnet import ControlServer, SimNetwork
from simnet.testing import WebhookReceiver, raw_exchange, rpc
from testsupport import REPO, maxima_fixture

FIXTURE_PRIVATE_KEY = maxima_fixture("30-")["parsed"]["response"]["privatekey"]


@pytest.fixture(scope="module")
def net() -> Iterator[SimNetwork]:
    with SimNetwork(nodes=2, block_interval=0.5) as network:
        yield network


def test_a_password_turns_on_basic_auth_for_user_minima() -> None:
    with SimNetwork(nodes=1, rpc_password="s3cret", block_interval=5) as network:
        node = network.nodes[0]

        missing = rpc(node.rpc_url, "block")
        wrong = rpc(node.rpc_url, "block", auth=("minima", "wrong"))
        other_user = rpc(node.rpc_url, "block", auth=("admin", "s3cret"))
        right = rpc(node.rpc_url, "block", auth=("minima", "s3cret"))

        assert (missing.status, wrong.status, other_user.status, right.status) == (401, 401, 401, 200)
        assert missing.text == '{"error":"Authentication failure.."}\n'
        assert MinimaRPC(node.rpc_url, password="s3cret").block()["block"]
        with pytest.raises(NodeAuthError):
            MinimaRPC(node.rpc_url, password="nope").block()


def test_the_401_reply_has_only_a_status_line_and_a_server_header() -> None:
    with SimNetwork(nodes=1, rpc_password="test", block_interval=5) as network:
        node = network.nodes[0]
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nblock"

        reply = raw_exchange(node.host, node.rpc_port, request)

        assert reply == maxima_fixture("99-")["exchanges"]["wrong_password"]["raw_response_bytes_as_text"].encode()


def test_a_runtime_password_is_forgotten_after_a_restart(net: SimNetwork) -> None:
    node = net.nodes[1]
    rpc(node.rpc_url, "rpc enable:true password:test")
    assert rpc(node.rpc_url, "block").status == 401

    node.stop()
    node.start()

    assert rpc(node.rpc_url, "block").status == 200


def test_maxsign_from_simnet_verifies_with_the_shared_crypto(net: SimNetwork) -> None:
    node = net.nodes[0]

    signature = MinimaRPC(node.rpc_url).maxsign(b"statement")

    assert crypto.maxverify(node.publickey, b"statement", signature)
    assert crypto.maxsign(node.private_key, b"statement") == signature


def test_a_node_loads_each_of_its_keys_once_however_many_messages_it_seals_and_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # loading an RSA key costs some fifty signatures: simnet's CPU, which the node's modelled send time is not
    loads: list[str] = []  # each load's key by its digest (a failure prints no private key)
    load = crypto._private_key
    monkeypatch.setattr(crypto, "_private_key", lambda der: loads.append(sha256(der).hexdigest()) or load(der))
    with SimNetwork(nodes=2, block_interval=5) as network:
        a, b = network.nodes
        sender = MinimaRPC(a.rpc_url)

        sent = [sender.maxima_send(to=b.address, application="keys-once", data=b"%d" % n) for n in range(6)]
        signatures = {sender.maxsign(b"statement") for _ in range(3)}
    loaded = Counter(loads)

    assert all(result.delivered for result in sent)
    assert loaded[sha256(a.identity_private).hexdigest()] == 1  # sealed 6 messages, signed 3 statements
    assert loaded[sha256(b.mls_private).hexdigest()] == 1  # opened 6 messages (sent to b's MLS key)
    assert max(loaded.values()) == 1
    assert signatures == {crypto.maxsign(a.private_key, b"statement")}


def test_fixture_made_blobs_decrypt_in_simnet_with_the_fixture_key(net: SimNetwork) -> None:
    client = MinimaRPC(net.nodes[1].rpc_url)
    for name in ("41-", "43-", "45-", "51-"):
        request = maxima_fixture(name)["parsed"]
        blob = from_hex(request["params"]["data"])

        plain = client.maxdecrypt(blob, privatekey=from_hex(FIXTURE_PRIVATE_KEY))

        assert to_hex(plain) == request["response"]["decrypted"]


def test_maxencrypt_from_simnet_opens_with_the_shared_crypto(net: SimNetwork) -> None:
    node = net.nodes[0]

    blob = MinimaRPC(node.rpc_url).maxencrypt(data=b"for node zero", publickey=node.publickey)

    assert crypto.maxdecrypt(node.private_key, blob) == b"for node zero"


def test_post_bodies_are_read_as_characters_and_get_paths_are_decoded(net: SimNetwork) -> None:
    node = net.nodes[0]

    by_get = MinimaRPC(node.rpc_url, method="GET").maxsign(b"a+b#c")
    by_post = MinimaRPC(node.rpc_url).maxsign(b"a+b#c")

    assert by_get == by_post


def test_state_dir_keeps_keys_hooks_contacts_and_the_chain(tmp_path: Path) -> None:
    with SimNetwork(nodes=2, state_dir=tmp_path, block_interval=0.2) as first:
        a, b = first.nodes
        rpc(a.rpc_url, "webhooks action:add hook:http://127.0.0.1:1/hook filter:MAXIMA")
        rpc(b.rpc_url, f"maxcontacts action:add contact:{a.address}")
        time.sleep(0.5)
        identity, address, block = a.publickey_hex, a.address, first.wait_blocks(1)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}

    with SimNetwork(nodes=2, base_port=first.base_port, state_dir=tmp_path, block_interval=5) as second:
        again = second.nodes[0]
        assert (again.publickey_hex, again.address) == (identity, address)
        assert rpc(again.rpc_url, "webhooks").json()["response"]["webhooks"] == ["MAXIMA#http://127.0.0.1:1/hook"]
        assert [c.publickey for c in again.contacts] == [second.nodes[1].publickey_hex]
        assert second.chain.block >= block
    assert modes["node-0.json"] == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700


def test_hooks_and_keys_survive_a_node_restart(net: SimNetwork) -> None:
    node = net.nodes[0]
    with WebhookReceiver() as hooks:
        rpc(node.rpc_url, f"webhooks action:add hook:{hooks.url()} filter:MAXIMA")
        key = node.publickey_hex

        node.stop()
        node.start()

        assert node.publickey_hex == key
        assert f"MAXIMA#{hooks.url()}" in rpc(node.rpc_url, "webhooks").json()["response"]["webhooks"]
        rpc(node.rpc_url, f"webhooks action:remove hook:MAXIMA#{hooks.url()}")


def _control(port: int, path: str, body: dict | None = None) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method="GET" if data is None and not path.endswith(("stop", "start")) else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_control_endpoint_lists_stops_starts_and_sets_faults(net: SimNetwork) -> None:
    control = ControlServer(net, 0)
    try:
        status, nodes = _control(control.port, "/nodes")
        assert status == 200
        assert nodes == net.summaries()

        assert _control(control.port, "/nodes/1/stop")[1] == {"node": 1, "running": False}
        assert (
            rpc(net.nodes[0].rpc_url, f"maxima action:send to:{net.nodes[1].address} application:a data:0x01").json()[
                "response"
            ]["error"]
            == "java.net.ConnectException: Connection refused"
        )
        assert _control(control.port, "/nodes/1/start")[1] == {"node": 1, "running": True}

        status, faults = _control(control.port, "/nodes/1/faults", {"delivery_delay": 0.1, "drop_deliveries": True})
        assert (status, faults) == (
            200,
            {"node": 1, "faults": {"drop_deliveries": True, "delivery_delay": 0.1, "webhook_delay": 0.0}},
        )
        assert _control(control.port, "/nodes/1/faults", {"nonsense": 1})[0] == 400
        assert _control(control.port, "/nodes/9/stop")[0] == 404
    finally:
        net.nodes[1].faults.drop_deliveries = False
        net.nodes[1].faults.delivery_delay = 0.0
        control.close()


@pytest.mark.slow
def test_the_management_command_prints_one_line_per_node_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "simnet", "--nodes", "2", "--block-interval", "0.5", "--state", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = [json.loads(process.stdout.readline()) for _ in range(2)]
        assert [line["node"] for line in lines] == [0, 1]
        assert list(lines[0]) == ["node", "rpc", "publickey", "address"]
        assert rpc(lines[1]["rpc"], "maxima").json()["response"]["publickey"] == lines[1]["publickey"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert (tmp_path / "chain.json").exists()
