"""The MNS MiniDapp inside a node's MiniDapp system: the zip ``make dapp`` builds, installed in simnet's MDS with
READ permission, driven in headless Chromium (``dapp/e2e/minidapp.mjs``) through every screen with screenshots,
against the gateway served by gunicorn with a real Celery worker on a private Redis; then a second, tiny MiniDapp
resolves a name through ``MDS.api`` in the shape of Minima's own MNS MiniDapp.

Node 0 is the gateway's, node 1 dana's (she uses the MiniDapp in her node's MDS), node 2 alice's (she uses the ``mns``
command line). The page talks to nothing but its node's MDS (``/mdscommand_/``): its node fetches the gateway.

In interop mode (``MNS_INTEROP_NODES``, docs/interop.md) the same flow runs in real nodes' MDS: node 1 must run MDS
(``python -m interop.nodes start … --mds-password PW``; the node says its MDS address and password in
``mds action:list``). With two real nodes alice shares node 1 with dana. The MiniDapps installed on the real node are
uninstalled at the end. Screenshots: ``var/screenshots/minidapp/`` (simnet), ``var/screenshots/minidapp-interop/``.
"""

import json
import secrets
import shutil
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from mns_site.tests.dapp_support import CHROMIUM, World, carries, dapp_world, node_tools, run_flow
from testsupport import REPO
from testsupport.nodes import interop_mode, interop_urls

pytestmark = [pytest.mark.slow]

HOOK_SECRET = "minidapp-e2e-" + "s" * 40
PLAIN = "Hello dana, alice here on the command line. Treffpunkt 4B7"
REPLY = "Thanks alice! Written in the MiniDapp inside my node. Losung 8K1"
PASSPHRASE = "correct horse battery staple"
MDS_PASSWORD = "minidapp-e2e-hub"
GOOGLE_FONTS = ("https://fonts.googleapis.com/", "https://fonts.gstatic.com/")
# The second MiniDapp posts the answer it got to the test (MDS.net, from its node): a real node writes MDS.log only
# to its own log.
ASKER = """MDS.init(function (msg) {
  if (msg.event == "inited") {
    MDS.api.call("MNS mail", JSON.stringify({action: "GET", data: "alice"}), function (reply) {
      MDS.net.POST("__HEAR__", JSON.stringify(reply), function () {});
    });
  }
});
"""


def node_count() -> int:
    """Three simnet nodes; in interop mode the real ones given, up to three (at least two: fewer is a skip)."""
    return min(3, max(2, len(interop_urls()))) if interop_mode() else 3


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, django_db_blocker: Any) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("minidapp-e2e")
    nodes = node_count()
    with dapp_world(
        tmp,
        django_db_blocker,
        cli=("alice", nodes - 1),
        hook_secret=HOOK_SECRET,
        nodes=nodes,
        mds_password=MDS_PASSWORD,
        interop=True,
        MNS_HANDSHAKE_TTL_SECONDS="90",
    ) as world:
        yield world


@pytest.fixture(scope="module")
def dana_mds(world: World) -> Iterator[Any]:
    """Dana's node's MDS: simnet's, or the real node's (skipped with the reason when it runs none). A real node
    keeps its MiniDapps: the ones the tests installed are uninstalled at the end."""
    mds = world.net.nodes[1].mds
    if mds is None:
        pytest.skip("interop mode: node 1 runs no MDS (start the nodes with --mds-password, docs/interop.md)")
    before = {dapp["uid"] for dapp in mds.listed()} if interop_mode() else set()
    yield mds
    if interop_mode():
        for dapp in mds.listed():
            if dapp["uid"] not in before:
                mds.uninstall(dapp["uid"])


@pytest.fixture(scope="module")
def minidapp(world: World, dana_mds: Any) -> str:
    """The MNS MiniDapp installed in dana's node's MDS with READ permission: its uid."""
    return dana_mds.install(world.built.zip, "read").uid


