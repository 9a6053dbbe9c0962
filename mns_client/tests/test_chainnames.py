"""Names on chain as Minima's MNS registers them, read from real nodes' replies (fixtures 120-125, 150-156)."""

import copy
import dataclasses
import json

import pytest

from mns_client.protocol.chainnames import (
    MNS_ADDRESS,
    ChainCoinInvalid,
    name_record,
    parse_coin,
    parse_coins,
    signed_data,
    signed_text,
    state_filter,
    strip_brackets,
)
from mns_client.protocol.codecs import from_hex
from testsupport import REPO, maxima_fixture

OWNER_A = "0xCDCDA9DEF760393E4E553FA2D206B33E2F0EF1B9E18C495E226FB7B02AAD57FE"
OWNER_C = "0xF4491653C103ACC5640B9AB61C4C1279ABC4B8A3766FB795D8738B89472C1FCF"


def coins_of(number: str) -> list:
    return maxima_fixture(number)["parsed"]["response"]


def signed_by_fixture_nodes(coin) -> bool:
    """The node's `verify` as the fixtures recorded it: each coin's signature is the one its owner's node made
    over exactly the data the fixture's `sign` request carried (121 for A, 124 for C)."""
    for number in ("121", "124"):
        request = maxima_fixture(number)["parsed"]["params"]
        if request["publickey"] == coin.owner:
            return from_hex(request["data"]) == coin.signed_data()
    return False


def test_the_signed_data_is_the_hex_that_mns_passed_to_sign():
    signed = maxima_fixture("120")
    data = signed_data(
        owner=OWNER_A,
        transfer=OWNER_A,
        name="mnsfixture",
        data='{"address":"MxG087V46ZUERDNV04M2APEU8NJNKPFJJCM2WDD6DCE3DF0A8ANZKBCYT84FZ85"}',
        datahex="0x00",
    )
    assert "0x" + data.hex().upper() == signed["parsed"]["response"]["conversion"]
    assert from_hex(maxima_fixture("121")["parsed"]["params"]["data"]) == data


def test_a_quote_is_escaped_as_mns_escapes_it():
    data = signed_data(owner="0xAB", transfer="0xAB", name="o'hara", data="a b~!*()", datahex="0x00")
    assert data == b"0xAB%3A0xAB%3Ao%27hara%3Aa%20b~!*()%3A0x00"


def test_both_state_shapes_parse_to_the_same_coins():
    simple, full = parse_coins(coins_of("150")), parse_coins(coins_of("152"))
    assert simple == full
    assert simple[1] == 0
    first = simple[0][0]
    assert (first.owner, first.transfer, first.name, first.datahex, first.created) == (
        OWNER_A,
        OWNER_A,
        "mnsfixture",
        "0x00",
        171,
    )
    assert first.data == '{"address":"MxG087V46ZUERDNV04M2APEU8NJNKPFJJCM2WDD6DCE3DF0A8ANZKBCYT84FZ85"}'
    assert first.signature == from_hex(maxima_fixture("121")["parsed"]["response"])


@pytest.mark.parametrize("fixture", ["150", "151", "152", "153", "154"])
def test_the_first_registrant_holds_the_name_and_the_squatters_later_coin_does_not_win(fixture):
    coins, _ = parse_coins(coins_of(fixture))
    asked = []

    def verify(coin):
        asked.append(coin.owner)
        return signed_by_fixture_nodes(coin)

    record = name_record(coins, "mnsfixture", verify=verify)
    assert record is not None
    assert (record.holder, record.registrant, record.created, record.updated) == (OWNER_A, OWNER_A, 171, 171)
    assert asked == [OWNER_A]  # the squatter's coin is never even verified


def test_a_substring_match_of_the_state_filter_is_not_the_name():
    coins, _ = parse_coins(coins_of("154"))  # state:mnsfixt matched both coins
    assert name_record(coins, "mnsfixt", verify=signed_by_fixture_nodes) is None
    assert name_record(coins, "mnsfixture", verify=signed_by_fixture_nodes).holder == OWNER_A


