"""The RPC client against a fake node that answers with the real nodes' bytes (docs/vectors/maxima).

The fake is a tiny HTTP server on 127.0.0.1 that replays a fixture's exact body and status behind the node's own
LF-only headers (with the extra ``\\n`` after the body), or fixture 99's raw 401, and records every request. It is
the node, not the thing under test: each test checks both what the client sent and what it returned or raised.
"""

import base64
import hashlib
import json
import re
import socket
import socketserver
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mns_client.protocol.codecs import MaximaAddress, from_hex, to_hex
from mns_client.protocol.errors import (
    AddressUnresolved,
    CodecError,
    CommandPending,
    CommandSplit,
    DeliveryFailed,
    NodeAuthError,
    NodeStartingUp,
    NodeUnreachable,
    RPCError,
)
from mns_client.protocol.rpc import MaximaInfo, MinimaRPC, SendResult, format_command
from testsupport import maxima_fixture

NODE_HEAD = (
    "HTTP/1.1 {status}\nServer: HTTP RPC Server from Minima 1.3\nDate: Thu Nov 26 03:01:09 UTC 2026\n"
    "Content-type: text/plain\nContent-length: {length}\nAccess-Control-Allow-Origin: *\n\n"
)


def node_http(raw_response: str) -> bytes:
    """A 200 reply exactly as a node writes it: LF-only headers, Content-length without the trailing ``\\n``."""
    body = raw_response.encode("utf-8")
    assert body.endswith(b"\n")
    return NODE_HEAD.format(status="200 OK", length=len(body) - 1).encode("ascii") + body


def raw_401() -> bytes:
    return maxima_fixture("99-")["exchanges"]["wrong_password"]["raw_response_bytes_as_text"].encode("ascii")


def envelope_http(envelope: object) -> bytes:
    return node_http(json.dumps(envelope, separators=(",", ":")) + "\n")


# ------------------------------------------------------------------------------------------------ the fake


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeNode:
    replies: list[bytes | None] = field(default_factory=list)  # None: accept, read, never answer
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def answer(self, prefix: str) -> dict:
        """Queue the fixture's reply (its http_status, its exact raw_response); return the fixture."""
        fixture = maxima_fixture(prefix)
        self.replies.append(raw_401() if fixture["http_status"] == 401 else node_http(fixture["raw_response"]))
        return fixture

    def text(self) -> str:
        assert len(self.requests) == 1
        return self.requests[0].body.decode("ascii")


class _NodeHandler(socketserver.StreamRequestHandler):
    server: "_NodeServer"

    def handle(self) -> None:
        request_line = self.rfile.readline(1 << 20).decode("latin-1").rstrip("\r\n")
        headers = {}
        while (line := self.rfile.readline(1 << 20).decode("latin-1")) not in ("\r\n", "\n", ""):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.rfile.read(int(headers.get("content-length", "0")))
        method, path, _ = request_line.split(" ", 2)
        node = self.server.node
        node.requests.append(Recorded(method, path, headers, body))
        reply = node.replies.pop(0) if node.replies else b""
        if reply is None:
            node.release.wait(10)
            return
        self.wfile.write(reply)  # then the connection is closed, as the node does


class _NodeServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, node: FakeNode) -> None:
        super().__init__(("127.0.0.1", 0), _NodeHandler)
        self.node = node


