"""The handshake's wire format and secrets (mns_client.protocol.handshake), as docs/protocol.md describes them."""

import hashlib
import json

import pytest

from mns_client.protocol.errors import CodecError
from mns_client.protocol.handshake import (
    Answer,
    HandshakeMessageInvalid,
    Result,
    new_challenge_id,
    new_code,
    new_token,
    new_verifier,
    secret_hash,
    secret_matches,
    verifier_hash,
)
from testsupport import maxima_fixture

NODE_B_ADDRESS = maxima_fixture("02-")["parsed"]["response"]["p2pidentity"]


def test_codes_tokens_and_ids_are_long_random_url_safe_text() -> None:
    codes, tokens, ids = {new_code() for _ in range(50)}, {new_token() for _ in range(50)}, {new_challenge_id()}
    assert len(codes) == len(tokens) == 50
    assert {len(code) for code in codes} == {32}  # 24 bytes = 192 bits
    assert {len(token) for token in tokens} == {43}  # 32 bytes = 256 bits
    assert len(ids.pop()) == 22  # 16 bytes = 128 bits
    assert all(c.isalnum() or c in "-_" for c in "".join(codes | tokens))


def test_a_secret_is_stored_as_the_lower_case_hex_sha256_of_its_ascii_bytes() -> None:
    assert secret_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert secret_matches("abc", hashlib.sha256(b"abc").hexdigest())


@pytest.mark.parametrize("wrong", ["abd", "", "ab", "abc ", "äbc", None, 123, b"abc"])
def test_anything_but_the_exact_secret_does_not_match(wrong: object) -> None:
    assert not secret_matches(wrong, secret_hash("abc"))


def test_the_verifier_hash_is_pkce_s256_in_hex_instead_of_base64url() -> None:
    # RFC 7636 appendix B: this verifier's S256 challenge is E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert verifier_hash(verifier) == "13d31e961a1ad8ec2f16b10c4c982e0876a878ad6df144566ee1894acb70f9c3"
    assert len(new_verifier()) == 43
    assert verifier_hash(new_verifier())


@pytest.mark.parametrize("verifier", ["short", "x" * 42, "x" * 129, "x" * 42 + " ", "x" * 42 + "+", "x" * 42 + "é"])
def test_a_verifier_outside_rfc7636s_alphabet_or_length_is_refused(verifier: str) -> None:
    with pytest.raises(CodecError):
        verifier_hash(verifier)


def test_an_answer_is_compact_json_with_reply_to_only_when_given() -> None:
    expected = b'{"v":1,"type":"handshake","challenge":"CCCCCCCCCCCCCCCCCCCCCC","code":"code"}'
    assert Answer("C" * 22, "code").to_bytes() == expected
    with_reply = Answer("C" * 22, "code", reply_to=NODE_B_ADDRESS).to_dict()
    assert with_reply["reply_to"] == NODE_B_ADDRESS
    assert Answer.from_dict(with_reply) == Answer("C" * 22, "code", reply_to=NODE_B_ADDRESS)


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"type": "handshake-result"},
        {"challenge": "short"},
        {"challenge": "has spaces in it, 123456"},
        {"challenge": 12345678901234567890},
        {"code": ""},
        {"code": "x" * 129},
        {"code": 42},
        {"reply_to": "somewhere"},
        {"reply_to": "0x1234"},
        {"extra": True},
    ],
)
def test_a_malformed_answer_is_refused(change: dict) -> None:
    with pytest.raises(HandshakeMessageInvalid):
        Answer.from_dict({**Answer("C" * 22, "code").to_dict(), **change})


def test_a_result_names_the_challenge_and_never_the_code() -> None:
    verified = Result("C" * 22, "verified").to_bytes()
    failed = Result("C" * 22, "failed", "code_wrong").to_bytes()
    assert json.loads(verified) == {"v": 1, "type": "handshake-result", "challenge": "C" * 22, "status": "verified"}
    assert json.loads(failed)["reason"] == "code_wrong"
    assert Result.from_bytes(failed) == Result("C" * 22, "failed", "code_wrong")


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"v":1,"type":"handshake-result","challenge":"x","status":"maybe"}',
        b'{"v":1,"type":"handshake-result","challenge":"x","status":"failed"}',
        b'{"v":1,"type":"handshake-result","challenge":"x","status":"verified","reason":"why"}',
    ],
)
def test_a_malformed_result_is_refused(data: bytes) -> None:
    with pytest.raises(HandshakeMessageInvalid):
        Result.from_bytes(data)
