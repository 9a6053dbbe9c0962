"""The MNS Dapp in a real browser: headless Chromium (the machine's ``/usr/bin/chromium``, driven by the npm package
``playwright-core`` from ``dapp/e2e/flow.mjs``) against the gateway served by gunicorn, a real Celery worker with
beat on a private Redis, and simnet as everybody's Minima node.

Node 0 is the gateway's, node 1 dana's (she uses the Dapp), node 2 bob's (he uses the ``mns`` command line), node 3
has an RPC password (a browser cannot use it: the page must say so). dana sets up, registers, reads what bob sent,
replies, looks at her settings, deletes and forwards; screenshots go to ``$MNS_VAR_DIR/screenshots/dapp/``. Every
request the page made is then checked: no plaintext and no private key left the browser, except the letter dana
wrote, which only her own node saw, to sign it (``maxsign``).
"""

import json
import secrets
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from mns_site.tests.dapp_support import CHROMIUM, World, carries, dapp_world, node_tools, run_flow
from simnet import SimNetwork
from testsupport import REPO

pytestmark = [pytest.mark.slow]

HOOK_SECRET = "dapp-e2e-" + "s" * 40
PLAIN = "Hello dana, the CLI here: the meeting moved to 3 pm. Geheimnis 7Q2"
REPLY = "Thanks bob! Reply from the browser, written in the Dapp. Kennwort 9Z4"
PASSPHRASE = "correct horse battery staple"
RPC_PASSWORD = "node-3-rpc-secret"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, django_db_blocker: Any) -> Iterator[World]:
    def with_password(net: SimNetwork) -> None:
        net.nodes[3].runtime_password = RPC_PASSWORD

    tmp = tmp_path_factory.mktemp("dapp-e2e")
    with dapp_world(
        tmp,
        django_db_blocker,
        cli=("bob", 2),
        hook_secret=HOOK_SECRET,
        nodes=4,
        prepare=with_password,
        MNS_HANDSHAKE_TTL_SECONDS="60",
    ) as world:
        yield world


