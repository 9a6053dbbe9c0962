"""Owner-signed name statements: canonical bytes, signatures, strict parsing, succession, and the vectors."""

import dataclasses
import importlib.util
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mns_client.protocol.codecs import from_hex, mx_encode, to_hex
from mns_client.protocol.crypto import maxsign
from mns_client.protocol.errors import MNSError
from mns_client.protocol.names import GRAMMAR, MAX_LENGTH
from mns_client.protocol.statements import (
    MAX_SAFE_INTEGER,
    NameStatement,
    SignedStatement,
    StatementInvalid,
    check_successor,
    offer_open,
)
from testsupport import REPO, maxima_fixture

_KEYPAIR = maxima_fixture("30-")["parsed"]["response"]
OWNER = _KEYPAIR["publickey"]
PRIVATE_KEY = from_hex(_KEYPAIR["privatekey"])
_OTHER_KEYPAIR = maxima_fixture("55-")["parsed"]["response"]
OTHER = _OTHER_KEYPAIR["publickey"]
OTHER_PRIVATE_KEY = from_hex(_OTHER_KEYPAIR["privatekey"])
GATEWAY = maxima_fixture("01-")["parsed"]["response"]["publickey"]
GATEWAY_B = maxima_fixture("02-")["parsed"]["response"]["publickey"]
BOX_KEY = to_hex(bytes(range(32)))
MX_ADDRESS = "MxG084YFVG7QG3CANA9ZUUH20FB4ENY85S6VW5UT4WV23T9RNUSAA1F4WG1CVK4"
HEX_ADDRESS = "0x957FE07D406C55D49C7BD1101EB23AF541786FC8BEE925F10FA9DDFDC5282F24"
ISSUED_AT = 1795660441638
VECTORS = REPO / "docs" / "vectors" / "statements.json"

OWNER_HEX_LITERAL = (
    "0x30819F300D06092A864886F70D010101050003818D0030818902818100D015FA6368990FFFF6E6407AD8D388902BBD2BBB62A5486CAB"
    "232612979C980D2B1023B5131FD91C00C3DABF2574701464AE07668CB5F5852755E51360B9987A2238AAC70275C044BE57BE13480001E3"
    "C10C50CFAD2D0528C15E8480C6E03B788CBC0FC6A868971F15D850EA96AA9A6472DCB47FE8879DC508F00C7DF73E1C3D0203010001"
)
GATEWAY_HEX_LITERAL = (
    "0x30819F300D06092A864886F70D010101050003818D0030818902818100E6214E42D7093C201ECED81E40C13F83D1E754F427ABD81141"
    "AAB25964D5B62B4F7C634EB2B908E4A6CAACB87A39861AC0BAC876BE69CB2867D5189062447158408DAE53BD0F7F3781B5D5ACE67B8C42"
    "FB27CDC9E401CF556B547ED86DF64C9522DAC2E12808C4E86FBB6AF9F0E656D14F36491FC686AB615C1F56D09F8C29CF0203010001"
)


def register(**overrides: Any) -> NameStatement:
    fields: dict[str, Any] = {
        "op": "register",
        "name": "alice",
        "owner": OWNER,
        "box_key": BOX_KEY,
        "payment_address": MX_ADDRESS,
        "seq": 1,
        "issued_at": ISSUED_AT,
        "gateway": GATEWAY,
    }
    return NameStatement(**{**fields, **overrides})


def release(**overrides: Any) -> NameStatement:
    fields: dict[str, Any] = {
        "op": "release",
        "name": "alice",
        "owner": OWNER,
        "seq": 7,
        "issued_at": ISSUED_AT,
        "gateway": GATEWAY,
    }
    return NameStatement(**{**fields, **overrides})


def signed(statement: NameStatement, private_key: bytes = PRIVATE_KEY) -> SignedStatement:
    return SignedStatement(statement=statement, signature=maxsign(private_key, statement.canonical()))


def refused(call: Any, *args: Any, **kwargs: Any) -> StatementInvalid:
    with pytest.raises(StatementInvalid) as caught:
        call(*args, **kwargs)
    return caught.value


# ------------------------------------------------------------------------------------------------ canonical


def test_the_fixture_keys_are_the_ones_written_below() -> None:
    assert (OWNER, GATEWAY) == (OWNER_HEX_LITERAL, GATEWAY_HEX_LITERAL)