@pytest.fixture
def node() -> Iterator[FakeNode]:
    fake = FakeNode()
    server = _NodeServer(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


def client(node: FakeNode, **options: object) -> MinimaRPC:
    options.setdefault("timeout", 5.0)
    return MinimaRPC(node.url, **options)  # type: ignore[arg-type]


def basic(user_password: str) -> str:
    return "Basic " + base64.b64encode(user_password.encode()).decode()


def request_of(prefix: str) -> dict:
    return maxima_fixture(prefix)["request"]


def params_of(prefix: str) -> dict:
    return maxima_fixture(prefix)["parsed"]["params"]


def response_of(prefix: str) -> object:
    return maxima_fixture(prefix)["parsed"]["response"]


# ---------------------------------------------------------------------------------------------- transport


def test_it_posts_one_command_as_a_text_body_and_reads_the_lf_only_reply_of_fixture_00(node):
    # given the node's exact bytes for "block" (LF-only headers, one extra \n after Content-length bytes)
    exchange = maxima_fixture("00-")["exchanges"]["post_status"]
    node.replies.append(exchange["raw_response_bytes_as_text"].encode("ascii"))

    result = client(node).command("block")

    sent = node.requests[0]
    assert (sent.method, sent.path, sent.body) == ("POST", "/", b"block")
    assert sent.headers["content-type"] == "text/plain"
    assert sent.headers["content-length"] == "5"
    assert "authorization" not in sent.headers
    assert result == {
        "block": "35",
        "hash": "0x0000A13BA3A8341EDB2E50BCB09DA936034471B1F003D95BE03E4F59D6D45E92",
        "timemilli": "1795662066010",
        "date": "Thu Nov 26 03:01:06 UTC 2026",
    }


def test_it_gets_the_command_in_the_path_like_fixture_00(node):
    exchange = maxima_fixture("00-")["exchanges"]["get_status"]
    node.replies.append(exchange["raw_response_bytes_as_text"].encode("ascii"))

    result = client(node, method="GET").block()

    sent = node.requests[0]
    assert (sent.method, sent.path, sent.body) == ("GET", "/block", b"")
    assert exchange["raw_request"].startswith("GET /block HTTP/1.1")
    assert result["block"] == "35"


def test_it_raises_rpc_error_for_a_failed_command_behind_http_200(node):
    exchange = maxima_fixture("00-")["exchanges"]["get_unknown"]
    node.replies.append(exchange["raw_response_bytes_as_text"].encode("ascii"))

    with pytest.raises(RPCError) as caught:
        client(node, method="GET").command("maxi")

    assert type(caught.value) is RPCError
    assert (caught.value.command, caught.value.message, caught.value.code) == ("maxi", "Command not found", "rpc_error")
    assert caught.value.reply == {"command": "maxi", "status": False, "pending": False, "error": "Command not found"}
    assert str(caught.value) == "maxi: Command not found"
    assert node.requests[0].path == "/maxi"


@pytest.mark.parametrize(
    ("prefix", "call", "message"),
    [
        ("20-", lambda rpc: rpc.command("maxi"), "Command not found"),
        ("21-", lambda rpc: rpc.command("maxima", action="bogus"), "Unknown Action : bogus"),
        ("22-", lambda rpc: rpc.command("maxima", action="info", foo="bar"), "Invalid parameter : foo"),
        (
            "23-",
            lambda rpc: rpc.command("maxima", action="send", publickey="0x1234", application="mns", data=b"\x01"),
            "No Contact found for publickey : 0x1234",
        ),
    ],
)
def test_it_raises_the_nodes_error_text_for_fixtures_20_to_23(node, prefix, call, message):
    node.answer(prefix)

    with pytest.raises(RPCError) as caught:
        call(client(node))

    assert node.text() == request_of(prefix)["body"]
    assert caught.value.message == message
    assert caught.value.reply["status"] is False


def test_it_keeps_the_whole_command_line_out_of_the_error_reply(node):
    # fixture 22: for "Invalid parameter" the node echoes the whole line in "command"; it may carry a private key
    node.answer("22-")

    with pytest.raises(RPCError) as caught:
        client(node).command("maxima", action="info", foo="bar")

    assert caught.value.command == "maxima"
    assert caught.value.reply["command"] == "maxima"
    assert caught.value.reply["params"] == {"action": "info", "foo": "bar"}


def test_it_redacts_an_echoed_private_key_in_an_error_reply(node):
    node.replies.append(
        envelope_http(
            {
                "command": "maxsign",
                "params": {"data": "0x00", "privatekey": "0x3082"},
                "status": False,
                "pending": False,
                "error": "boom",
            }
        )
    )

    with pytest.raises(RPCError) as caught:
        client(node).maxsign(b"\x00", privatekey=b"\x30\x82")

    assert caught.value.reply["params"] == {"data": "0x00", "privatekey": "***"}


def test_it_raises_node_starting_up_for_the_maxima_start_up_message(node):
    # the reply maxima.java gives before Maxima is ready: a "message" field, not "error"
    node.replies.append(envelope_http({"status": False, "message": "Maxima still starting up.."}))

    with pytest.raises(NodeStartingUp) as caught:
        client(node).maxima_info()

    assert (caught.value.code, caught.value.message) == ("node_starting_up", "Maxima still starting up..")
    assert node.text() == "maxima action:info"


def test_a_send_to_a_max_address_its_mls_does_not_know_raises_address_unresolved_fixture_177(node):
    fixture = node.answer("177-")
    to = fixture["parsed"]["params"]["to"]

    with pytest.raises(AddressUnresolved) as caught:
        client(node).maxima_send(to=to, application="test", data=b"\x01")

    assert (caught.value.code, caught.value.message) == ("address_unresolved", "MAX address invalid..")


def test_it_reads_the_message_field_of_a_failure_when_there_is_no_error_field(node):
    message = "Insufficient funds.. you only have 0"
    node.replies.append(
        envelope_http({"command": "tokencreate", "status": False, "pending": False, "message": message})
    )

    with pytest.raises(RPCError) as caught:
        client(node).tokencreate(name="mns-entry", amount=1)

    assert type(caught.value) is RPCError
    assert caught.value.message == message


def test_it_raises_command_pending_for_a_pending_reply(node):
    node.replies.append(
        envelope_http(
            {
                "command": "send",
                "status": False,
                "pending": True,
                "pendinguid": "0x01",
                "error": "This command needs to be confirmed and is now pending..",
            }
        )
    )

    with pytest.raises(CommandPending) as caught:
        client(node).tokens()

    assert caught.value.code == "command_pending"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ({"status": False}, "the command failed"),  # CMDHandler's own reply when the runner throws
        ({"command": "status", "response": {}}, "unexpected reply from the node"),
    ],
)
def test_it_raises_rpc_error_for_a_reply_without_a_true_status(node, reply, message):
    node.replies.append(envelope_http(reply))

    with pytest.raises(RPCError) as caught:
        client(node).status()

    assert caught.value.message == message


def test_it_raises_command_split_when_an_array_comes_back_for_one_command(node):
    # given the node's array reply of fixture 25, where a ";" split one send into two commands
    node.answer("25-")

    with pytest.raises(CommandSplit) as caught:
        client(node).command("block")

    assert caught.value.code == "command_split"
    assert caught.value.message == "one command was sent but 2 replies came back"


def test_it_raises_node_auth_error_for_a_wrong_password_and_sends_basic_auth_as_minima(node):
    # given fixture 99's raw 401: only a status line and a Server header, then the body
    node.answer("96-")

    with pytest.raises(NodeAuthError) as caught:
        client(node, password="wrong").command("block")

    sent = node.requests[0]
    raw_request = maxima_fixture("99-")["exchanges"]["wrong_password"]["raw_request"]
    assert sent.headers["authorization"] == basic(request_of("96-")["basic_auth"]) == "Basic bWluaW1hOndyb25n"
    assert f"Authorization: {sent.headers['authorization']}" in raw_request
    assert sent.body == b"block"
    assert caught.value.code == "node_auth_failed"
    assert caught.value.reply == {"error": "Authentication failure.."}


def test_it_raises_node_auth_error_without_a_password(node):
    node.answer("97-")

    with pytest.raises(NodeAuthError):
        client(node).command("block")

    assert "authorization" not in node.requests[0].headers