def test_a_user_sets_up_registers_reads_replies_and_deletes_in_the_browser(world: World) -> None:
    for args in (("init",), ("register", "bob")):
        run = world.mns(*args)
        assert run.returncode == 0, run.stdout + run.stderr
    box_private = secrets.token_bytes(32)
    screenshots = settings.VAR_DIR / "screenshots" / "dapp"
    shutil.rmtree(screenshots, ignore_errors=True)
    tmp = world.homes.parent
    config = {
        "url": world.url,
        "rpcUrl": world.net.nodes[1].rpc_url,
        "passwordNode": {"url": world.net.nodes[3].rpc_url, "password": RPC_PASSWORD},
        "chromium": CHROMIUM,
        "userDataDir": str(tmp / "chromium-profile"),
        "screenshots": str(screenshots),
        "output": str(tmp / "flow.json"),
        "passphrase": PASSPHRASE,
        "boxPrivateHex": "0x" + box_private.hex().upper(),
        "name": "dana",
        "replyText": REPLY,
        "record": {
            "data": {"website": "https://dana.example/"},
            "offerTo": "bob",
            "accept": {
                "argv": [sys.executable, "-m", "mns_client", "accept-transfer", "dana", "--json"],
                "env": world.mns_env("bob", 2),
                "cwd": str(REPO),
            },
        },
        "send": {
            "argv": [sys.executable, "-m", "mns_client", "send", "dana", "--subject", "Meeting", "--from", "bob"],
            "env": world.mns_env("bob", 2),
            "cwd": str(REPO),
            "text": PLAIN,
        },
    }
    (tmp / "flow-config.json").write_text(json.dumps(config))
    node, _ = node_tools()
    flow = run_flow([node, "e2e/flow.mjs", str(tmp / "flow-config.json")], timeout=300)
    result = json.loads((tmp / "flow.json").read_text())
    assert flow.returncode == 0, f"{result.get('failure')}\n{flow.stderr[-3000:]}"

    # what dana saw
    assert "A node with an RPC password cannot be used from a web page" in result["passwordNode"]
    assert result["read"] == {"from": "bob", "verified": "verified", "subject": "Meeting", "body": PLAIN}
    assert result["receiptSent"].startswith("Sent to bob: your node delivered it to the gateway")
    assert result["receiptStatus"] == "stored"  # the gateway's receipt, polled from GET /receipts/{id}
    assert result["receipt"].startswith("Stored in bob's mailbox (delivery ")
    assert "your node answers the gateway's challenge over Maxima" in result["progress"]
    assert result["progress"][-1] == "dana is yours"
    assert "Messages" in result["quota"]
    assert result["forward"] == "There is nothing to forward."
    assert result["letterHiddenAfterDelete"] is True  # a deleted letter does not come back
    assert result["wrongPassphrase"] == "The passphrase does not open your keys."
    # dana's record: a data record and an offer of her name to bob's key, signed by her node in the browser; the
    # offer withdrawn, then made again and accepted by bob with the CLI (the browser's statements are the CLI's)
    assert result["dataSaved"] == "Your data record is published."
    assert '{"website":"https://dana.example/"}' in result["recordView"]
    assert result["offered"].startswith("dana is offered to ")
    assert "offered to" in result["offerView"]
    assert (result["withdrawn"], result["withdrawnView"].endswith("Transfer-")) == ("The offer is withdrawn.", True)
    accepted = json.loads(result["accepted"])
    assert (accepted["owner"], accepted["data"], accepted["transfer"]) == (world.net.nodes[2].publickey_hex, None, None)
    assert result["afterAccept"] == "Your node does not hold dana any more."
    with urllib.request.urlopen(world.url + "/api/v1/names/dana/history", timeout=30) as answer:
        history = [entry["statement"]["op"] for entry in json.load(answer)["results"]]
    assert history == ["register", "update", "transfer", "update", "transfer", "accept"]
    assert result["keyFile"]["kind"] == "mns-box-keys"  # encrypted: no key in the clear
    assert box_private.hex() not in json.dumps(result["keyFile"]).lower()
    shots = sorted(path.name for path in screenshots.glob("*.png"))
    assert shots[0] == "01-node-with-password.png"
    assert {"02-setup.png", "06-read.png", "07-replied.png", "09-deleted.png"} <= set(shots)

    # bob reads dana's reply with the CLI: it was encrypted in the browser to his box key and stored
    inbox = world.mns("inbox", "--json")
    assert inbox.returncode == 0, inbox.stderr
    [message] = json.loads(inbox.stdout)["messages"]
    assert message["sender"].startswith(world.net.nodes[1].publickey_hex[:24])
    read = world.mns("read", message["id"], "--json")
    assert read.returncode == 0, read.stderr
    assert REPLY in read.stdout

    # no plaintext and no private key left the browser
    made = result["requests"]
    node_rpc = world.net.nodes[1].rpc_url
    to_node = [r for r in made if r["url"].startswith(node_rpc)]
    own_nodes = (node_rpc, world.net.nodes[3].rpc_url)  # dana's nodes: the one she uses and the one with a password
    elsewhere = [r for r in made if not r["url"].startswith(own_nodes)]
    assert to_node
    assert any(r["url"].startswith(world.url + "/api/v1/") for r in elsewhere)
    assert any(r["body"].startswith("maxima action:send") for r in to_node)  # the check below has teeth
    for request in made:
        for secret in (box_private, PLAIN, PASSPHRASE):
            assert not carries(request, secret), (request["method"], request["url"][:120])
    for request in elsewhere:  # the gateway never sees what dana wrote, nor her node's password
        for secret in (REPLY, RPC_PASSWORD, f"minima:{RPC_PASSWORD}"):
            assert not carries(request, secret), (request["method"], request["url"][:120])
    signed_by_node = [r for r in to_node if carries(r, REPLY)]
    assert [r["body"].split(" ")[0] for r in signed_by_node] == ["maxsign"]  # dana's own node signs her letter