def test_canonical_bytes_are_sorted_compact_json() -> None:
    # given a register statement with every field; when it is made canonical
    canonical = register().canonical()
    # then the bytes are exactly these
    assert canonical == (
        b'{"box_key":"0x000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",'
        b'"gateway":"0x30819F300D06092A864886F70D010101050003818D0030818902818100E6214E42D7093C201ECED81E40C13F83D1E7'
        b"54F427ABD81141AAB25964D5B62B4F7C634EB2B908E4A6CAACB87A39861AC0BAC876BE69CB2867D5189062447158408DAE53BD0F7F37"
        b"81B5D5ACE67B8C42FB27CDC9E401CF556B547ED86DF64C9522DAC2E12808C4E86FBB6AF9F0E656D14F36491FC686AB615C1F56D09F8C"
        b'29CF0203010001",'
        b'"issued_at":1795660441638,"name":"alice","op":"register",'
        b'"owner":"0x30819F300D06092A864886F70D010101050003818D0030818902818100D015FA6368990FFFF6E6407AD8D388902BBD2BB'
        b"B62A5486CAB232612979C980D2B1023B5131FD91C00C3DABF2574701464AE07668CB5F5852755E51360B9987A2238AAC70275C044BE57"
        b"BE13480001E3C10C50CFAD2D0528C15E8480C6E03B788CBC0FC6A868971F15D850EA96AA9A6472DCB47FE8879DC508F00C7DF73E1C3D"
        b'0203010001",'
        b'"payment_address":"MxG084YFVG7QG3CANA9ZUUH20FB4ENY85S6VW5UT4WV23T9RNUSAA1F4WG1CVK4",'
        b'"seq":1,"v":1}'
    )


def test_canonical_bytes_omit_the_fields_a_release_does_not_have() -> None:
    assert release().canonical() == (
        b'{"gateway":"' + GATEWAY_HEX_LITERAL.encode() + b'",'
        b'"issued_at":1795660441638,"name":"alice","op":"release",'
        b'"owner":"' + OWNER_HEX_LITERAL.encode() + b'",'
        b'"seq":7,"v":1}'
    )


def test_to_dict_omits_none_and_keeps_every_value() -> None:
    assert release().to_dict() == {
        "v": 1,
        "op": "release",
        "name": "alice",
        "owner": OWNER,
        "seq": 7,
        "issued_at": ISSUED_AT,
        "gateway": GATEWAY,
    }


def test_the_statement_exposes_its_keys_as_bytes() -> None:
    statement = register()
    assert (statement.owner_key, statement.box_key_bytes) == (from_hex(OWNER), bytes(range(32)))
    assert release().box_key_bytes is None


# ---------------------------------------------------------------------------------------------- signatures


def test_a_statement_signed_with_the_owner_key_verifies() -> None:
    # given a statement signed by the fixture 30 key, its owner
    signed_statement = signed(register())
    # when it is verified; then nothing is raised
    signed_statement.verify()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("op", "update"),
        ("name", "alicf"),
        ("owner", OTHER),
        ("box_key", to_hex(bytes(32))),
        ("payment_address", HEX_ADDRESS),
        ("payment_address", None),
        ("seq", 2),
        ("issued_at", ISSUED_AT + 1),
        ("gateway", GATEWAY_B),
    ],
)
def test_changing_any_single_field_breaks_the_signature(field: str, value: object) -> None:
    # given a signed statement
    original = signed(register())
    # when one field is changed and the signature kept
    tampered = SignedStatement(dataclasses.replace(original.statement, **{field: value}), original.signature)
    # then it no longer verifies
    error = refused(tampered.verify)
    assert (error.code, error.field, error.message) == (
        "signature_invalid",
        "signature",
        "the signature does not match the statement and its owner key",
    )


def test_a_changed_signature_byte_breaks_the_signature() -> None:
    original = signed(register())
    tampered = SignedStatement(original.statement, original.signature[:-1] + bytes([original.signature[-1] ^ 1]))
    assert refused(tampered.verify).code == "signature_invalid"