def test_it_authenticates_with_the_right_password(node):
    node.answer("98-")

    result = client(node, password="test").block()

    assert node.requests[0].headers["authorization"] == basic("minima:test")
    assert result == response_of("98-")


def test_it_raises_node_unreachable_when_the_connection_is_refused():
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(NodeUnreachable) as caught:
        MinimaRPC(f"http://127.0.0.1:{port}", timeout=2).status()

    assert caught.value.code == "node_unreachable"
    assert caught.value.message == "cannot reach the node (ConnectionError)"
    assert caught.value.__cause__ is None


def test_it_raises_node_unreachable_when_the_node_never_answers(node):
    node.replies.append(None)
    started = time.monotonic()

    with pytest.raises(NodeUnreachable) as caught:
        client(node, timeout=0.3).status()

    assert time.monotonic() - started < 3
    assert caught.value.message == "no answer within 0.3s"
    assert node.requests[0].body == b"status"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"", "cannot reach the node (ConnectionError)"),  # closed without a byte
        (b"hello\n", "cannot reach the node (ConnectionError)"),  # not HTTP
        (NODE_HEAD.format(status="500 Oops", length=2).encode() + b"{}\n", "unexpected HTTP status 500"),
        (node_http("<html>oops</html>\n"), "the node's reply is not a JSON object or array"),
        (node_http('"just a string"\n'), "the node's reply is not a JSON object or array"),
        (node_http("\xff\n").replace(b"\xc3\xbf", b"\xff"), "the node's reply is not a JSON object or array"),
    ],
)
def test_it_raises_node_unreachable_for_a_reply_that_is_not_a_node_reply(node, reply, message):
    node.replies.append(reply)

    with pytest.raises(NodeUnreachable) as caught:
        client(node).status()

    assert caught.value.message == message


def test_one_client_runs_many_requests_although_the_node_leaves_a_stray_newline_and_closes(node):
    for _ in range(3):
        node.answer("05-")

    rpc = client(node)

    results = [rpc.status(), rpc.status(), rpc.status()]

    assert results == [response_of("05-")] * 3
    assert [r.body for r in node.requests] == [b"status"] * 3


def test_it_does_not_follow_proxies_from_the_environment(node, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:1")
    monkeypatch.setenv("NO_PROXY", "")
    node.answer("05-")

    assert client(node).status() == response_of("05-")


def test_it_refuses_a_bad_url_or_method():
    with pytest.raises(ValueError, match="http"):
        MinimaRPC("127.0.0.1:9005")
    with pytest.raises(ValueError, match="POST or GET"):
        MinimaRPC("http://127.0.0.1:9005", method="PUT")  # type: ignore[arg-type]


def test_its_repr_shows_no_password():
    assert repr(MinimaRPC("http://127.0.0.1:9005/", password="s3cret")) == (
        "MinimaRPC('http://127.0.0.1:9005', method='POST', auth=True)"
    )


# ------------------------------------------------------------------------------------------ GET encoding


def test_a_get_encodes_hash_as_percent_23_exactly_like_fixture_66(node):
    node.answer("66-")
    maxaddress = params_of("66-")["maxaddress"]

    address = client(node, method="GET").maxextra_getaddress(maxaddress)

    expected_path = urllib.parse.urlsplit(request_of("66-")["url"]).path
    assert node.requests[0].path == expected_path
    assert "%23" in expected_path
    assert address == response_of("66-")["mlsresponse"]["address"]


def test_a_get_encodes_plus_as_percent_2b_so_the_node_does_not_read_a_space(node):
    # fixture 28: a literal + became a space; fixture 29: %2B kept it
    node.answer("29-")

    client(node, method="GET").command("maxsign", data="a+b")

    sent_path = node.requests[0].path
    assert "+" not in sent_path
    assert sent_path == "/maxsign%20data%3Aa%2Bb"
    assert urllib.parse.unquote(sent_path) == urllib.parse.unquote(request_of("29-")["path_as_sent"])


# -------------------------------------------------------------------------------------- refusing injection


@pytest.mark.parametrize(
    "value",
    [
        "a;b",
        ";",
        "hello;maxima action:send",
        "line\nbreak",
        "carriage\rreturn",
        "tab\there",
        "nul\x00",
        "\x7f",
        'say "hi"',
        '"quoted"',
        "h\u00e9llo w\u00f6rld MNS",
        "\u202e",
        "{}",
        '{"k":"a;b"}',
        "{ application:x",
        "[1,2]",
        "a}b",
        "a]b",
        "back\\slash",
        " leading",
        "trailing ",
        "a b:c",
        "MAX#0x01 maxima:1",
        ":",
        ":::",
    ],
)
def test_it_refuses_an_unsafe_text_value_before_any_io(node, value):
    with pytest.raises(CodecError):
        client(node).command("maxima", action="send", to="Mx@127.0.0.1:9001", application="mns", data=value)

    assert node.requests == []


def test_a_value_of_colons_only_is_refused_because_the_nodes_fast_path_would_drop_it():
    # "maxima data::" -> the fast splitter reads "data", ":", ":" and never completes the pair
    assert node_reads("maxima data::") == [("maxima", {})]
    assert node_reads("maxima data::a") == [("maxima", {"data": ":a"})]
    assert format_command("maxima", {"data": ":a"}) == "maxima data::a"
    with pytest.raises(CodecError, match="colons"):
        format_command("maxima", {"data": ":"})


def test_it_refuses_a_semicolon_in_a_value(node):
    # the exact request of fixture 25 can no longer be made
    with pytest.raises(CodecError, match=";"):
        client(node).command("maxima", action="send", application="mns", data='{"k":"a;b"}')
    with pytest.raises(CodecError):
        client(node).command("maxima", action="send", application="mns", data={"k": "a;b"})

    assert node.requests == []


@pytest.mark.parametrize(
    "value",
    [
        {"k": "a b"},
        {"k": "a;b"},
        {"k": 'a"b'},
        {"k": "a}b"},
        {"k": "a]b"},
        {"k": "caf\u00e9"},
        {"k": "tab\t"},
        {"k": 1.5},
        {1: "x"},
        {"a b": "x"},
        ["a", {"k": "[x]"}],
        {"k": b"bytes"},
    ],
)
def test_it_refuses_json_values_whose_strings_could_change_the_split(node, value):
    with pytest.raises(CodecError):
        client(node).command("send", state=value)

    assert node.requests == []


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("maxima;block", {}),
        ("MAXIMA", {}),
        ("", {}),
        ("max ima", {}),
        ("maxima", {"Action": "info"}),
        ("maxima", {"act ion": "info"}),
        ("maxima", {"action;x": "info"}),
        ("maxima", {"action": 1.5}),
        ("maxima", {"action": object()}),
    ],
)
def test_it_refuses_a_bad_command_or_parameter_name_or_type(node, name, params):
    with pytest.raises(CodecError):
        client(node).command(name, **params)

    assert node.requests == []


