"""Hex, Mx, public keys and Maxima addresses, checked against real-node output (docs/vectors/maxima)."""

import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from mns_client.protocol.codecs import (
    RSA_SPKI_PREFIX,
    MaximaAddress,
    PermanentAddress,
    canonical_public_key,
    from_hex,
    mx_decode,
    mx_encode,
    parse_address,
    parse_public_key,
    public_key_hex,
    to_hex,
)
from mns_client.protocol.errors import CodecError, MNSError
from testsupport import maxima_fixture

MX_KEY_PREFIX = "MxG18HGG6FJ038614Y8CW46US6G20810K0070CD00Z83282G60G1"


def node_info(prefix: str) -> dict:
    return maxima_fixture(prefix)["parsed"]["response"]


def fixture30_public() -> bytes:
    return from_hex(node_info("30-")["publickey"])


def rsa_spki(bits: int) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


# ------------------------------------------------------------------------------------------------------ hex


def test_to_hex_writes_0x_and_uppercase_like_a_node():
    assert to_hex(b"hello-world") == "0x68656C6C6F2D776F726C64"
    assert to_hex(b"") == "0x"


def test_from_hex_reads_either_case_and_prefix():
    assert from_hex("0x68656C6C6F2D776F726C64") == b"hello-world"
    assert from_hex("0X68656c6c6f") == b"hello"
    assert from_hex("0x") == b""


@pytest.mark.parametrize(
    "text",
    [
        "68656C",
        "0x6",
        "0x6G",
        "0x 68",
        "0x68 ",
        " 0x68",
        "0x68\n",
        "0x+68",
        "0x\u0660\u0661",  # Arabic-Indic digits
        "x68",
        "",
        "0x0x00",
        "Mx00",
    ],
)
def test_from_hex_refuses_anything_but_0x_and_an_even_number_of_hex_digits(text):
    with pytest.raises(CodecError):
        from_hex(text)


def test_from_hex_refuses_bytes():
    with pytest.raises(CodecError):
        from_hex(b"0x00")  # type: ignore[arg-type]


def test_codec_error_is_a_value_error_and_a_project_error():
    with pytest.raises(ValueError, match="0x followed by") as caught:
        from_hex("nope")
    assert isinstance(caught.value, MNSError)
    assert caught.value.code == "codec_error"


# What ``from_hex`` accepts, spelled as a pattern: it decodes with ``binascii.a2b_hex`` and must agree with it.
_HEX_SPEC = re.compile(r"0[xX]((?:[0-9A-Fa-f]{2})*)")


@given(
    st.one_of(
        st.text(max_size=12),
        st.builds(
            str.__add__,
            st.sampled_from(["0x", "0X", "x", "", " 0x"]),
            st.text(alphabet="0123456789abcdefABCDEFgG +\t\n\u0660\uff11", max_size=10),
        ),
    )
)
def test_from_hex_accepts_exactly_0x_and_an_even_number_of_ascii_hex_digits(text):
    spec = _HEX_SPEC.fullmatch(text)
    if spec is None:
        with pytest.raises(CodecError):
            from_hex(text)
    else:
        assert from_hex(text) == bytes.fromhex(spec.group(1))


@given(st.binary(max_size=512))
def test_hex_round_trips(data):
    assert from_hex(to_hex(data)) == data
    assert to_hex(data) == "0x" + data.hex().upper()


# ------------------------------------------------------------------------------------------------------- Mx


@pytest.mark.parametrize("index", range(5))
def test_mx_encode_reproduces_every_mxpublickey_of_fixture_57(index):
    vector = maxima_fixture("57-")["vectors"][index]

    assert mx_encode(from_hex(vector["publickey"])) == vector["mxpublickey"]
    assert mx_decode(vector["mxpublickey"]) == from_hex(vector["publickey"])


@pytest.mark.parametrize("index", range(3))
def test_mx_encode_reproduces_every_mxprivatekey_of_fixture_57(index):
    vector = maxima_fixture("57-")["private_key_vectors"][index]

    assert mx_encode(from_hex(vector["privatekey"])) == vector["mxprivatekey"]
    assert mx_decode(vector["mxprivatekey"]) == from_hex(vector["privatekey"])


def test_mx_encode_also_gives_the_miniaddress_of_a_script_address():
    # given the 32-byte script address and its "miniaddress" as newscript printed them (fixture 81)
    script = node_info("81-")

    assert mx_encode(from_hex(script["address"])) == script["miniaddress"]