def test_a_signature_by_another_key_does_not_verify() -> None:
    # given alice's statement signed with the fixture 55 key instead of her own
    forged = signed(register(), OTHER_PRIVATE_KEY)
    # when it is verified; then it is refused
    assert refused(forged.verify).code == "signature_invalid"


def test_a_statement_naming_the_signer_as_owner_verifies_for_that_signer_only() -> None:
    signed(register(owner=OTHER), OTHER_PRIVATE_KEY).verify()
    assert refused(signed(register(owner=OTHER)).verify).code == "signature_invalid"


def test_a_signed_statement_round_trips_through_its_dict() -> None:
    original = signed(register())
    data = original.to_dict()
    assert data == {"statement": register().to_dict(), "signature": to_hex(original.signature)}
    assert SignedStatement.from_dict(data) == original


# ------------------------------------------------------------------------------------------ strict parsing


def _parse_error(data: object) -> tuple[str, str | None, str]:
    error = refused(NameStatement.from_dict, data)
    return error.code, error.field, error.message


def _with(**changes: Any) -> dict[str, Any]:
    return {**register().to_dict(), **changes}


def _without(key: str) -> dict[str, Any]:
    data = register().to_dict()
    del data[key]
    return data


def test_it_parses_what_it_wrote() -> None:
    assert NameStatement.from_dict(register().to_dict()) == register()
    assert NameStatement.from_dict(release().to_dict()) == release()


def test_it_refuses_a_statement_that_is_not_an_object() -> None:
    assert _parse_error([1, 2]) == ("statement_invalid", None, "a statement must be a JSON object")


def test_it_refuses_an_unknown_field() -> None:
    assert _parse_error(_with(note="hi")) == ("statement_invalid", "note", "note: is an unknown field")


@pytest.mark.parametrize("key", ["v", "op", "name", "owner", "seq", "issued_at", "gateway"])
def test_it_refuses_a_missing_required_field(key: str) -> None:
    assert _parse_error(_without(key)) == ("statement_invalid", key, f"{key}: is missing")


@pytest.mark.parametrize("key", ["box_key", "payment_address", "seq"])
def test_it_refuses_null_instead_of_an_omitted_field(key: str) -> None:
    assert _parse_error(_with(**{key: None})) == ("statement_invalid", key, f"{key}: must be omitted rather than null")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"v": 2}, "v", "v: must be 1"),
        ({"v": "1"}, "v", "v: must be 1"),
        ({"v": True}, "v", "v: must be 1"),
        ({"v": 1.0}, "v", "v: must be 1"),
        ({"op": "move"}, "op", "op: must be one of register, update, release, transfer, accept"),
        ({"op": ["register"]}, "op", "op: must be one of register, update, release, transfer, accept"),
        ({"name": "Alice"}, "name", "name: must be in normal form ('alice')"),
        ({"name": "ＡＬＩＣＥ"}, "name", "name: must be in normal form ('alice')"),  # noqa: RUF001
        ({"name": "a--b"}, "name", "name: a name cannot have two separators (- or _) in a row"),
        ({"name": ""}, "name", "name: the name is empty"),
        ({"name": 5}, "name", "name: must be a string"),
        ({"owner": "0x" + OWNER[2:].lower()}, "owner", "owner: must be written as 0x followed by upper-case hex"),
        ({"owner": "0X" + OWNER[2:]}, "owner", "owner: must be 0x followed by the hex of an RSA-1024 public key"),
        ({"owner": maxima_fixture("30-")["parsed"]["response"]["mxpublickey"]}, "owner",
         "owner: must be 0x followed by the hex of an RSA-1024 public key"),
        ({"owner": OWNER[:-2]}, "owner", "owner: is not an RSA-1024 public key"),
        ({"owner": "0xZZ"}, "owner", "owner: is not an RSA-1024 public key"),
        ({"owner": 7}, "owner", "owner: must be a string"),
        ({"gateway": GATEWAY + "00"}, "gateway", "gateway: is not an RSA-1024 public key"),
        ({"box_key": to_hex(bytes(31))}, "box_key", "box_key: must be 32 bytes, not 31"),
        ({"box_key": "0x" + BOX_KEY[2:].lower()}, "box_key",
         "box_key: must be written as 0x followed by upper-case hex"),
        ({"box_key": "alice"}, "box_key", "box_key: must be 0x followed by the hex of 32 bytes"),
        ({"payment_address": MX_ADDRESS[:-1] + "5"}, "payment_address", "payment_address: is not a valid Mx address"),
        ({"payment_address": mx_encode(bytes(31))}, "payment_address",
         "payment_address: must be an address of 32 bytes"),
        ({"payment_address": HEX_ADDRESS.lower()}, "payment_address",
         "payment_address: must be written as 0x followed by upper-case hex"),
        ({"payment_address": "0x" + "AB" * 33}, "payment_address", "payment_address: must be 32 bytes, not 33"),
        ({"seq": 0}, "seq", f"seq: must be between 1 and {MAX_SAFE_INTEGER}"),
        ({"seq": 2**53}, "seq", f"seq: must be between 1 and {MAX_SAFE_INTEGER}"),
        ({"seq": "1"}, "seq", "seq: must be an integer"),
        ({"seq": True}, "seq", "seq: must be an integer"),
        ({"seq": 1.0}, "seq", "seq: must be an integer"),
        ({"issued_at": -1}, "issued_at", f"issued_at: must be between 0 and {MAX_SAFE_INTEGER}"),
        ({"issued_at": 1.5}, "issued_at", "issued_at: must be an integer"),
    ],
)  # fmt: skip
def test_it_refuses_a_wrong_value_and_names_the_field(changes: dict[str, Any], field: str, message: str) -> None:
    assert _parse_error(_with(**changes)) == ("statement_invalid", field, message)


