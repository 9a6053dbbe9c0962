"""The MNS Dapp in a real browser: headless Chromium (the machine's ``/usr/bin/chromium``, driven by the npm package
``playwright-core`` from ``dapp/e2e/flow.mjs``) against the gateway served by gunicorn, a real Celery worker with
beat on a private Redis, and simnet as everybody's Minima node.

Node 0 is the gateway's, node 1 dana's (she uses the Dapp), node 2 bob's (he uses the ``mns`` command line), node 3
has an RPC password (a browser cannot use it: the page must say so). dana sets up, registers, reads what bob sent,
replies, looks at her settings, deletes and forwards; screenshots go to ``$MNS_VAR_DIR/screenshots/dapp/``. Every
request the page made is then checked: no plaintext and no private key left the browser, except the letter dana
wrote, which only her own node saw, to sign it (``maxsign``).
"""

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from conftest import _unavailable
from mns_site.tests.dapp_support import DAPP, build_dapp, node_tools
from simnet import SimNetwork
from testsupport import REPO
from testsupport.processes import RedisServer, free_port
from testsupport.stack import OPEN_THROTTLES, gateway_env, live_gateway, migrate

pytestmark = [pytest.mark.slow]

CHROMIUM = os.environ.get("MNS_TEST_CHROMIUM", "/usr/bin/chromium")  # the Debian package `chromium`
HOOK_SECRET = "dapp-e2e-" + "s" * 40
PLAIN = "Hello dana, the CLI here: the meeting moved to 3 pm. Geheimnis 7Q2"
REPLY = "Thanks bob! Reply from the browser, written in the Dapp. Kennwort 9Z4"
PASSPHRASE = "correct horse battery staple"
RPC_PASSWORD = "node-3-rpc-secret"


@dataclass
class World:
    net: SimNetwork
    url: str
    homes: Path

    def mns_env(self, who: str, index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MNS_", "DJANGO_"))}
        env.update(MNS_HOME=str(self.homes / who), MNS_GATEWAY=self.url, MNS_NODE=self.net.nodes[index].rpc_url)
        return env

    def mns(self, *args: str) -> subprocess.CompletedProcess:
        """``python -m mns_client ARGS`` as bob (node 2)."""
        return subprocess.run(
            [sys.executable, "-m", "mns_client", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=self.mns_env("bob", 2),
            timeout=180,
            check=False,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, django_db_blocker: Any) -> Iterator[World]:
    """The gateway on a database of its own (a fresh SQLite file, as the CLI's end-to-end test does)."""
    if not Path(CHROMIUM).is_file():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)")
    node_tools()
    if shutil.which("redis-server") is None:
        _unavailable("redis-server is not installed")
    tmp = tmp_path_factory.mktemp("dapp-e2e")
    built = build_dapp(tmp / "dapp")
    redis = RedisServer(free_port(), tmp)
    redis.start()
    with SimNetwork(nodes=4, block_interval=0.5) as net:
        net.nodes[3].runtime_password = RPC_PASSWORD
        with django_db_blocker.unblock():  # it reads the test database's settings
            env = gateway_env(
                net,
                tmp,
                redis_url=redis.url,
                hook_secret=HOOK_SECRET,
                MNS_DAPP_DIR=str(built.site),
                MNS_HANDSHAKE_TTL_SECONDS="60",
                DATABASE_URL=f"sqlite://{tmp / 'gateway.sqlite3'}",
                **OPEN_THROTTLES,
            )
        migrate(env)
        with live_gateway(net, tmp, env) as live:
            yield World(net, live.url, tmp / "homes")
    redis.stop()


def run_flow(args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    """Run the browser flow in its own process group, so a timeout also stops the Chromium it started."""
    with subprocess.Popen(
        args, cwd=DAPP, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as flow:
        try:
            out, err = flow.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(flow.pid, signal.SIGKILL)
            out, err = flow.communicate()
            pytest.fail(f"the browser flow took more than {timeout:.0f} s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(args, flow.returncode, out, err)


def encodings(secret: str | bytes) -> list[str]:
    """How a secret could appear in a request: as is, hex (both cases), base64, base64url, percent-encoded."""
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = [raw.hex().upper(), raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
    if isinstance(secret, str):
        forms += [secret, urllib.parse.quote(secret), urllib.parse.quote_plus(secret)]
    return [form.rstrip("=") for form in forms]


def carries(request: dict[str, Any], secret: str | bytes) -> bool:
    text = request["url"] + "\n" + request["body"] + "\n" + json.dumps(request["headers"])
    return any(form in text or form.lower() in text.lower() for form in encodings(secret))


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
