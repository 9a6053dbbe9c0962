"""The command-line parser, the Java JSON writer and the GET decoding behave like the node's."""

import json

import pytest

from simnet import javajson
from simnet.commands import CommandSpec, parse_command, run_multi, split_multi, split_tokens
from simnet.httpserver import _BadRequest, url_decode


def _echo(node: object, params: object, reply: dict) -> None:
    reply["response"] = "ok"


def _fail(node: object, params: object, reply: dict) -> None:
    from simnet.commands import CommandError

    raise CommandError("nope")


KNOWN = {
    "echo": CommandSpec("echo", ("data", "to", "state"), _echo),
    "fail": CommandSpec("fail", (), _fail),
    "txnstate": CommandSpec("txnstate", ("value",), _echo),
}


def test_semicolons_split_even_inside_json_and_empty_pieces_vanish() -> None:
    assert split_multi('echo data:{"k":"a;b"}') == ['echo data:{"k":"a', 'b"}']
    assert split_multi("echo;;echo ; ") == ["echo", "echo", ""]


def test_the_fast_splitter_drops_a_word_without_a_colon() -> None:
    assert split_tokens("maxsign data:a b") == ["maxsign", "data:a"]


def test_quotes_group_words_and_are_removed() -> None:
    assert split_tokens('newscript script:"RETURN TRUE" trackall:true') == [
        "newscript",
        "script:RETURN TRUE",
        "trackall:true",
    ]


def test_a_value_with_a_colon_uses_the_slow_splitter() -> None:
    assert split_tokens("maxima to:Mx1@127.0.0.1:9001 data:0x01") == ["maxima", "to:Mx1@127.0.0.1:9001", "data:0x01"]


def test_json_values_are_parsed_and_txnstate_keeps_brackets() -> None:
    parsed = parse_command('echo state:{"0":"0x01","1":2}', KNOWN)
    assert parsed.params == {"state": {"0": "0x01", "1": 2}}
    assert parse_command("txnstate value:[hello]", KNOWN).params == {"value": "[hello]"}


def test_an_unknown_parameter_names_the_whole_command_line() -> None:
    reply = json.loads(run_multi(None, "echo data:1 foo:bar", KNOWN))
    assert reply == {
        "command": "echo data:1 foo:bar",
        "params": {"data": "1", "foo": "bar"},
        "status": False,
        "pending": False,
        "error": "Invalid parameter : foo",
    }


def test_an_unknown_command_is_reported_with_its_raw_first_word() -> None:
    reply = json.loads(run_multi(None, 'b"}', KNOWN))
    assert reply == {"command": 'b"}', "status": False, "pending": False, "error": "Command not found"}


def test_a_multi_command_is_an_array_and_stops_at_the_first_failure() -> None:
    assert [e["status"] for e in json.loads(run_multi(None, "echo;fail;echo", KNOWN))] == [True, False]
    assert json.loads(run_multi(None, "fail;echo", KNOWN))["error"] == "nope"


def test_params_appear_only_when_given() -> None:
    assert list(json.loads(run_multi(None, "echo", KNOWN))) == ["command", "status", "pending", "response"]


def test_a_blank_piece_makes_the_whole_reply_status_false() -> None:
    assert run_multi(None, "echo; ;echo", KNOWN) == '{"status":false}'
    assert run_multi(None, "", KNOWN) == "[]"


def test_java_json_escapes_slashes_and_control_characters_but_not_accents() -> None:
    text = javajson.dumps({"url": "http://x/y", "t": "héllo\u0001\u2028", "n": 1, "f": 0.5, "b": False, "z": None})
    assert text == '{"url":"http:\\/\\/x\\/y","t":"héllo\\u0001\\u2028","n":1,"f":0.5,"b":false,"z":null}'


def test_java_doubles_keep_a_decimal_point() -> None:
    assert javajson.dumps([1.0, 0.12963, 1e-05]) == "[1.0,0.12963,1.0E-5]"


def test_get_paths_decode_plus_as_space_and_percent_escapes_as_utf8() -> None:
    assert url_decode("maxsign%20data:a+b") == "maxsign data:a b"
    assert url_decode("data%3A%22h%C3%A9llo%22") == 'data:"héllo"'
    with pytest.raises(_BadRequest):
        url_decode("bad%zz")