def test_it_requires_a_box_key_to_register_or_update() -> None:
    for op in ("register", "update"):
        data = _without("box_key") | {"op": op}
        assert _parse_error(data) == ("statement_invalid", "box_key", f"box_key: is required for {op}")


@pytest.mark.parametrize(("key", "value"), [("box_key", BOX_KEY), ("payment_address", MX_ADDRESS)])
def test_it_refuses_a_release_that_carries_a_box_key_or_an_address(key: str, value: str) -> None:
    data = release().to_dict() | {key: value}
    assert _parse_error(data) == ("statement_invalid", key, f"{key}: must be omitted from a release")


def test_it_accepts_a_payment_address_in_either_form_or_none() -> None:
    assert register(payment_address=HEX_ADDRESS).payment_address == HEX_ADDRESS
    assert register(payment_address=MX_ADDRESS).payment_address == MX_ADDRESS
    assert "payment_address" not in register(payment_address=None).to_dict()


def test_it_accepts_a_short_name_because_reservation_is_registry_policy() -> None:
    assert register(name="ab").name == "ab"


def test_a_statement_error_is_an_mns_error() -> None:
    error = refused(NameStatement.from_dict, _with(v=2))
    assert isinstance(error, MNSError)
    assert str(error) == "v: must be 1"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"statement": {}}, None, "a signed statement has exactly: statement, signature"),
        ({"statement": {}, "signature": "0x00", "extra": 1}, None,
         "a signed statement has exactly: statement, signature"),
        ("0x00", None, "a signed statement has exactly: statement, signature"),
        ({"statement": {}, "signature": "0x00"}, "signature", "signature: must be 128 bytes, not 1"),
        ({"statement": {}, "signature": b"\x00" * 128}, "signature", "signature: must be a string"),
        ({"statement": {}, "signature": "0x" + "ab" * 128}, "signature",
         "signature: must be written as 0x followed by upper-case hex"),
        ({"statement": {"v": 1}, "signature": "0x" + "AB" * 128}, "op", "op: is missing"),
    ],
)  # fmt: skip
def test_it_refuses_a_malformed_signed_statement(data: object, field: str | None, message: str) -> None:
    error = refused(SignedStatement.from_dict, data)
    assert (error.code, error.field, error.message) == ("statement_invalid", field, message)


def test_a_signed_statement_must_hold_a_128_byte_signature() -> None:
    error = refused(SignedStatement, register(), b"\x00" * 127)
    assert (error.code, error.field, error.message) == (
        "statement_invalid",
        "signature",
        "signature: must be 128 bytes",
    )


# ---------------------------------------------------------------------------------------------- succession


def update(**overrides: Any) -> NameStatement:
    return register(**{"op": "update", "seq": 2, **overrides})


def _succession_error(previous: NameStatement | None, new: NameStatement) -> tuple[str, str]:
    error = refused(check_successor, previous, new)
    return error.code, error.message