def test_an_unknown_name_has_no_record():
    coins, skipped = parse_coins(coins_of("156"))
    assert (coins, skipped) == ([], 0)
    assert name_record(coins, "nosuchname", verify=signed_by_fixture_nodes) is None


def test_when_the_first_coin_does_not_verify_the_next_valid_one_wins():
    coins, _ = parse_coins(coins_of("150"))
    record = name_record(coins, "mnsfixture", verify=lambda coin: coin.owner == OWNER_C)
    assert (record.holder, record.created) == (OWNER_C, 173)


def test_a_later_coin_of_the_holder_updates_and_transfers_the_name():
    coins, _ = parse_coins(coins_of("150"))
    first = coins[0]
    update = dataclasses.replace(first, coinid="0x" + "11" * 32, created=180, transfer=OWNER_C, data="new")
    after = dataclasses.replace(first, coinid="0x" + "22" * 32, created=181, owner=OWNER_C, transfer=OWNER_C, data="c")
    stranger = dataclasses.replace(first, coinid="0x" + "33" * 32, created=182, owner=OWNER_A, data="late")
    record = name_record([stranger, after, update, first], "mnsfixture", verify=lambda coin: True)
    assert (record.holder, record.registrant, record.data, record.created, record.updated) == (
        OWNER_C,
        OWNER_A,
        "c",
        171,
        181,
    )


def test_coins_that_are_not_mns_records_are_skipped_not_fatal():
    good = coins_of("150")[0]
    token = {**copy.deepcopy(good), "tokenid": "0x" + "AB" * 32}
    elsewhere = {**copy.deepcopy(good), "address": "0x01"}
    no_signature = copy.deepcopy(good)
    del no_signature["state"]["5"]
    bad_owner = copy.deepcopy(good)
    bad_owner["state"]["0"] = "[alice]"
    not_a_coin = "coin"
    coins, skipped = parse_coins([token, elsewhere, no_signature, bad_owner, not_a_coin, good])
    assert (len(coins), skipped) == (1, 5)


def test_a_reply_that_is_not_a_list_is_refused():
    with pytest.raises(ChainCoinInvalid):
        parse_coins({"coins": []})


def test_a_coin_reports_the_field_at_fault():
    coin = copy.deepcopy(coins_of("150")[0])
    coin["state"]["4"] = "00"
    with pytest.raises(ChainCoinInvalid) as refused:
        parse_coin(coin)
    assert refused.value.field == "datahex"


def test_brackets_are_stripped_once_as_mns_strips_them():
    assert strip_brackets(" [[alice]] ") == "[alice]"
    assert strip_brackets("alice") == "alice"


def test_the_state_filter_is_left_out_for_what_the_node_would_misread():
    assert state_filter("mnsfixture") == "mnsfixture"
    assert state_filter("[alice]") is None
    assert state_filter("zoë") is None
    assert maxima_fixture("150")["parsed"]["params"]["address"] == MNS_ADDRESS


def mns_vectors() -> list[dict]:
    return json.loads((REPO / "docs" / "vectors" / "mns-onchain.json").read_text())["vectors"]


@pytest.mark.parametrize("vector", mns_vectors(), ids=lambda vector: vector["description"])
def test_the_signed_data_is_what_javascripts_encode_uri_component_gives(vector):
    fields = {key: vector[key] for key in ("owner", "transfer", "name", "data", "datahex")}
    assert signed_text(**fields) == vector["signed_text"]
    assert "0x" + signed_data(**fields).hex().upper() == vector["signed_hex"]


def test_the_first_vector_is_what_the_real_node_converted():
    assert mns_vectors()[0]["signed_hex"] == maxima_fixture("120")["parsed"]["response"]["conversion"]