@pytest.mark.parametrize("char", [chr(c) for c in range(0x300)] + ["\u2028", "\ufeff", "\U0001f600"])
def test_each_character_in_a_value_is_allowed_exactly_when_printable_ascii_and_none_of_the_splitters(char):
    # A text value may hold the space; a string inside a JSON value may not. Each refusal names its reason.
    printable, splitter = " " <= char <= "~", char in ';"{}[]\\'
    if printable and not splitter:
        assert format_command("x", {"data": f"a{char}b"}).startswith("x data:")
    else:
        with pytest.raises(CodecError, match="ASCII" if not printable else "cannot contain"):
            format_command("x", {"data": f"a{char}b"})
    if printable and not splitter and char != " ":
        assert format_command("x", {"data": {"k": f"a{char}b"}}) == f'x data:{{"k":"a{char}b"}}'
    else:
        with pytest.raises(CodecError, match="JSON strings"):
            format_command("x", {"data": {"k": f"a{char}b"}})


def test_it_refuses_non_ascii_text_even_though_a_get_could_carry_it(node):
    # fixtures 33/36 sent UTF-8 text by GET; the client sends hex instead (maxsign takes bytes)
    with pytest.raises(CodecError, match="ASCII"):
        client(node, method="GET").command("maxsign", data="h\u00e9llo")

    assert node.requests == []


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (b"\x00\xff", "0x00FF"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-7, "-7"),
        ("", '""'),
        ("plain", "plain"),
        ("two words", '"two words"'),
        ("http://127.0.0.1:8991/hook", "http://127.0.0.1:8991/hook"),
        ("MAX#0xAB#Mx1@h:1", "MAX#0xAB#Mx1@h:1"),
        ("a+b%20c", "a+b%20c"),
        ({"0": "0xAB", "2": "1"}, '{"0":"0xAB","2":"1"}'),
        (["a", 1, True, None], '["a",1,true,null]'),
    ],
)
def test_it_formats_safe_values_exactly(value, sent):
    assert format_command("x", {"data": value, "skipped": None}) == f"x data:{sent}"


# A port of CommandRunner.runMultiCommand / getCommand / splitStringJSON / splitterQuotedPattern (Minima 1.0.45),
# checked below against the real lines of fixtures 25, 81, 84 and 88, then used to show that whatever a caller
# passes, either the client refuses it or the node reads back exactly one command with exactly those values.

_JAVA_SPACE = "".join(chr(c) for c in range(33))
_JAVA_NON_SPACE = re.compile(r'"([^"]*)"|([^ \t\n\x0b\f\r]+)')


def _trim(text: str) -> str:
    return text.strip(_JAVA_SPACE)


def _fast_split(line: str) -> list[str] | None:
    spaced = _trim(line).replace(":", " : ")
    tokens = [m.group(1) if m.group(1) is not None else m.group(2) for m in _JAVA_NON_SPACE.finditer(spaced)]
    final, pair, name_found = [tokens[0]] if tokens else [], "", False
    for token in tokens[1:]:
        if not name_found:
            if _trim(token) == ":":
                return None
            name_found, pair = True, token
        elif _trim(token) == ":":
            pair += ":"
        else:
            name_found, pair = False, pair + token
            final.append(pair)
    return final


def _slow_split(line: str) -> list[str]:
    tokens, current, nesting, quoted = [], "", 0, False
    for char in _trim(line):
        if char == " " and not quoted and nesting == 0:
            if current:
                tokens.append(_trim(current))
            current = ""
        elif char == '"' and nesting == 0:
            quoted = not quoted
        else:
            nesting += (char in "{[") - (char in "}]")
            current += char
    if current:
        tokens.append(_trim(current))
    return tokens


def _node_command(command: str) -> tuple[str, dict]:
    split = None
    if ":\\" not in command and "{" not in command and "[" not in command:
        split = _fast_split(command)
    split = split if split is not None else _slow_split(command)
    name, params = split[0].lower(), {}
    for token in split[1:]:
        key, sep, value = token.partition(":")
        assert sep, f"Invalid parameters for {name} @ {token}"
        key, value = _trim(key), _trim(value)
        if (value[:1], value[-1:]) in (("{", "}"), ("[", "]")) and name != "txnstate":
            params[key] = json.loads(value)
        else:
            params[key] = value[1:] if value.startswith('"') else value
            params[key] = params[key][:-1] if params[key].endswith('"') else params[key]
    return name, params


def node_reads(line: str) -> list[tuple[str, dict]]:
    return [_node_command(_trim(part)) for part in line.split(";") if part]