@pytest.mark.parametrize("seq", [1, 5])
def test_a_first_statement_is_a_register_with_any_seq(seq: int) -> None:
    check_successor(None, register(seq=seq))


@pytest.mark.parametrize("op", ["update", "release"])
def test_a_first_statement_that_is_not_a_register_is_refused(op: str) -> None:
    new = update() if op == "update" else release()
    assert _succession_error(None, new) == ("statement_not_registered", f"'alice' is not registered: {op} refused")


def test_an_update_and_a_release_by_the_owner_follow_a_register() -> None:
    check_successor(register(), update())
    check_successor(update(), release(seq=3))


def test_a_statement_about_another_name_is_refused() -> None:
    assert _succession_error(register(), update(name="bob")) == (
        "statement_wrong_name",
        "the statement is about 'bob', not 'alice'",
    )


def test_the_current_statement_again_is_a_duplicate() -> None:
    assert _succession_error(update(), update()) == (
        "statement_duplicate",
        "this statement is already the current one (seq 2)",
    )


@pytest.mark.parametrize("seq", [1, 2])
def test_a_seq_that_is_not_greater_is_stale(seq: int) -> None:
    # given the current statement has seq 2; when a different one with seq 1 or 2 arrives
    new = update(seq=seq, issued_at=ISSUED_AT + 5)
    # then it is refused as stale
    assert _succession_error(update(), new) == (
        "statement_stale_seq",
        f"seq {seq} is not greater than the current seq 2",
    )


def test_only_the_owner_may_follow_a_held_name() -> None:
    assert _succession_error(register(), update(owner=OTHER)) == (
        "statement_wrong_owner",
        "'alice' belongs to another key",
    )
    assert _succession_error(register(), register(owner=OTHER, seq=2)) == (
        "statement_wrong_owner",
        "'alice' belongs to another key",
    )


def test_a_held_name_cannot_be_registered_again_by_its_owner() -> None:
    assert _succession_error(update(), register(seq=3)) == (
        "statement_already_registered",
        "'alice' is already registered: use update",
    )


@pytest.mark.parametrize("op", ["update", "release"])
def test_after_a_release_only_a_register_may_follow(op: str) -> None:
    new = update(seq=8) if op == "update" else release(seq=8)
    assert _succession_error(release(), new) == (
        "statement_after_release",
        "'alice' was released: only register may follow",
    )


def test_anyone_may_register_a_released_name_with_a_greater_seq() -> None:
    check_successor(release(), register(owner=OTHER, seq=8))
    check_successor(release(), register(seq=8))
    assert _succession_error(release(), register(owner=OTHER, seq=7))[0] == "statement_stale_seq"


def test_an_update_may_move_the_name_to_another_gateway_and_go_back_in_time() -> None:
    check_successor(register(), update(gateway=GATEWAY_B, issued_at=ISSUED_AT - 1000))


# ---------------------------------------------------------------------------------------------- properties

_MAX_SAFE = st.integers(min_value=0, max_value=MAX_SAFE_INTEGER)


@st.composite
def statements(draw: st.DrawFn) -> NameStatement:
    op = draw(st.sampled_from(["register", "update", "release"]))
    held = op != "release"
    box_key = to_hex(draw(st.binary(min_size=32, max_size=32))) if held else None
    address = draw(st.one_of(st.none(), st.binary(min_size=32, max_size=32).flatmap(
        lambda raw: st.sampled_from([to_hex(raw), mx_encode(raw)])))) if held else None  # fmt: skip
    return NameStatement(
        op=op,
        name=draw(st.from_regex(GRAMMAR, fullmatch=True).filter(lambda name: len(name) <= MAX_LENGTH)),
        owner=draw(st.sampled_from([OWNER, OTHER, GATEWAY_B])),
        box_key=box_key,
        payment_address=address,
        seq=draw(st.integers(min_value=1, max_value=MAX_SAFE_INTEGER)),
        issued_at=draw(_MAX_SAFE),
        gateway=draw(st.sampled_from([GATEWAY, GATEWAY_B])),
    )


@given(statements())
def test_a_statement_round_trips_through_its_dict(statement: NameStatement) -> None:
    assert NameStatement.from_dict(statement.to_dict()) == statement