@given(st.binary(max_size=2048))
def test_mx_round_trips(data):
    text = mx_encode(data)

    assert text.startswith("Mx")
    assert mx_decode(text) == data


MX_DIGITS = "0123456789ABCDEFGHWJKYMNZPQRSTUV"


@given(
    st.binary(max_size=64),
    st.sampled_from(["", "0", "00", "1", "V"]),
    st.sampled_from([0, 0, 1, 3]),
    st.sampled_from(["", "", "0", "W"]),
)
def test_mx_decode_accepts_a_text_only_in_the_spelling_mx_encode_gives(data, inserted, cut, appended):
    # given a value's text, or a text near it: digits put in front (a leading zero among them) or at the end, or
    # its last digits cut
    text = mx_encode(data)
    near = "Mx" + inserted + text[2 : len(text) - cut] + appended

    try:
        decoded = mx_decode(near)
    except CodecError:
        assert near != text
    else:
        assert mx_encode(decoded) == near


def flip_one_digit(text: str, position: int) -> str:
    digit = text[position]
    return text[:position] + ("1" if digit != "1" else "2") + text[position + 1 :]


def test_mx_decode_refuses_a_wrong_checksum():
    # given a real mxpublickey with one digit changed inside the key bytes (not in the marker or length)
    good = maxima_fixture("57-")["vectors"][0]["mxpublickey"]
    bad = flip_one_digit(good, 100)

    with pytest.raises(CodecError, match="checksum"):
        mx_decode(bad)


def test_mx_decode_refuses_a_truncated_value():
    good = maxima_fixture("57-")["vectors"][0]["mxpublickey"]

    for cut in (1, 2, 8, len(good) - 3):
        with pytest.raises(CodecError):
            mx_decode(good[:-cut])


@pytest.mark.parametrize("prefix", ["mx", "MX", "0x", "", "Mx "])
def test_mx_decode_refuses_a_wrong_prefix(prefix):
    good = maxima_fixture("57-")["vectors"][0]["mxpublickey"]

    with pytest.raises(CodecError):
        mx_decode(prefix + good[2:])


@pytest.mark.parametrize("text", ["Mx", "Mx0", "MxI", "MxL", "MxO", "Mxg18H", "Mx-1", "Mx1 2", "Mx\u0661", "hello"])
def test_mx_decode_refuses_garbage(text):
    with pytest.raises(CodecError):
        mx_decode(text)


def test_mx_decode_refuses_lowercase_and_leading_zero_digits_so_every_value_has_one_spelling():
    good = mx_encode(b"abc")

    with pytest.raises(CodecError):
        mx_decode("Mx" + good[2:].lower())
    with pytest.raises(CodecError):
        mx_decode("Mx0" + good[2:])


def test_mx_encode_refuses_data_longer_than_its_uint16_length():
    with pytest.raises(CodecError):
        mx_encode(bytes(65536))


# -------------------------------------------------------------------------------------------------- keys


def test_rsa_spki_prefix_is_the_one_every_node_key_starts_with():
    assert to_hex(RSA_SPKI_PREFIX) == "0x30819F300D06092A864886F70D010101050003818D0030818902818100"


@pytest.mark.parametrize("index", range(5))
def test_parse_public_key_reads_hex_mx_and_der_to_the_same_162_bytes(index):
    vector = maxima_fixture("57-")["vectors"][index]
    der = from_hex(vector["publickey"])

    assert len(der) == 162
    assert parse_public_key(vector["publickey"]) == der
    assert parse_public_key(vector["publickey"].lower().replace("0x", "0X", 1)) == der
    assert parse_public_key(vector["mxpublickey"]) == der
    assert parse_public_key(der) == der
    assert public_key_hex(der) == vector["publickey"]


def test_parse_public_key_refuses_a_2048_bit_rsa_key():
    with pytest.raises(CodecError):
        parse_public_key(rsa_spki(2048))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()).public_key(),
        lambda: ed25519.Ed25519PrivateKey.generate().public_key(),
    ],
)
def test_parse_public_key_refuses_a_non_rsa_key(make):
    der = make().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    with pytest.raises(CodecError):
        parse_public_key(der)
    with pytest.raises(CodecError):
        parse_public_key(mx_encode(der))