def as_node_text(value: object) -> object:
    """What the node stores for a parameter value: the text as given, parsed JSON, or the formatted text."""
    if isinstance(value, bytes):
        return to_hex(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return value


@pytest.mark.parametrize("prefix", ["10-", "14-", "31-", "60-", "63-", "67-", "70-", "77-", "80-", "81-", "84-", "90-"])
def test_the_tokenizer_model_reads_real_request_lines_as_the_node_did(prefix):
    fixture = maxima_fixture(prefix)

    assert node_reads(fixture["request"]["body"]) == [(fixture["parsed"]["command"], fixture["parsed"]["params"])]


def test_the_tokenizer_model_splits_fixture_25_and_reads_fixture_88_like_the_node():
    split = maxima_fixture("25-")
    rotation = maxima_fixture("88-")

    first, second = split["parsed"]
    assert node_reads(split["request"]["body"]) == [(first["command"], first["params"]), (second["command"], {})]
    assert node_reads(rotation["request"]["body"]) == [(e["command"], e["params"]) for e in rotation["parsed"]]


_STRUCTURE = ' :";{}[]a\\\n\t\x00\u00e9#+'  # the characters that decide how the node splits a line
_TRICKY = " \t\n\r\x00\x0b;\"'{}[]\\:#@+%/=,.-_~<>|&*()!?`^$aZ09\u00e9\u2028\U0001f600"
_text_values = st.one_of(
    st.text(alphabet=st.sampled_from(_STRUCTURE), max_size=6), st.text(alphabet=st.sampled_from(_TRICKY), max_size=12)
)
_json_values = st.dictionaries(_text_values, st.one_of(_text_values, st.integers(), st.booleans()), max_size=3)
_values = st.one_of(_text_values, st.binary(max_size=8), st.booleans(), st.integers(), _json_values)
_param_names = st.sampled_from(["data", "to", "application", "hook", "script", "name", "state", "id"])


@given(params=st.dictionaries(_param_names, _values, max_size=4))
@example(params={"data": "a :b"})  # quoted with a colon: the fast path would make it "a  : b"
@example(params={"data": ":"})  # colons only: the fast path drops the pair
@example(params={"data": "a b ", "to": "x"})  # the node trims
@example(params={"data": "", "to": ":a"})
@example(params={"script": 'RETURN "x"'})
@example(params={"state": {"k": "a b}"}})
@settings(max_examples=1000)
def test_a_formatted_line_is_refused_or_read_back_by_the_node_as_exactly_those_parameters(params):
    try:
        line = format_command("maxima", params)
    except CodecError:
        return
    assert line.isascii()
    assert ";" not in line
    assert node_reads(line) == [("maxima", {key: as_node_text(value) for key, value in params.items()})]


# ------------------------------------------------------------------------------------------ typed commands


def test_status_returns_the_response_of_fixture_05(node):
    node.answer("05-")

    assert client(node).status() == response_of("05-")
    assert node.text() == request_of("05-")["body"]


def test_maxima_info_returns_the_identity_key_and_addresses_of_fixture_02(node):
    node.answer("02-")
    reply = response_of("02-")

    info = client(node).maxima_info()

    assert node.text() == request_of("02-")["body"] == "maxima action:info"
    assert info == MaximaInfo(
        name="noname",
        publickey=from_hex(reply["publickey"]),
        mxpublickey=reply["mxpublickey"],
        mls=reply["mls"],
        localidentity=reply["localidentity"],
        p2pidentity=reply["p2pidentity"],
        contact=reply["contact"],
        staticmls=False,
        poll=0,
    )
    assert info.publickey_hex == reply["publickey"]
    assert MaximaAddress.parse(info.localidentity).port == 10001


def test_maxima_info_raises_rpc_error_for_a_reply_without_a_valid_identity_key(node):
    broken = dict(response_of("01-"), publickey="0x1234")
    node.replies.append(envelope_http({"command": "maxima", "status": True, "pending": False, "response": broken}))

    with pytest.raises(RPCError, match="publickey"):
        client(node).maxima_info()


@pytest.mark.parametrize("prefix", ["03-", "04-"])
def test_maxima_hosts_returns_the_host_list(node, prefix):
    node.answer(prefix)

    assert client(node).maxima_hosts() == response_of(prefix)["hosts"]
    assert node.text() == request_of(prefix)["body"]


def test_maxima_send_to_an_address_sends_hex_data_and_returns_the_result_of_fixture_10(node):
    node.answer("10-")
    sent = params_of("10-")
    reply = response_of("10-")

    result = client(node).maxima_send(
        to=sent["to"], application="mns", data=maxima_fixture("10-")["data_plaintext"].encode()
    )

    assert node.text() == request_of("10-")["body"]
    assert result == SendResult(
        msgid=reply["msgid"],
        delivered=True,
        from_key=from_hex(reply["from"]),
        to_key=from_hex(reply["to"]),
        timemilli=1795661881137,
        poll=False,
        error=None,
    )
    assert result.to_key == MaximaAddress.parse(sent["to"]).key


def test_maxima_send_to_a_contact_key_sends_publickey_like_fixture_12(node):
    node.answer("12-")

    result = client(node).maxima_send(
        publickey=from_hex(params_of("12-")["publickey"]), application="mns", data=from_hex(params_of("12-")["data"])
    )

    assert node.text() == request_of("12-")["body"]
    assert result.delivered is True


def test_maxima_send_to_a_max_address_like_fixture_69(node):
    node.answer("69-")

    result = client(node).maxima_send(
        to=params_of("69-")["to"], application="mns", data=from_hex(params_of("69-")["data"])
    )

    assert node.text() == request_of("69-")["body"]
    assert result.msgid == response_of("69-")["msgid"]


def test_maxima_send_raises_a_transient_delivery_failure_for_a_dead_port(node):
    # fixture 16: status true, delivered false, ConnectException
    node.answer("16-")

    with pytest.raises(DeliveryFailed) as caught:
        client(node).maxima_send(to=params_of("16-")["to"], application="mns", data=b"\x01\x02\x03\x04")

    assert node.text() == request_of("16-")["body"]
    failure = caught.value
    assert (failure.error, failure.permanent, failure.code) == (
        "java.net.ConnectException: Connection refused",
        False,
        "delivery_failed",
    )
    assert failure.msgid == response_of("16-")["msgid"]
    assert failure.reply["response"]["delivered"] is False


def test_maxima_send_raises_a_permanent_delivery_failure_for_a_message_too_big(node):
    # fixture 19: 300 000 bytes of 0xAB; the request body is known only by its sha256
    fixture = node.answer("19-")

    with pytest.raises(DeliveryFailed) as caught:
        client(node).maxima_send(to=params_of("19-")["to"], application="mns", data=b"\xab" * 300_000)

    assert hashlib.sha256(node.requests[0].body).hexdigest() == fixture["elided"]["request_body_sha256"]
    assert (caught.value.error, caught.value.permanent) == ("Maxima Mesasge too big", True)


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        ("Unknown Address", True),
        ("TxPoW Hash wrong", True),
        ("Not delivered", False),
        ("java.net.SocketTimeoutException: Read timed out", False),
        ("something new", False),
    ],
)
def test_maxima_send_classifies_delivery_errors(node, error, permanent):
    envelope = maxima_fixture("16-")["parsed"]
    envelope["response"]["error"] = error
    node.replies.append(envelope_http(envelope))

    with pytest.raises(DeliveryFailed) as caught:
        client(node).maxima_send(to=params_of("16-")["to"], application="mns", data=b"\x01\x02\x03\x04")

    assert (caught.value.error, caught.value.permanent) == (error, permanent)