@given(statements())
def test_canonical_bytes_are_stable_and_are_the_dict_as_json(statement: NameStatement) -> None:
    canonical = statement.canonical()
    reparsed = NameStatement.from_dict(json.loads(canonical))
    assert reparsed.canonical() == canonical
    assert json.loads(canonical) == statement.to_dict()
    assert b" " not in canonical
    assert list(json.loads(canonical)) == sorted(statement.to_dict())


@given(statements(), st.binary(min_size=128, max_size=128))
def test_any_signed_statement_round_trips_through_json(statement: NameStatement, signature: bytes) -> None:
    original = SignedStatement(statement, signature)
    assert SignedStatement.from_dict(json.loads(json.dumps(original.to_dict()))) == original


# ------------------------------------------------------------------------------------------------- vectors


def _vectors() -> list[dict[str, Any]]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]


def test_the_vectors_file_is_what_the_script_makes() -> None:
    # given the committed script; when it builds the vectors; then the text equals the committed file
    path = REPO / "docs" / "vectors" / "make_statement_vectors.py"
    spec = importlib.util.spec_from_file_location("make_statement_vectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == VECTORS.read_text(encoding="utf-8")


@pytest.mark.parametrize("index", range(7))
def test_every_vector_reproduces_and_verifies(index: int) -> None:
    vector = _vectors()[index]
    statement = NameStatement.from_dict(vector["statement"])
    private_key = {OWNER: PRIVATE_KEY, OTHER: OTHER_PRIVATE_KEY}[statement.owner]
    # the canonical bytes, their text and the signature are reproduced exactly
    assert to_hex(statement.canonical()) == vector["canonical_hex"]
    assert statement.canonical().decode() == vector["canonical"]
    assert to_hex(maxsign(private_key, statement.canonical())) == vector["signature_hex"]
    assert vector["owner_publickey_hex"] == statement.owner
    # and the signed statement verifies
    SignedStatement(statement, from_hex(vector["signature_hex"])).verify()


def test_the_first_three_vectors_are_one_valid_chain() -> None:
    first, second, third = (NameStatement.from_dict(vector["statement"]) for vector in _vectors()[:3])
    check_successor(None, first)
    check_successor(first, second)
    check_successor(second, third)


def test_vectors_five_to_seven_are_a_transfer_chain_and_the_last_is_the_new_owners() -> None:
    first, offer, accept = (NameStatement.from_dict(vector["statement"]) for vector in _vectors()[4:7])
    check_successor(None, first)
    check_successor(first, offer)
    check_successor(offer, accept)
    assert (offer.to, accept.owner, accept.accepts) == (OTHER, OTHER, offer.seq)


def test_the_vectors_are_the_ops_in_this_order() -> None:
    assert [vector["statement"]["op"] for vector in _vectors()] == [
        "register",
        "update",
        "release",
        "register",
        "register",
        "transfer",
        "accept",
    ]


# ------------------------------------------------------------------------------------------ data and transfers

EXPIRES_AT = ISSUED_AT + 7 * 24 * 3600 * 1000


def transfer(**overrides: Any) -> NameStatement:
    fields: dict[str, Any] = {"op": "transfer", "seq": 2, "to": OTHER, "expires_at": EXPIRES_AT}
    return register(**{**fields, **overrides})


def accept(**overrides: Any) -> NameStatement:
    fields: dict[str, Any] = {"op": "accept", "owner": OTHER, "seq": 3, "accepts": 2, "issued_at": ISSUED_AT + 1}
    return register(**{**fields, "payment_address": None, **overrides})


def test_a_data_record_is_signed_in_its_canonical_form_with_sorted_keys_at_every_level() -> None:
    statement = register(data={"b": {"z": 1, "a": [True, "é"]}, "a": "x"})
    assert b'"data":{"a":"x","b":{"a":[true,"\xc3\xa9"],"z":1}}' in statement.canonical()
    SignedStatement.from_dict(signed(statement).to_dict()).verify()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "must be a non-empty JSON object"),
        ([1], "must be a non-empty JSON object"),
        ("site", "must be a non-empty JSON object"),
        ({"a": None}, "must not hold null"),
        ({"a": 1.5}, "no fractions"),
        ({"a": 2**53}, "within ±(2^53-1)"),
        ({"a b": 1}, "keys are 1 to 64 characters"),
        ({"k" * 65: 1}, "keys are 1 to 64 characters"),
        ({"a": "line\nbreak"}, "control characters"),
        ({"a": "\ud800"}, "lone surrogates"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "nested deeper than 4 levels"),
        ({f"k{i}": i for i in range(33)}, "at most 32"),
        ({"a": "x" * 1020}, "at most 1024"),
    ],
)
def test_a_data_record_outside_the_bounds_is_refused(data: object, problem: str) -> None:
    error = refused(register, data=data)
    assert (error.code, error.field) == ("statement_invalid", "data")
    assert problem in error.message