def test_parse_public_key_refuses_a_key_of_the_right_length_that_does_not_load():
    # the right prefix and length, but the modulus is not a positive DER integer followed by the exponent
    der = RSA_SPKI_PREFIX + b"\xff" * (162 - len(RSA_SPKI_PREFIX))

    with pytest.raises(CodecError):
        parse_public_key(der)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0x",
        "0x1234",
        "hello",
        b"",
        b"\x30" * 162,
        "0x30819F300D06092A864886F70D010101050003818D0030818902818100",
        "Mx" + "1" * 40,
        12345,
        None,
    ],
)
def test_parse_public_key_refuses_garbage(value):
    with pytest.raises(CodecError):
        parse_public_key(value)


def test_parse_public_key_refuses_a_truncated_or_extended_key():
    der = fixture30_public()

    for bad in (der[:-1], der + b"\x00", der[1:]):
        with pytest.raises(CodecError):
            parse_public_key(bad)


def test_public_key_hex_refuses_an_invalid_key():
    with pytest.raises(CodecError):
        public_key_hex(b"\x00" * 162)


@pytest.mark.parametrize("index", range(5))
def test_canonical_public_key_gives_one_spelling_for_every_form_of_a_key(index):
    vector = maxima_fixture("57-")["vectors"][index]
    spellings = [
        vector["publickey"],
        vector["publickey"].lower(),
        "0X" + vector["publickey"][2:],
        vector["mxpublickey"],
        from_hex(vector["publickey"]),
    ]

    assert {canonical_public_key(spelling) for spelling in spellings} == {vector["publickey"]}


@pytest.mark.parametrize("value", [None, 162, True, "", "alice", "0x00", b"\x00" * 162, ["0x00"]])
def test_canonical_public_key_raises_codec_error_for_anything_that_is_not_a_key(value):
    with pytest.raises(CodecError):
        canonical_public_key(value)


# ---------------------------------------------------------------------------------------- Maxima addresses


@pytest.mark.parametrize("field", ["mls", "localidentity", "p2pidentity", "contact"])
def test_maxima_address_parses_every_address_node_a_reported(field):
    # given node A's maxima info (fixture 01), where all four addresses are A's MLS address
    text = node_info("01-")[field]

    address = MaximaAddress.parse(text)

    assert len(address.key) == 162
    assert (address.host, address.port) == ("127.0.0.1", 9001)
    assert str(address) == text
    assert address.key != from_hex(node_info("01-")["publickey"])  # the MLS key, not the identity


def test_node_b_addresses_decode_to_its_mls_at_a_and_its_own_local_identity():
    info = node_info("02-")

    mls = MaximaAddress.parse(info["mls"])
    local = MaximaAddress.parse(info["localidentity"])
    contact = MaximaAddress.parse(info["contact"])

    assert mls == MaximaAddress.parse(node_info("01-")["p2pidentity"])
    assert (local.host, local.port) == ("127.0.0.1", 10001)
    assert (contact.host, contact.port) == ("127.0.0.1", 9001)
    assert contact.key == from_hex(node_info("03-")["hosts"][0]["public"])  # B's per-host key at A
    assert str(local) == info["localidentity"]


def test_the_webhook_to_key_is_the_key_inside_the_address_that_was_used():
    # fixture 53: "to" of a received message is the key of the address it was sent to, not the identity
    received_via_local = json.loads(maxima_fixture("11-")["raw_body"])["data"]["to"]
    received_via_contact = json.loads(maxima_fixture("13-")["raw_body"])["data"]["to"]
    info = node_info("02-")

    assert received_via_local == MaximaAddress.parse(info["localidentity"]).key_hex
    assert received_via_contact == MaximaAddress.parse(node_info("61-")["contacts"][0]["currentaddress"]).key_hex
    assert received_via_local != info["publickey"]


@pytest.mark.parametrize("prefix", ["66-", "67-", "69-", "69c-"])
def test_permanent_address_parses_the_max_addresses_that_were_sent(prefix):
    params = maxima_fixture(prefix)["parsed"]["params"]
    text = params.get("maxaddress") or params["to"]

    address = PermanentAddress.parse(text)

    assert str(address) == text
    assert address.mls == MaximaAddress.parse(node_info("01-")["p2pidentity"])
    assert parse_address(text) == address


def test_permanent_address_identity_is_node_b_identity_key_in_fixture_66():
    text = maxima_fixture("66-")["parsed"]["params"]["maxaddress"]

    address = PermanentAddress.parse(text)

    assert address.identity == from_hex(node_info("02-")["publickey"])
    assert address.identity_hex == node_info("66-")["publickey"]


def test_parse_address_returns_a_maxima_address_for_an_mx_address():
    text = node_info("02-")["localidentity"]

    assert parse_address(text) == MaximaAddress.parse(text)