def test_maxima_send_with_poll_returns_a_queued_result_without_raising(node):
    node.answer("17-")

    result = client(node).maxima_send(to=params_of("17-")["to"], application="mns", data=b"\x01\x02\x03\x04", poll=True)

    assert node.text() == request_of("17-")["body"]
    assert (result.poll, result.delivered, result.msgid) == (True, False, response_of("17-")["msgid"])


def test_maxima_send_raises_rpc_error_when_the_key_is_not_a_contact(node):
    node.answer("24-")

    with pytest.raises(RPCError) as caught:
        client(node).maxima_send(publickey=from_hex(params_of("24-")["publickey"]), application="mns", data=b"\x01")

    assert node.text() == request_of("24-")["body"]
    assert caught.value.message.startswith("No Contact found for publickey : 0x30819F")


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"to": "x", "publickey": b"x"},
        {"to": "Mx1@127.0.0.1:9001"},
        {"to": "; block"},
        {"to": "MAX#0x01#Mx1@h:1"},
        {"publickey": b"\x00" * 162},
        {"publickey": "0x1234"},
    ],
)
def test_maxima_send_refuses_a_bad_recipient_before_any_io(node, kwargs):
    with pytest.raises(CodecError):
        client(node).maxima_send(application="mns", data=b"x", **kwargs)

    assert node.requests == []


def test_maxima_send_refuses_text_data_and_an_unsafe_application(node):
    to = params_of("10-")["to"]

    with pytest.raises(CodecError):
        client(node).maxima_send(to=to, application="mns", data="hello")  # type: ignore[arg-type]
    with pytest.raises(CodecError):
        client(node).maxima_send(to=to, application="mns;block", data=b"x")

    assert node.requests == []


@pytest.mark.parametrize("prefix", ["31-", "32-"])
def test_maxsign_sends_hex_data_and_the_private_key_and_returns_the_signature(node, prefix):
    node.answer(prefix)
    sent = params_of(prefix)

    signature = client(node).maxsign(from_hex(sent["data"]), privatekey=from_hex(sent["privatekey"]))

    assert node.text() == request_of(prefix)["body"]
    assert signature == from_hex(response_of(prefix)["signature"])


@pytest.mark.parametrize(("prefix", "valid"), [("34-", True), ("37-", False), ("38-", False)])
def test_maxverify_returns_the_nodes_verdict(node, prefix, valid):
    node.answer(prefix)
    sent = params_of(prefix)

    result = client(node).maxverify(
        data=from_hex(sent["data"]), publickey=from_hex(sent["publickey"]), signature=from_hex(sent["signature"])
    )

    assert node.text() == request_of(prefix)["body"]
    assert result is valid


def test_maxencrypt_and_maxdecrypt_send_exactly_what_fixtures_40_and_41_sent(node):
    node.answer("40-")
    node.answer("41-")
    rpc = client(node)

    blob = rpc.maxencrypt(data=from_hex(params_of("40-")["data"]), publickey=from_hex(params_of("40-")["publickey"]))
    plain = rpc.maxdecrypt(blob, privatekey=from_hex(params_of("41-")["privatekey"]))

    assert [r.body.decode() for r in node.requests] == [request_of("40-")["body"], request_of("41-")["body"]]
    assert blob == from_hex(response_of("40-")["encrypted"])
    assert plain == from_hex(params_of("40-")["data"])


def test_webhooks_add_list_and_remove_send_the_requests_of_fixtures_70_73_77(node):
    node.answer("70-")
    node.answer("73-")
    node.answer("77-")
    rpc = client(node)

    added = rpc.webhooks_add(hook="http://127.0.0.1:8991/hook", filter="MAXIMA")
    listed = rpc.webhooks_list()
    removed = rpc.webhooks_remove("MAXIMA#http://127.0.0.1:8991/hook")

    assert [r.body.decode() for r in node.requests] == [request_of(p)["body"] for p in ("70-", "73-", "77-")]
    assert added == ["MAXIMA#http://127.0.0.1:8991/hook"]
    assert listed == ["MAXIMA#http://127.0.0.1:8992/hook", "NEWCOIN#http://127.0.0.1:8992/newcoin"]
    assert removed == []