def test_a_data_record_of_exactly_1024_canonical_bytes_is_accepted() -> None:
    data = {"a": "x" * (1024 - len(b'{"a":""}'))}
    assert register(data=data).data == data


def test_a_data_record_may_hold_any_printable_text_outside_the_basic_plane() -> None:
    assert register(data={"smile": "😀"}).canonical().count("😀".encode()) == 1


def test_a_release_carries_no_data() -> None:
    assert refused(release, data={"a": 1}).field == "data"


def test_a_transfer_needs_its_new_key_and_a_deadline_within_30_days() -> None:
    assert refused(transfer, to=None).message == "to: is required for transfer"
    assert refused(transfer, expires_at=None).message == "expires_at: is required for transfer"
    assert refused(transfer, to=OWNER).message == "to: must be another key than the owner's"
    assert refused(transfer, expires_at=ISSUED_AT).field == "expires_at"
    assert refused(transfer, expires_at=ISSUED_AT + 30 * 24 * 3600 * 1000 + 1).field == "expires_at"
    assert transfer(expires_at=ISSUED_AT + 30 * 24 * 3600 * 1000).to == OTHER


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"op": "update", "to": OTHER}, "to"),
        ({"op": "update", "accepts": 1}, "accepts"),
        ({"op": "release", "expires_at": EXPIRES_AT}, "expires_at"),
    ],
)
def test_the_transfer_fields_belong_to_their_op_only(changes: dict[str, Any], field: str) -> None:
    maker = release if changes["op"] == "release" else register
    assert (
        refused(maker, **changes).message
        == f"{field}: belongs to {'transfer' if field != 'accepts' else 'accept'} only"
    )


def test_an_accept_names_an_earlier_offer_and_carries_a_box_key() -> None:
    assert refused(accept, accepts=None).message == "accepts: is required for accept"
    assert refused(accept, accepts=3).field == "accepts"
    assert refused(accept, box_key=None).field == "box_key"


def test_the_new_key_accepts_a_pending_offer_and_takes_the_name() -> None:
    check_successor(transfer(), accept())


def test_the_owner_withdraws_an_offer_by_any_later_statement_of_its_own() -> None:
    for withdrawal in (register(op="update", seq=3), transfer(seq=3), release(seq=3)):
        check_successor(transfer(), withdrawal)
    assert _succession_error(register(op="update", seq=3), accept(seq=4))[0] == "transfer_not_pending"


@pytest.mark.parametrize(
    ("previous", "new", "code"),
    [
        (register(), accept(seq=2, accepts=1), "transfer_not_pending"),
        (transfer(), accept(owner=GATEWAY_B), "statement_wrong_owner"),
        (transfer(), accept(accepts=1), "transfer_wrong_offer"),
        (transfer(), accept(issued_at=EXPIRES_AT + 1), "transfer_expired"),
        (transfer(), accept(seq=2, accepts=1), "statement_stale_seq"),
        (transfer(), register(owner=OTHER, seq=3), "statement_wrong_owner"),
        (transfer(), register(op="update", owner=OTHER, seq=3), "statement_wrong_owner"),
    ],
)
def test_an_accept_that_does_not_fit_the_offer_is_refused(
    previous: NameStatement, new: NameStatement, code: str
) -> None:
    assert _succession_error(previous, new)[0] == code


def test_an_offer_is_open_until_its_deadline_by_the_gateways_clock() -> None:
    offer_open(transfer(), EXPIRES_AT)
    offer_open(register(), EXPIRES_AT + 1)
    assert refused(offer_open, transfer(), EXPIRES_AT + 1).code == "transfer_expired"