class Heard(BaseHTTPRequestHandler):
    """What a MiniDapp posts to the test through its node (``MDS.net.POST``)."""

    bodies: list[bytes]

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hear() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback URL and the bodies posted to it."""
    bodies: list[bytes] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (Heard,), {"bodies": bodies}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/heard", bodies
    finally:
        server.shutdown()
        server.server_close()


def wait_for(condition: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def test_the_minidapp_zip_is_installable_and_names_what_mds_needs(world: World) -> None:
    with zipfile.ZipFile(world.built.zip) as archive:
        names = set(archive.namelist())
        conf = json.loads(archive.read("dapp.conf"))
    assert {"dapp.conf", "index.html", "service.js", "mds-client.js", conf["icon"]} <= names
    assert "mds.js" not in names  # a node answers that name with its own library
    assert {key: conf[key] for key in ("name", "browser", "permission")} == {
        "name": "MNS mail",
        "browser": "internal",
        "permission": "read",
    }


def test_a_user_runs_every_screen_of_the_minidapp_inside_her_nodes_mds(
    world: World, dana_mds: Any, minidapp: str
) -> None:
    for args in (("init",), ("register", "alice")):
        run = world.mns(*args)
        assert run.returncode == 0, run.stdout + run.stderr
    box_private = secrets.token_bytes(32)
    screenshots = settings.VAR_DIR / "screenshots" / ("minidapp-interop" if interop_mode() else "minidapp")
    result = run_minidapp_flow(world, dana_mds, minidapp, box_private, screenshots)
    pending = dana_mds.pending

    # what dana saw, in her node's MDS: its hub let her in with the node's password, then the MiniDapp
    assert result["hubAfterLogin"] == "Login successful, you will be redirected."
    assert (result["transport"], result["rpcFieldsHidden"]) == ("mds", True)
    assert result["nodeStatus"].startswith("Connected. Your node's identity key:")
    assert result["gatewayStatus"] == f"Gateway: {world.url} (the gateway you gave)."
    assert "your node answers the gateway's challenge over Maxima" in result["progress"]
    assert result["progress"][-1] == "dana is yours"
    assert result["whoamiAfterReload"] == "you are dana"
    assert result["read"] == {"from": "alice", "verified": "verified", "subject": "In MDS", "body": PLAIN}
    assert (result["receiptStatus"], result["receipt"][:27]) == ("stored", "Stored in alice's mailbox (")
    assert result["formAfterSend"] == ["", "", ""]
    assert " B" in result["inboxRow"]
    assert "bytes" not in result["quota"]
    assert "16 MiB" in result["quota"]
    assert result["forward"] == "There is nothing to forward."
    assert result["letterHiddenAfterDelete"] is True  # a deleted letter does not come back
    assert all(width <= 390 for width in result["phoneWidths"].values()), result["phoneWidths"]
    shots = {path.name for path in screenshots.glob("*.png")}
    assert {"01-opened-in-mds.png", "02-setup.png", "03-registered.png", "07-replied.png", "phone-inbox.png"} <= shots
    assert pending == []  # READ permission: nothing waited for the user

    # the page spoke only to its node's MDS: the gateway was reached by the node (MDS.net through the relay). A real
    # node's login page also links Google's fonts: the browser refuses those (`blocked`), so nothing left loopback.
    assert all(
        url.startswith(("https://fonts.googleapis.com/", "https://fonts.gstatic.com/")) for url in result["blocked"]
    )
    made = [r for r in result["requests"] if r["url"] not in result["blocked"]]
    assert made
    assert all(r["url"].startswith(dana_mds.url) for r in made), {r["url"][:60] for r in made}
    commands = [r for r in made if "/mdscommand_/" in r["url"]]
    assert any("/mdscommand_/netpost?" in r["url"] for r in commands)
    assert not any(r["url"].startswith(world.url) for r in made)
    for request in made:  # no plaintext of what alice wrote, and neither the box key nor the passphrase
        for secret in (box_private, PLAIN, PASSPHRASE):
            assert not carries(request, secret), (request["method"], request["url"][:120])

    # alice reads dana's reply with the CLI: encrypted in the MiniDapp to her box key, stored at the gateway
    inbox = world.mns("inbox", "--json")
    assert inbox.returncode == 0, inbox.stderr
    [message] = json.loads(inbox.stdout)["messages"]
    read = world.mns("read", message["id"], "--json")
    assert REPLY in read.stdout


def run_minidapp_flow(world: World, mds: Any, uid: str, box_private: bytes, screenshots: Path) -> dict[str, Any]:
    """``dapp/e2e/minidapp.mjs`` on the MiniDapp ``uid`` of ``mds``: the hub login, then every screen; screenshots
    and the browser's console (``browser-log.txt``) in ``screenshots``."""
    shutil.rmtree(screenshots, ignore_errors=True)
    tmp = world.homes.parent
    alice = world.cli[1]
    config = {
        "hub": {"url": mds.url, "password": mds.password},
        "pageUrl": mds.page_url(uid),
        "gatewayUrl": world.url,
        "chromium": CHROMIUM,
        "screenshots": str(screenshots),
        "output": str(tmp / "minidapp-flow.json"),
        "passphrase": PASSPHRASE,
        "boxPrivateHex": "0x" + box_private.hex().upper(),
        "name": "dana",
        "replyText": REPLY,
        "send": {
            "argv": [sys.executable, "-m", "mns_client", "send", "dana", "--subject", "In MDS", "--from", "alice"],
            "env": world.mns_env("alice", alice),
            "cwd": str(REPO),
            "text": PLAIN,
        },
    }
    (tmp / "minidapp-config.json").write_text(json.dumps(config))
    node, _ = node_tools()
    flow = run_flow([node, "e2e/minidapp.mjs", str(tmp / "minidapp-config.json")], timeout=600)
    result = json.loads((tmp / "minidapp-flow.json").read_text())
    (screenshots / "browser-log.txt").write_text("\n".join(result.get("console", [])) + "\n")
    shutil.copy(tmp / "minidapp-flow.json", screenshots / "flow.json")  # what each step saw, and every request
    assert flow.returncode == 0, f"{result.get('failure')}\n{flow.stderr[-3000:]}"
    return result