def test_webhooks_add_without_a_filter_leaves_the_filter_out(node):
    node.answer("70-")

    client(node).webhooks_add(hook="http://127.0.0.1:8991/hook")

    assert node.text() == "webhooks action:add hook:http://127.0.0.1:8991/hook"


def test_webhooks_remove_refuses_a_bare_url_that_would_silently_remove_nothing(node):
    # fixture 76: "remove hook:<url>" without the filter prefix is a no-op that still says status:true
    with pytest.raises(CodecError, match="FILTER#url"):
        client(node).webhooks_remove(params_of("76-")["hook"])

    assert node.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hook": "ftp://127.0.0.1/hook"},
        {"hook": "127.0.0.1:8991/hook"},
        {"hook": "http://127.0.0.1:8991/hook;block"},
        {"hook": "http://127.0.0.1:8991/h ook"},
        {"hook": "http://127.0.0.1:8991/hook", "filter": "MAXIMA#x"},
        {"hook": "http://127.0.0.1:8991/hook", "filter": "MAX IMA"},
    ],
)
def test_webhooks_add_refuses_a_bad_hook_or_filter(node, kwargs):
    with pytest.raises(CodecError):
        client(node).webhooks_add(**kwargs)

    assert node.requests == []


def test_maxcontacts_list_and_add_match_fixtures_62_and_60(node):
    node.answer("62-")
    node.answer("60-")
    rpc = client(node)

    contacts = rpc.maxcontacts_list()
    added = rpc.maxcontacts_add(params_of("60-")["contact"])

    assert [r.body.decode() for r in node.requests] == [request_of("62-")["body"], request_of("60-")["body"]]
    assert contacts == response_of("62-")["contacts"]
    assert added["maxima"]["delivered"] is True


def test_maxextra_staticmls_addpermanent_and_getaddress_match_fixtures_63_64_67(node):
    for prefix in ("63-", "64-", "67-"):
        node.answer(prefix)
    rpc = client(node)

    pinned = rpc.maxextra_staticmls(params_of("63-")["host"])
    added = rpc.maxextra_addpermanent(from_hex(params_of("64-")["publickey"]))
    address = rpc.maxextra_getaddress(params_of("67-")["maxaddress"])

    assert [r.body.decode() for r in node.requests] == [request_of(p)["body"] for p in ("63-", "64-", "67-")]
    assert pinned == {"staticmls": True, "mls": params_of("63-")["host"]}
    assert added == response_of("64-")
    assert address == response_of("67-")["mlsresponse"]["address"]


def test_maxextra_getaddress_returns_none_for_an_unknown_key(node):
    # fixture 69c: status true, success false, "mlsresponse":"{}" (a string)
    node.answer("69c-")

    assert client(node).maxextra_getaddress(params_of("69c-")["maxaddress"]) is None
    assert node.text() == request_of("69c-")["body"]


def test_maxextra_staticmls_can_clear_and_refuses_anything_but_an_address(node):
    node.answer("63-")

    client(node).maxextra_staticmls("clear")
    with pytest.raises(CodecError):
        client(node).maxextra_staticmls("127.0.0.1:9001")

    assert node.text() == "maxextra action:staticmls host:clear"


def test_tokencreate_and_tokens_match_fixtures_80_and_87(node):
    node.answer("80-")
    node.answer("87-")
    rpc = client(node)

    created = rpc.tokencreate(name="mns-entry", amount=1, decimals=0)
    tokens = rpc.tokens()

    assert [r.body.decode() for r in node.requests] == [request_of("80-")["body"], request_of("87-")["body"]]
    assert created == response_of("80-")
    assert tokens[1]["tokenid"] == "0x6E1D6025E36E2D793F242C25E6946B99A7BCE4DD96D28286833512E5A9668832"


@pytest.mark.parametrize(
    "kwargs", [{"amount": 0}, {"amount": -1}, {"amount": True}, {"amount": 1, "decimals": 17}, {"amount": 1.5}]
)
def test_tokencreate_refuses_bad_numbers(node, kwargs):
    with pytest.raises(CodecError):
        client(node).tokencreate(name="mns-entry", **kwargs)

    assert node.requests == []


def test_newscript_quotes_the_script_exactly_like_fixture_81(node):
    node.answer("81-")

    result = client(node).newscript(script=params_of("81-")["script"])

    assert node.text() == request_of("81-")["body"]
    assert result["address"] == "0x1DF1924B7E73144C4F3661AFFD29A9D1D2AE0EB1F5E05554AE11A6BF6A1FAB4F"


@pytest.mark.parametrize("script", ['RETURN "x"', "LET a = [b]", "RETURN TRUE;maxima", "ASSERT a:b", " RETURN TRUE"])
def test_newscript_refuses_a_script_that_cannot_be_quoted_safely(node, script):
    with pytest.raises(CodecError):
        client(node).newscript(script=script)

    assert node.requests == []


def test_send_with_state_sends_the_state_json_of_fixture_84(node):
    node.answer("84-")
    sent = params_of("84-")

    client(node).send_with_state(
        address=sent["address"],
        amount=1,
        tokenid=sent["tokenid"],
        state={2: sent["state"]["2"], 0: sent["state"]["0"], 1: sent["state"]["1"]},
    )

    assert node.text() == request_of("84-")["body"]


@pytest.mark.parametrize("state", [{256: "0x00"}, {-1: "0x00"}, {0: ""}, {0: "a b"}, {0: "a;b"}, {"0": "0x00"}])
def test_send_with_state_refuses_bad_ports_and_values(node, state):
    sent = params_of("84-")

    with pytest.raises(CodecError):
        client(node).send_with_state(address=sent["address"], amount=1, tokenid=sent["tokenid"], state=state)

    assert node.requests == []


def test_getaddress_returns_the_wallet_address_of_fixture_83(node):
    node.answer("83-")

    wallet = client(node).getaddress()

    assert node.text() == request_of("83-")["body"] == "getaddress"
    assert wallet == response_of("83-")
    assert wallet["miniaddress"].startswith("Mx")


