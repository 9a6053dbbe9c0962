"""The bulletin format and the reader's checks: what is taken, what is refused (and logged), what is picked."""

import json
import logging
import random

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mns_client.protocol.codecs import mx_encode, to_hex
from mns_client.protocol.entrypoints import (
    BULLETIN_SCRIPT,
    Bulletin,
    BulletinInvalid,
    ChainConfig,
    Entry,
    coin_state,
    newest_bulletin,
    parse_bulletin,
    pick,
)
from simnet.chain import BULLETIN_SCRIPT as SIMNET_SCRIPT

ADDRESS = "0x1DF1924B7E73144C4F3661AFFD29A9D1D2AE0EB1F5E05554AE11A6BF6A1FAB4F"
TOKEN = "0x6E1D6025E36E2D793F242C25E6946B99A7BCE4DD96D28286833512E5A9668832"
OWNER = "0x0E9145164A12BA509EA1DDC0A7475B576104F6F4147D566BEDEC3F267490BF0B"


def _der() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (Maxima keys are RSA-1024)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


KEY, MLS = _der(), _der()
MAX_ADDRESS = f"MAX#{to_hex(KEY)}#{mx_encode(MLS)}@127.0.0.1:9001"
ENTRY = {"maxima_address": MAX_ADDRESS, "identity_key": to_hex(KEY), "api_url": "https://gw.example/api/v1/"}


def _bulletin(seq: int, entries: list | None = None) -> dict:
    return {"v": 1, "seq": seq, "issued_at": 1795661876042, "entries": [ENTRY] if entries is None else entries}


def _coin(raw: dict | bytes, *, seq: int, address: str = ADDRESS, owner: str = OWNER, coinid: str = "0xC1") -> dict:
    data = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    return {
        "coinid": coinid,
        "address": address,
        "tokenid": TOKEN,
        "state": [
            {"port": 0, "type": 1, "data": owner},
            {"port": 1, "type": 1, "data": to_hex(data)},
            {"port": 2, "type": 2, "data": str(seq)},
        ],
        "spent": False,
        "created": "27",
    }


def _newest(coins: list[dict], min_seq: int = 0):
    return newest_bulletin(coins, address=ADDRESS, tokenid=TOKEN, owner=OWNER, min_seq=min_seq)


def test_the_bulletin_script_is_the_one_simnet_enforces() -> None:
    assert BULLETIN_SCRIPT == SIMNET_SCRIPT


def test_a_bulletin_round_trips_through_coin_state() -> None:
    bulletin = Bulletin(seq=7, issued_at=5, entries=(Entry(**ENTRY),))

    state = bulletin.state(OWNER)
    coin = {"coinid": "0xC1", "address": ADDRESS, "tokenid": TOKEN, "state": state, "created": "3"}
    coin["state"] = {str(k): v for k, v in state.items()}  # the simplestate / NEWCOIN form

    reading = _newest([coin])
    assert reading is not None
    assert reading.bulletin == bulletin
    assert reading.block == 3
    assert state[2] == "7"
    assert bulletin.encode() == json.dumps(bulletin.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def test_coin_state_reads_both_forms_of_the_fixtures() -> None:
    array = [{"port": 0, "type": 1, "data": "0xAA"}, {"port": 2, "type": 2, "data": "2"}]
    assert coin_state({"state": array}) == coin_state({"state": {"0": "0xAA", "2": "2"}}) == {0: "0xAA", 2: "2"}


def test_the_highest_seq_wins(caplog: pytest.LogCaptureFixture) -> None:
    coins = [_coin(_bulletin(2), seq=2, coinid="0xA"), _coin(_bulletin(5), seq=5, coinid="0xB")]

    reading = _newest(coins)

    assert reading is not None
    assert (reading.bulletin.seq, reading.coinid) == (5, "0xB")


@pytest.mark.parametrize(
    ("coin", "code"),
    [
        (_coin(_bulletin(3), seq=3, address="0x" + "AB" * 32), "wrong_address"),
        (_coin(_bulletin(3), seq=3, owner="0x" + "CD" * 32), "wrong_owner"),
        (_coin(b"not json at all", seq=3), "unparsable"),
        (_coin({"v": 2, "seq": 3}, seq=3), "unparsable"),
        (_coin(_bulletin(3), seq=4), "unparsable"),
        (_coin(_bulletin(3), seq=3), "stale"),
    ],
    ids=["another_address", "another_owner", "not_json", "another_version", "seq_ports_disagree", "lower_seq"],
)
def test_a_refused_coin_is_ignored_with_a_log_line(coin: dict, code: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mns_client.protocol.entrypoints"):
        reading = _newest([coin], min_seq=4)

    assert reading is None
    assert f"coin 0xC1 ignored ({code})" in caplog.text


def test_entries_without_a_permanent_address_are_dropped_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    contact = {**ENTRY, "maxima_address": f"{mx_encode(MLS)}@127.0.0.1:9001"}
    other_key = {**ENTRY, "identity_key": to_hex(MLS)}
    raw = _bulletin(3, [contact, ENTRY, {"maxima_address": ""}, other_key])

    with caplog.at_level(logging.WARNING, logger="mns_client.protocol.entrypoints"):
        bulletin = parse_bulletin(json.dumps(raw).encode())

    assert bulletin.entries == (Entry(**ENTRY),)
    assert "entry 0 ignored (not_permanent)" in caplog.text
    assert "entry 2 ignored" in caplog.text
    assert "entry 3 ignored (bad_entry)" in caplog.text


def test_pick_chooses_among_the_entries_and_refuses_an_empty_list() -> None:
    entries = tuple(Entry(**{**ENTRY, "api_url": f"https://gw{i}.example/"}) for i in range(4))
    bulletin = Bulletin(seq=1, issued_at=0, entries=entries)

    picked = {pick(bulletin, rng=random.Random(seed)).api_url for seed in range(40)}

    assert picked == {e.api_url for e in entries}
    with pytest.raises(BulletinInvalid, match="lists no entry points"):
        pick(Bulletin(seq=1, issued_at=0, entries=()))


def test_a_chain_config_accepts_only_the_bulletin_script() -> None:
    config = ChainConfig.from_dict({"tokenid": TOKEN.lower(), "owner": OWNER, "script": BULLETIN_SCRIPT})

    assert config.tokenid == TOKEN
    with pytest.raises(BulletinInvalid, match="not the MNS bulletin script"):
        ChainConfig.from_dict({"tokenid": TOKEN, "owner": OWNER, "script": "RETURN TRUE"})