def test_a_second_minidapp_resolves_a_name_through_mds_api(
    world: World, dana_mds: Any, minidapp: str, hear: tuple[str, list[bytes]]
) -> None:
    """As MiniDapps written for Minima's MNS do (alice registered, and the gateway set, in the test above)."""
    url, heard = hear
    asker = world.homes.parent / "asker.mds.zip"
    with zipfile.ZipFile(asker, "w") as archive:
        conf = {"name": "asker", "icon": "icon.png", "version": "1.0", "description": "asks MNS mail"}
        archive.writestr("dapp.conf", json.dumps(conf))
        archive.writestr("service.js", ASKER.replace("__HEAR__", url))
    dana_mds.install(asker, "read")
    assert wait_for(lambda: heard, timeout=60), "the asker posted nothing"
    reply = json.loads(heard[0])
    assert reply["status"] is True
    record = json.loads(reply["data"])
    assert sorted(record) == ["DATA", "DATAHEX", "FOUND", "LOCATION", "NAME", "OWNER", "TRANSFER", "UPDATED"]
    alice_key = world.net.nodes[world.cli[1]].publickey_hex
    assert (record["FOUND"], record["NAME"], record["LOCATION"], record["DATAHEX"]) == (
        True,
        "alice",
        "GATEWAY",
        "0x00",
    )
    assert record["OWNER"] == record["TRANSFER"]
    assert record["OWNER"].upper().endswith(alice_key[-40:].upper())
    data = json.loads(record["DATA"])
    assert data["statement"]["name"] == "alice"
    assert data["signature"].startswith("0x")