@pytest.mark.parametrize(
    ("kwargs", "line"),
    [
        ({"amount": "10"}, "send address:{address} amount:10"),
        ({"amount": 3}, "send address:{address} amount:3"),
        ({"amount": "0.5", "tokenid": "0x00"}, "send address:{address} amount:0.5 tokenid:0x00"),
    ],
)
def test_send_pays_an_amount_to_an_address_and_returns_the_txpow(node, kwargs, line):
    # the reply of fixture 84's send (a TxPoW), without the state this send does not carry
    node.replies.append(envelope_http({**maxima_fixture("84-")["parsed"], "params": {}}))
    address = response_of("83-")["miniaddress"]

    txpow = client(node).send(address=address, **kwargs)

    assert node.text() == line.format(address=address)
    assert txpow == response_of("84-")


@pytest.mark.parametrize("amount", ["0", "0.0", "-1", "1e3", "1,5", "", " 1", "1;x", "01", "1.", True, 0, -2, 1.5])
def test_send_refuses_an_amount_that_is_not_a_positive_decimal_before_any_io(node, amount):
    with pytest.raises(CodecError):
        client(node).send(address=response_of("83-")["miniaddress"], amount=amount)

    assert node.requests == []


def test_send_refuses_an_address_with_a_bad_checksum_before_any_io(node):
    address = response_of("83-")["miniaddress"]

    with pytest.raises(CodecError):
        client(node).send(address=address[:-1] + ("A" if address[-1] != "A" else "B"), amount="1")

    assert node.requests == []


@pytest.mark.parametrize(
    ("prefix", "simplestate"),
    [("85-", False), ("90-", True)],
)
def test_coins_matches_fixtures_85_and_90(node, prefix, simplestate):
    node.answer(prefix)
    sent = params_of(prefix)

    coins = client(node).coins(address=sent["address"], tokenid=sent.get("tokenid"), simplestate=simplestate)

    assert node.text() == request_of(prefix)["body"]
    assert coins == response_of(prefix)


def rotation_kwargs() -> dict:
    steps = {(e["command"], e["params"].get("port")): e["params"] for e in maxima_fixture("88-")["parsed"]}
    return {
        "txn_id": "rot1",
        "coinid": steps[("txninput", None)]["coinid"],
        "address": steps[("txnoutput", None)]["address"],
        "tokenid": steps[("txnoutput", None)]["tokenid"],
        "amount": 1,
        "state": {port: steps[("txnstate", str(port))]["value"] for port in (0, 1, 2)},
        "owner_publickey": steps[("txnsign", None)]["publickey"],
    }


def test_txn_rotate_sends_the_nine_commands_of_fixture_88_in_one_post(node):
    node.answer("88-")

    results = client(node).txn_rotate(**rotation_kwargs())

    assert node.text() == request_of("88-")["body"]
    assert results == [e["response"] for e in maxima_fixture("88-")["parsed"]]


def test_txn_rotate_deletes_the_transaction_when_a_step_fails(node):
    # given a rotation whose txnsign step fails (the node stops there and answers the steps so far)
    steps = maxima_fixture("88-")["parsed"][:6]
    failing = {"command": "txnsign", "params": {"id": "rot1"}, "status": False, "pending": False, "error": "no key"}
    node.replies.append(envelope_http([*steps, failing]))
    node.replies.append(
        envelope_http({"command": "txndelete", "status": True, "pending": False, "response": "Deleted"})
    )

    with pytest.raises(RPCError) as caught:
        client(node).txn_rotate(**rotation_kwargs())

    assert (caught.value.command, caught.value.message) == ("txnsign", "step 7 of 9: no key")
    assert [r.body.decode() for r in node.requests][1] == "txndelete id:rot1"


@pytest.mark.parametrize("txn_id", ["", "rot 1", "rot;1", "r" * 65])
def test_txn_rotate_refuses_a_bad_transaction_id(node, txn_id):
    with pytest.raises(CodecError):
        client(node).txn_rotate(**{**rotation_kwargs(), "txn_id": txn_id})

    assert node.requests == []


# ---------------------------------------------------------------------------------------------------- batch


def test_batch_joins_commands_with_semicolons_and_returns_each_response_like_fixture_26(node):
    node.answer("26-")

    results = client(node).batch(["block", "maxima action:hosts"])

    assert node.text() == request_of("26-")["body"] == "block;maxima action:hosts"
    assert results == [e["response"] for e in maxima_fixture("26-")["parsed"]]


def test_batch_names_the_first_command_when_it_fails_with_a_single_object_reply(node):
    # fixture 27: "maxi;block" answers one object, not an array, and block never ran
    node.answer("27-")

    with pytest.raises(RPCError) as caught:
        client(node).batch(["maxi", "block"])

    assert node.text() == request_of("27-")["body"]
    assert (caught.value.command, caught.value.message) == ("maxi", "step 1 of 2: Command not found")


def test_batch_raises_command_split_when_more_replies_come_back_than_commands(node):
    node.answer("26-")

    with pytest.raises(CommandSplit):
        client(node).batch(["block"])


def test_batch_raises_command_split_when_a_reply_answers_as_another_command(node):
    node.answer("26-")

    with pytest.raises(CommandSplit):
        client(node).batch(["block", "status"])


def test_batch_raises_command_split_when_a_single_true_object_answers_several_commands(node):
    node.answer("05-")

    with pytest.raises(CommandSplit):
        client(node).batch(["status", "block"])


@pytest.mark.parametrize("commands", [[], ["block;status"], ["block", ""], ["maxsign data:h\u00e9"], ["a\nb"]])
def test_batch_refuses_lines_that_are_not_one_ascii_command(node, commands):
    with pytest.raises(CodecError):
        client(node).batch(commands)

    assert node.requests == []
