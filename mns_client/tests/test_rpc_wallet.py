"""The wallet's keys, sign/verify, coins by state and coinnotify, against real nodes' exchanges (100-156)."""

import pytest

from mns_client.protocol.codecs import from_hex
from mns_client.protocol.errors import CodecError, RPCError
from mns_client.tests.test_rpc import client, node, params_of, request_of, response_of  # noqa: F401


def test_keys_lists_the_wallet_key_like_fixture_100(node):  # noqa: F811
    node.answer("100-")
    keys = client(node).keys(publickey=params_of("100-")["publickey"])
    assert node.text() == request_of("100-")["body"]
    assert keys == response_of("100-")["keys"]


def test_sign_sends_the_data_as_hex_and_returns_the_signature_bytes_like_fixture_101(node):  # noqa: F811
    node.answer("101-")
    sent = params_of("101-")
    signature = client(node).sign(publickey=sent["publickey"], data=from_hex(sent["data"]))
    assert node.text() == request_of("101-")["body"]
    assert signature == from_hex(response_of("101-"))


def test_sign_with_a_key_the_wallet_does_not_hold_is_an_error_like_fixture_106(node):  # noqa: F811
    node.answer("106-")
    sent = params_of("106-")
    with pytest.raises(RPCError):
        client(node).sign(publickey=sent["publickey"], data=from_hex(sent["data"]))


@pytest.mark.parametrize(("prefix", "valid"), [("102-", True), ("103-", False), ("104-", False), ("105-", False)])
def test_verify_answers_true_or_false_like_fixtures_102_to_105(node, prefix, valid):  # noqa: F811
    node.answer(prefix)
    sent = params_of(prefix)
    answer = client(node).verify(
        publickey=sent["publickey"], data=from_hex(sent["data"]), signature=from_hex(sent["signature"])
    )
    assert node.text() == request_of(prefix)["body"]
    assert answer is valid


@pytest.mark.parametrize("prefix", ["150-", "151-", "152-", "154-", "156-"])
def test_coins_by_state_and_order_sends_what_mns_sends(node, prefix):  # noqa: F811
    node.answer(prefix)
    sent = params_of(prefix)
    coins = client(node).coins(
        address=sent["address"], state=sent["state"], order=sent["order"], simplestate="simplestate" in sent
    )
    assert node.text() == request_of(prefix)["body"]
    assert coins == response_of(prefix)


@pytest.mark.parametrize("state", ["[mnsfixture]", "a:b", "two words", ""])
def test_a_state_filter_the_node_would_misread_is_refused_before_sending(node, state):  # noqa: F811
    with pytest.raises(CodecError):
        client(node).coins(address="0xFFEEDDFFEEDDFFEEDD", state=state)
    assert node.requests == []


@pytest.mark.parametrize(("prefix", "action"), [("130-", "add"), ("131-", "check")])
def test_coinnotify_adds_and_checks_like_fixtures_130_and_131(node, prefix, action):  # noqa: F811
    node.answer(prefix)
    answer = client(node).coinnotify(action=action, address=params_of(prefix)["address"])
    assert node.text() == request_of(prefix)["body"]
    assert answer == response_of(prefix)
