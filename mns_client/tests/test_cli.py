"""The command line in-process (``main(argv)``): exit codes, error output, options, and ``init`` on a simnet node.
The flows against a real gateway are in ``test_cli_e2e.py``."""

import argparse
import contextlib
import http.server
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mns_client.cli import (
    EXIT_CODES_HELP,
    _protect_ids,
    _safe,
    build_parser,
    exit_code_for,
    main,
)
from mns_client.config import ConfigError
from mns_client.protocol.envelope import EnvelopeInvalid
from mns_client.protocol.errors import CodecError, NodeAuthError, NodeStartingUp, NodeUnreachable, RPCError
from mns_client.protocol.names import NameRefused
from mns_client.protocol.statements import StatementInvalid
from mns_client.sdk import (
    DeliveryError,
    GatewayRefused,
    GatewayUnreachable,
    HandshakeFailed,
    NotVerified,
    Unavailable,
)
from simnet import SimNetwork
from testsupport import REPO
from testsupport.processes import free_port


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MNS_HOME", "MNS_NODE", "MNS_NODE_PASSWORD", "MNS_GATEWAY", "MNS_NAME", "MNS_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MNS_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def net() -> Iterator[SimNetwork]:
    with SimNetwork(nodes=1, block_interval=0.5, rpc_password="node-pw") as network:
        yield network


@pytest.fixture
def policy_server() -> Iterator[str]:
    """A stand-in gateway on loopback that serves only its policy, ``/.well-known/mns.json``."""
    yield from _policy_server(delay=0)


@pytest.fixture
def slow_policy_server() -> Iterator[str]:
    """The same, answering after 3.5 s: a wait long enough for a progress line."""
    yield from _policy_server(delay=3.5)


def _policy_server(*, delay: float) -> Iterator[str]:
    policy = json.dumps({"name": "stand-in", "maxima": {"publickey": "0x3081", "address": "MxG18@127.0.0.1:1"}})

    class Policy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(delay)
            found = self.path == "/.well-known/mns.json"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(policy.encode() if found else b'{"error": "not_found", "detail": "Nothing is here."}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Policy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NodeUnreachable("maxima", "refused"), 2),
        (NodeAuthError("maxima", "401"), 2),
        (NodeStartingUp("maxima", "starting"), 2),
        (RPCError("send", "Insufficient funds"), 2),
        (GatewayUnreachable("down"), 3),
        (GatewayRefused(503, "gateway_not_ready", "not ready"), 3),
        (GatewayRefused(409, "name_taken", "taken"), 4),
        (GatewayRefused(429, "throttled", "slow down"), 4),
        (NameRefused("name_invalid", "bad"), 4),
        (HandshakeFailed("challenge_expired", "expired"), 5),
        (NotVerified("signature_invalid", "bad"), 6),
        (EnvelopeInvalid("envelope_signature_invalid", "bad"), 6),
        (StatementInvalid("signature_invalid", "bad"), 6),
        (DeliveryError("refused", "blocked", reason="blocked"), 7),
        (Unavailable("not_published", "later"), 8),
        (ConfigError("chmod"), 1),
        (CodecError("bad address"), 1),
    ],
)
def test_each_failure_has_its_documented_exit_code(error: BaseException, code: int) -> None:
    assert exit_code_for(error) == code
    assert f"\n  {code}  " in EXIT_CODES_HELP


def test_help_documents_the_exit_codes_and_exits_0() -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--help"])

    assert exited.value.code == 0
    assert run("--help")[0] == 0


def test_every_argument_of_every_command_has_help_text() -> None:
    parser = build_parser()
    [commands] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    missing = [
        f"{name} {action.metavar or action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not action.help
    ]
    assert missing == []


def test_the_scheme_help_says_what_nacl_and_rsa_stand_for() -> None:
    out = io.StringIO()
    with pytest.raises(SystemExit), contextlib.redirect_stdout(out):
        build_parser().parse_args(["send", "--help"])
    text = " ".join(out.getvalue().split())
    assert "nacl (= nacl-sealedbox-v1, the default)" in text
    assert "rsa (= maxima-rsa-v1)" in text


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["send"], ["pay", "alice"], ["forward", "--auto", "maybe"]])
def test_bad_arguments_exit_1(argv: list[str]) -> None:
    assert run(*argv)[0] == 1


def test_a_command_without_a_gateway_says_how_to_give_one() -> None:
    code, out, err = run("whois", "alice")

    assert code == 1
    assert "--gateway" in err
    assert out == ""


def test_errors_are_one_json_object_on_stdout_with_json() -> None:
    code, out, err = run("whois", "alice", "--json", "--gateway", f"http://127.0.0.1:{free_port()}")

    assert code == 3
    assert json.loads(out) == {
        "error": "gateway_unreachable",
        "detail": json.loads(out)["detail"],
        "exit_code": 3,
    }
    assert err == ""


def test_options_may_come_before_or_after_the_command() -> None:
    before = build_parser().parse_args(["--json", "--gateway", "http://g", "whois", "alice"])
    after = build_parser().parse_args(["whois", "alice", "--json", "--gateway", "http://g"])

    assert (before.json, before.gateway) == (after.json, after.gateway) == (True, "http://g")


