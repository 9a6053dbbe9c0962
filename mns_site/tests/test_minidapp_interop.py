"""The MNS MiniDapp inside a real Minima node's MDS (interop mode, docs/interop.md): the zip ``make dapp`` builds,
installed over RPC in node 1's MDS with READ permission, driven in headless Chromium (``dapp/e2e/minidapp.mjs``):
the node's own MDS login, then the MiniDapp at the address the MiniHUB opens it with: set-up (connect, import a box
key), registration with live progress (the handshake over real Maxima from node 1 to node 0, the gateway's), and
the letter the ``mns`` command line sent to that name, read and verified. The gateway is served by gunicorn with a
real Celery worker on a private Redis, with node 0 as its node.

Skipped without ``MNS_INTEROP_NODES`` (CI has no node), and when node 1 runs no MDS (start the nodes with
``--mds-password``); the node says its MDS address and password in ``mds action:list``.
"""

import json
import secrets
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from mns_site.tests.dapp_support import CHROMIUM, World, carries, dapp_world, node_tools, run_flow
from testsupport import REPO
from testsupport.nodes import RealMDS, real_mds, requires_interop

pytestmark = [pytest.mark.slow]

HOOK_SECRET = "minidapp-interop-" + "s" * 40
PLAIN = "Hello dana, alice here on the command line, through real nodes. Treffpunkt 9C2"
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, django_db_blocker: Any) -> Iterator[World]:
    requires_interop()
    tmp = tmp_path_factory.mktemp("minidapp-interop")
    # alice (the command line) shares node 1 with dana (the MiniDapp): two real nodes are enough.
    with dapp_world(tmp, django_db_blocker, cli=("alice", 1), hook_secret=HOOK_SECRET, nodes=2, interop=True) as world:
        yield world


@pytest.fixture(scope="module")
def mds(world: World) -> RealMDS:
    found = real_mds(world.net.nodes[1].rpc_url)
    if found is None:
        pytest.skip("interop mode: node 1 runs no MDS (start the nodes with --mds-password, docs/interop.md)")
    return found


def test_a_user_sets_up_registers_and_reads_in_the_minidapp_inside_a_real_nodes_mds(world: World, mds: RealMDS) -> None:
    for args in (("init",), ("register", "alice")):
        run = world.mns(*args)
        assert run.returncode == 0, run.stdout + run.stderr
    installed = mds.install(world.built.zip, "read")
    try:
        result = drive(world, mds, installed.uid)
    finally:
        mds.uninstall(installed.uid)  # the node keeps its MiniDapps: leave it as it was

    assert result["hubAfterLogin"]["url"].startswith(mds.url), result["hubAfterLogin"]
    assert (result["transport"], result["rpcFieldsHidden"]) == ("mds", True)
    assert result["nodeStatus"].startswith("Connected. Your node's identity key:")
    assert result["gatewayStatus"] == f"Gateway: {world.url} (the gateway you gave)."
    assert "your node answers the gateway's challenge over Maxima" in result["progress"]
    assert result["progress"][-1] == "dana is yours"
    assert result["whoamiAfterReload"] == "you are dana"
    assert result["read"] == {"from": "alice", "verified": "verified", "subject": "Real MDS", "body": PLAIN}

    # the page spoke only to its node's MDS (the gateway was reached by the node), and nothing secret left it
    made = [r for r in result["requests"] if r["url"] not in result["blocked"]]
    assert all(r["url"].startswith(mds.url) for r in made), {r["url"][:60] for r in made}
    assert any("/mdscommand_/netpost?" in r["url"] for r in made)
    for request in made:
        for secret in (PLAIN, PASSPHRASE):
            assert not carries(request, secret), (request["method"], request["url"][:120])


def drive(world: World, mds: RealMDS, uid: str) -> dict[str, Any]:
    """Run the browser flow up to reading the letter; screenshots in var/screenshots/minidapp-interop/."""
    screenshots = settings.VAR_DIR / "screenshots" / "minidapp-interop"
    shutil.rmtree(screenshots, ignore_errors=True)
    tmp = world.homes.parent
    config = {
        "hub": {"url": mds.url, "password": mds.password},
        "until": "read",
        "pageUrl": mds.page_url(uid),
        "gatewayUrl": world.url,
        "chromium": CHROMIUM,
        "screenshots": str(screenshots),
        "output": str(tmp / "minidapp-flow.json"),
        "passphrase": PASSPHRASE,
        "boxPrivateHex": "0x" + secrets.token_bytes(32).hex().upper(),
        "name": "dana",
        "replyText": "",
        "send": {
            "argv": [sys.executable, "-m", "mns_client", "send", "dana", "--subject", "Real MDS", "--from", "alice"],
            "env": world.mns_env("alice", 1),
            "cwd": str(REPO),
            "text": PLAIN,
        },
    }
    (tmp / "minidapp-config.json").write_text(json.dumps(config))
    node, _ = node_tools()
    flow = run_flow([node, "e2e/minidapp.mjs", str(tmp / "minidapp-config.json")], timeout=600)
    result = json.loads((tmp / "minidapp-flow.json").read_text())
    (screenshots / "browser-log.txt").write_text("\n".join(result["console"]) + "\n")
    assert flow.returncode == 0, f"{result.get('failure')}\n{flow.stderr[-3000:]}"
    return result