def mls_text() -> str:
    return node_info("01-")["mls"]


def with_host_port(host_port: str) -> str:
    return mls_text().split("@")[0] + "@" + host_port


@pytest.mark.parametrize(
    "host_port",
    [
        "127.0.0.1",
        "127.0.0.1:",
        ":9001",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:+9001",
        "127.0.0.1:09001",
        "127.0.0.1: 9001",
        "127.0.0.1:9001 ",
        "127.0.0.1:9x",
        "127.0.0.1:\u0669\u0660\u0660\u0661",
        "bad host:9001",
        "host;maxi:9001",
        "host#x:9001",
        'host"x:9001',
        "host'x:9001",
        "host\n:9001",
        "-host:9001",
        "host-:9001",
        "a..b:9001",
        "999.1.1.1:9001",
        "1.2.3:9001",
        "ho@st:9001",
        "::1:9001",
        "[::1:9001",
        "[fe80::1%eth0]:9001",
        "[1.2.3.4]:9001",
        "h\u00e9st:9001",
        "a" * 64 + ":9001",
    ],
)
def test_maxima_address_refuses_a_bad_host_or_port(host_port):
    with pytest.raises(CodecError):
        MaximaAddress.parse(with_host_port(host_port))


@pytest.mark.parametrize(
    ("host_port", "host", "port"),
    [
        ("example.org:9001", "example.org", 9001),
        ("minima_one:1", "minima_one", 1),
        ("node-1.example.org:65535", "node-1.example.org", 65535),
        ("[::1]:9001", "::1", 9001),
        ("[2001:db8::7]:10001", "2001:db8::7", 10001),
    ],
)
def test_maxima_address_accepts_hostnames_and_ip_literals(host_port, host, port):
    text = with_host_port(host_port)

    address = MaximaAddress.parse(text)

    assert (address.host, address.port) == (host, port)
    assert str(address) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Mx",
        "@127.0.0.1:9001",
        "0x30819F@127.0.0.1:9001",
        "hello",
        "MAX#",
        "MAX#0x00#Mx00@127.0.0.1:9001",
    ],
)
def test_parse_address_refuses_garbage(text):
    with pytest.raises(CodecError):
        parse_address(text)


def test_maxima_address_refuses_a_key_that_is_not_rsa_1024():
    bad = mx_encode(rsa_spki(2048))

    with pytest.raises(CodecError):
        MaximaAddress.parse(bad + "@127.0.0.1:9001")


def test_permanent_address_refuses_a_missing_part_or_an_mx_identity():
    good = maxima_fixture("66-")["parsed"]["params"]["maxaddress"]
    _, identity, mls = good.split("#")

    for bad in (f"MAX#{identity}", f"MAX#{identity}#", f"MAX##{mls}", f"MAX#{mx_encode(from_hex(identity))}#{mls}"):
        with pytest.raises(CodecError):
            PermanentAddress.parse(bad)
    with pytest.raises(CodecError):
        PermanentAddress.parse(f"MAX#{identity}#{mls}#extra")


def test_maxima_address_constructor_validates_its_fields():
    key = fixture30_public()

    assert str(MaximaAddress(key=key, host="10.0.0.1", port=9001)).endswith("@10.0.0.1:9001")
    for kwargs in (
        {"key": key[:-1], "host": "10.0.0.1", "port": 9001},
        {"key": key, "host": "a b", "port": 9001},
        {"key": key, "host": "10.0.0.1", "port": 0},
        {"key": key, "host": "10.0.0.1", "port": True},
        {"key": to_hex(key), "host": "10.0.0.1", "port": 9001},
    ):
        with pytest.raises(CodecError):
            MaximaAddress(**kwargs)


_label = st.from_regex(r"[a-z0-9_](?:[a-z0-9_-]{0,10}[a-z0-9_])?", fullmatch=True)
_hostname = st.lists(_label, min_size=1, max_size=4).map(".".join).filter(lambda h: not h.replace(".", "").isdigit())
_hosts = st.one_of(_hostname, st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))


@given(host=_hosts, port=st.integers(min_value=1, max_value=65535))
def test_maxima_and_permanent_addresses_round_trip(host, port):
    key = fixture30_public()
    address = MaximaAddress(key=key, host=host, port=port)

    assert MaximaAddress.parse(str(address)) == address
    permanent = PermanentAddress(identity=key, mls=address)
    assert PermanentAddress.parse(str(permanent)) == permanent
    assert parse_address(str(permanent)) == permanent