def test_a_message_id_that_starts_with_a_dash_is_read_as_the_id() -> None:
    parser = build_parser()

    for argv in (["read", "-AbCdEfGh1234"], ["delete", "--json", "-AbCdEfGh1234", "--handshake"]):
        assert parser.parse_args(_protect_ids(parser, argv)).message_id == "-AbCdEfGh1234"


def test_text_from_strangers_cannot_drive_the_terminal() -> None:
    hostile = "ok\x1b[2J\x07\u202egnp.exe\r"

    assert _safe(hostile) == "ok\ufffd[2J\ufffd\ufffdgnp.exe\ufffd"
    assert _safe("line 1\nline\t2", multiline=True) == "line 1\nline\t2"


# ------------------------------------------------------------------------------------------------ init


def test_init_creates_the_box_key_and_shows_the_nodes_identity(net: SimNetwork, tmp_path: Path) -> None:
    node = net.nodes[0]

    code, out, err = run("init", "--node", node.rpc_url, "--node-password", "node-pw", "--json")

    assert code == 0, err
    data = json.loads(out)
    assert data["node"]["publickey"] == node.publickey_hex
    assert data["box_key_created"] is True
    home = tmp_path / "home"
    assert {oct(p.stat().st_mode & 0o777) for p in home.iterdir()} == {"0o600"}
    private = json.loads((home / "box-keys.json").read_text())["keys"][0]["private"]
    assert private[2:] not in out.upper()
    assert "node-pw" not in out


def test_init_twice_keeps_the_box_key_and_remembers_the_node(net: SimNetwork) -> None:
    node = net.nodes[0]
    first = json.loads(run("init", "--node", node.rpc_url, "--node-password", "node-pw", "--json")[1])

    code, out, _ = run("init", "--json")  # the node and its password come from config.json now

    assert code == 0
    assert json.loads(out)["box_key"] == first["box_key"]
    assert json.loads(out)["box_key_created"] is False


def test_a_wrong_node_password_exits_2_without_echoing_it(net: SimNetwork) -> None:
    code, out, err = run("init", "--node", net.nodes[0].rpc_url, "--node-password", "not-the-pw")

    assert code == 2
    assert "refused the RPC password" in err
    assert "not-the-pw" not in out + err


def test_an_unreachable_node_exits_2() -> None:
    code, _, err = run("init", "--node", f"http://127.0.0.1:{free_port()}")

    assert code == 2
    assert "cannot reach your Minima node" in err


def test_init_with_the_gateway_down_writes_nothing_and_says_so(net: SimNetwork, tmp_path: Path) -> None:
    gateway = f"http://127.0.0.1:{free_port()}"

    code, out, err = run("init", "--node", net.nodes[0].rpc_url, "--node-password", "node-pw", "--gateway", gateway)

    assert code == 3
    assert err.startswith("mns: ")
    assert err.rstrip().endswith(f"(nothing was written to {tmp_path / 'home'})")
    assert out == ""
    assert not (tmp_path / "home").exists()


def test_init_with_the_node_down_writes_nothing(tmp_path: Path) -> None:
    code, out, _ = run("init", "--node", f"http://127.0.0.1:{free_port()}", "--json")

    assert code == 2
    assert json.loads(out)["detail"].endswith(f"(nothing was written to {tmp_path / 'home'})")
    assert not (tmp_path / "home").exists()


def test_init_remembers_a_gateway_given_through_mns_gateway_as_it_does_one_given_with_the_option(
    net: SimNetwork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy_server: str
) -> None:
    monkeypatch.setenv("MNS_GATEWAY", policy_server)
    assert run("init", "--node", net.nodes[0].rpc_url, "--node-password", "node-pw")[0] == 0
    monkeypatch.delenv("MNS_GATEWAY")

    code, out, err = run("init", "--json")  # nothing given this time: all from config.json

    assert code == 0, err
    assert json.loads(out)["gateway"] == {"url": policy_server, "identity": "0x3081", "address": "MxG18@127.0.0.1:1"}
    saved = json.loads((tmp_path / "home" / "config.json").read_text())
    assert saved["gateway"] == policy_server


def test_a_wait_longer_than_two_seconds_shows_its_age_on_stderr_and_leaves_json_alone(
    net: SimNetwork, slow_policy_server: str
) -> None:
    gateway = slow_policy_server
    argv = ["init", "--node", net.nodes[0].rpc_url, "--node-password", "node-pw", "--gateway", gateway]

    code, out, err = run(*argv, "--json", "--verbose")

    assert code == 0, err
    assert re.search(rf"^… asking {gateway} for its policy… \d+ s$", err, re.MULTILINE), err
    assert json.loads(out)["gateway"]["url"] == gateway


def test_a_secret_file_others_can_read_is_refused(net: SimNetwork, tmp_path: Path) -> None:
    assert run("init", "--node", net.nodes[0].rpc_url, "--node-password", "node-pw")[0] == 0
    os.chmod(tmp_path / "home" / "box-keys.json", 0o644)

    code, _, err = run("init")

    assert code == 1
    assert "chmod 600" in err


def test_the_client_needs_no_django() -> None:
    probe = "import sys, mns_client.cli, mns_client.sdk, mns_client.demo; sys.exit('django' in sys.modules)"

    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, check=False, timeout=60)

    assert done.returncode == 0, done.stderr.decode()
