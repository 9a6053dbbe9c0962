"""Maxima's RSA scheme and NaCl sealed boxes, checked against real-node output (docs/vectors/maxima 30-53)."""

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_der_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from mns_client.protocol.codecs import from_hex, mx_encode, parse_public_key
from mns_client.protocol.crypto import (
    MaximaPrivateKey,
    box_keypair,
    generate_maxima_keypair,
    maxdecrypt,
    maxencrypt,
    maxima_public_key,
    maxsign,
    maxverify,
    seal,
    unseal,
)
from mns_client.protocol.errors import CryptoError
from testsupport import maxima_fixture


def params(prefix: str) -> dict:
    return maxima_fixture(prefix)["parsed"]["params"]


def response(prefix: str) -> dict:
    return maxima_fixture(prefix)["parsed"]["response"]


def private30() -> bytes:
    return from_hex(response("30-")["privatekey"])


def public30() -> bytes:
    return from_hex(response("30-")["publickey"])


def fields(blob: bytes) -> list[bytes]:
    """Split a maxencrypt blob by hand (u32-BE length, bytes) x 3."""
    out, offset = [], 0
    while offset < len(blob):
        (size,) = struct.unpack_from(">I", blob, offset)
        out.append(blob[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return out


# ------------------------------------------------------------------------------------------------- keys


def test_the_fixture_30_private_key_belongs_to_its_public_key():
    assert maxima_public_key(private30()) == public30()
    assert len(private30()) == maxima_fixture("53-")["results"]["key"]["private_der_len"] == 634


def test_generate_maxima_keypair_makes_an_rsa_1024_pair_like_maxcreate():
    private, public = generate_maxima_keypair()

    assert len(public) == 162
    assert parse_public_key(public) == public
    assert maxima_public_key(private) == public
    assert private[:2] == bytes.fromhex("3082")  # a PKCS#8 SEQUENCE, like maxcreate's privatekey
    assert mx_encode(public).startswith("MxG18HGG6FJ038614Y8CW46US6G20810K0070CD00Z83282G60G1")
    assert maxverify(public, b"x", maxsign(private, b"x")) is True


def test_generated_keypairs_differ():
    assert generate_maxima_keypair()[1] != generate_maxima_keypair()[1]


# ----------------------------------------------------------------------------------------- sign / verify


@pytest.mark.parametrize(("prefix", "data_field"), [("31-", None), ("32-", None), ("33-", "data_utf8_hex")])
def test_maxsign_reproduces_the_node_signature_exactly(prefix, data_field):
    # given the data a node signed with the fixture 30 private key (PKCS#1 v1.5 is deterministic)
    fixture = maxima_fixture(prefix)
    data = from_hex(fixture[data_field] if data_field else fixture["parsed"]["params"]["data"])

    signature = maxsign(private30(), data)

    assert signature == from_hex(fixture["parsed"]["response"]["signature"])
    assert len(signature) == 128


def test_the_utf8_text_fixture_was_signed_over_its_utf8_bytes():
    fixture = maxima_fixture("33-")

    assert fixture["data_text"].encode() == from_hex(fixture["data_utf8_hex"])
    assert fixture["parsed"]["params"]["data"] == fixture["data_text"]


@pytest.mark.parametrize("prefix", ["34-", "35-", "36-"])
def test_node_signatures_verify_in_python(prefix):
    given_params = params(prefix)
    data = given_params["data"]
    data_bytes = from_hex(data) if data.startswith("0x") else data.encode("utf-8")

    assert response(prefix) == {"valid": True}
    assert maxverify(from_hex(given_params["publickey"]), data_bytes, from_hex(given_params["signature"])) is True


@pytest.mark.parametrize("prefix", ["37-", "38-"])
def test_tampered_data_or_signature_verifies_false_like_on_the_node(prefix):
    given_params = params(prefix)

    result = maxverify(
        from_hex(given_params["publickey"]), from_hex(given_params["data"]), from_hex(given_params["signature"])
    )

    assert response(prefix) == {"valid": False}
    assert result is False


def test_a_python_signature_reproduces_the_one_the_node_accepted_in_fixture_52():
    given_params = params("52-")
    data = from_hex(given_params["data"])

    assert data == maxima_fixture("52-")["data_utf8"].encode()
    assert maxsign(private30(), data) == from_hex(given_params["signature"])
    assert response("52-") == {"valid": True}


@pytest.mark.parametrize("signature", [b"", b"\x00" * 127, b"\x00" * 128, b"\x00" * 129, "not bytes"])
def test_maxverify_says_false_for_a_malformed_signature(signature):
    assert maxverify(public30(), b"\x00", signature) is False


@pytest.mark.parametrize("key", [b"", b"\x00" * 162, b"garbage", "0x1234"])
def test_maxverify_raises_crypto_error_for_a_malformed_key(key):
    signature = from_hex(response("31-")["signature"])

    with pytest.raises(CryptoError) as caught:
        maxverify(key, b"\x00", signature)
    assert caught.value.code == "crypto_error"


def test_maxsign_refuses_a_malformed_or_non_1024_bit_private_key():
    big = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    big_der = big.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())

    for key in (b"", b"\x30\x00", private30()[:-1], big_der, public30()):
        with pytest.raises(CryptoError):
            maxsign(key, b"data")


def test_a_key_loaded_once_signs_and_opens_as_the_node_did_every_time():
    key = MaximaPrivateKey(private30())

    for _ in range(2):
        for prefix in ("31-", "32-"):
            assert key.sign(from_hex(params(prefix)["data"])) == from_hex(response(prefix)["signature"])
        for encrypt in ("40-", "42-", "44-"):
            assert key.decrypt(from_hex(response(encrypt)["encrypted"])) == from_hex(params(encrypt)["data"])
    assert key.public_key() == public30() == maxima_public_key(private30())
    assert repr(key) == "MaximaPrivateKey(...)"  # nothing of the key in a log or a traceback


def test_a_loaded_key_refuses_what_maxsign_and_maxdecrypt_refuse():
    big = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    big_der = big.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    for bad in (b"", b"\x30\x00", private30()[:-1], big_der, public30()):
        with pytest.raises(CryptoError):
            MaximaPrivateKey(bad)

    key, other = MaximaPrivateKey(private30()), MaximaPrivateKey(generate_maxima_keypair()[0])
    for blob in (bytes(200), node_blob()[:-1], response("40-")["encrypted"]):
        with pytest.raises(CryptoError):
            key.decrypt(blob)  # type: ignore[arg-type]
    with pytest.raises(CryptoError):
        other.decrypt(node_blob())


# -------------------------------------------------------------------------------------- maxencrypt blobs


@pytest.mark.parametrize(
    ("encrypt", "decrypt", "size"), [("40-", "41-", 16), ("42-", "43-", 1000), ("44-", "45-", 5000)]
)
def test_node_made_blobs_open_in_python(encrypt, decrypt, size):
    # given a blob maxencrypt made on a node for the fixture 30 key, and the node's own maxdecrypt of it
    blob = from_hex(response(encrypt)["encrypted"])
    plaintext = from_hex(params(encrypt)["data"])

    opened = maxdecrypt(private30(), blob)

    assert opened == plaintext == from_hex(response(decrypt)["decrypted"])
    assert len(plaintext) == size
    assert plaintext == bytes((7 * i + size) % 256 for i in range(size))


@pytest.mark.parametrize(("prefix", "label"), [("40-", "16 bytes"), ("42-", "1000 bytes"), ("44-", "5000 bytes")])
def test_node_blob_layout_matches_fixture_53(prefix, label):
    expected = maxima_fixture("53-")["results"]["maxencrypt_python_decrypt"][label]
    iv, wrapped, ciphertext = fields(from_hex(response(prefix)["encrypted"]))

    assert (len(iv), len(wrapped), len(ciphertext)) == (16, 128, expected["ciphertext_len"])
    assert 12 + 16 + 128 + len(ciphertext) == expected["blob_len"]


def test_python_blob_with_the_fixture_iv_and_key_matches_the_blob_the_node_opened():
    # given the plaintext, IV and AES key used to build the blob of fixture 51 in Python
    fixture = maxima_fixture("51-")
    node_blob = from_hex(fixture["parsed"]["params"]["data"])
    plaintext = fixture["plaintext_utf8"].encode()
    aes_key = from_hex(fixture["aes_key_hex"])

    blob = maxencrypt(public30(), plaintext, iv=from_hex(fixture["iv_hex"]), aes_key=aes_key)

    # then the layout, IV and AES ciphertext are byte-identical; the RSA-wrapped key cannot be, because PKCS#1 v1.5
    # encryption pads with fresh random bytes, so it is checked by unwrapping it instead
    ours, theirs = fields(blob), fields(node_blob)
    assert len(blob) == len(node_blob)
    assert blob[:20] == node_blob[:20]
    assert (ours[0], ours[2]) == (theirs[0], theirs[2])
    assert blob[-(4 + len(ours[2])) :] == node_blob[-(4 + len(theirs[2])) :]
    assert maxdecrypt(private30(), blob) == plaintext
    assert maxdecrypt(private30(), node_blob) == plaintext == from_hex(fixture["parsed"]["response"]["decrypted"])
    key = load_der_private_key(private30(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.decrypt(theirs[1], PKCS1v15()) == key.decrypt(ours[1], PKCS1v15()) == aes_key


def test_the_encrypted_maxmessage_of_fixture_47_is_a_maxencrypt_blob_holding_the_signed_envelope():
    # fixture 53: the envelope is version 00 01 01, then u32-prefixed data, publickey (162) and signature (128)
    blob = from_hex(response("47-")["data"])
    data = from_hex(params("47-")["data"])

    envelope = maxdecrypt(private30(), blob)

    assert envelope[:3] == b"\x00\x01\x01"
    version_data, signer, signature = fields(envelope[3:])
    assert version_data == data
    assert signer == from_hex(response("47-")["message"]["publickey"])
    assert maxverify(signer, data, signature) is True


@given(plaintext=st.binary(max_size=3000))
@settings(max_examples=25, deadline=None)
def test_maxencrypt_round_trips(plaintext):
    blob = maxencrypt(public30(), plaintext)

    assert maxdecrypt(private30(), blob) == plaintext
    assert len(blob) == 12 + 16 + 128 + 16 * (len(plaintext) // 16 + 1)


def test_maxencrypt_uses_a_fresh_iv_and_key_each_time():
    first, second = fields(maxencrypt(public30(), b"same")), fields(maxencrypt(public30(), b"same"))

    assert first[0] != second[0]
    assert first[2] != second[2]


def test_maxencrypt_refuses_a_bad_key_or_a_wrong_size_iv():
    with pytest.raises(CryptoError):
        maxencrypt(b"\x00" * 162, b"x")
    with pytest.raises(CryptoError):
        maxencrypt(public30(), b"x", iv=b"\x00" * 15)
    with pytest.raises(CryptoError):
        maxencrypt(public30(), b"x", aes_key=b"\x00" * 32)


def node_blob() -> bytes:
    return from_hex(response("40-")["encrypted"])


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


@pytest.mark.parametrize(
    "make",
    [
        lambda b: b"",
        lambda b: b[:3],
        lambda b: b[:-1],
        lambda b: b[:20],
        lambda b: b + b"\x00",
        lambda b: u32(0xFFFFFFFF) + b[4:],  # the IV length claims 4 GiB
        lambda b: b[:20] + u32(0x7FFFFFFF) + b[24:],  # the key length runs past the end
        lambda b: b[:-36] + u32(100) + b[-32:],  # the ciphertext length runs past the end
        lambda b: u32(15) + b[4:19] + b[20:],  # a 15-byte IV
        lambda b: b[:-36] + u32(31) + b[-32:-1],  # a ciphertext that is not whole blocks
        lambda b: b[:-36] + u32(0),  # no ciphertext
        lambda b: b[:20] + u32(127) + b[24:151] + b[152:],  # a 127-byte wrapped key
        lambda b: b[:30] + bytes([b[30] ^ 1]) + b[31:],  # a corrupted wrapped key
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),  # a corrupted last block (padding)
        lambda b: bytes(200),
    ],
)
def test_maxdecrypt_refuses_a_malformed_blob(make):
    with pytest.raises(CryptoError):
        maxdecrypt(private30(), make(node_blob()))


def test_maxdecrypt_refuses_the_wrong_private_key():
    other_private, _ = generate_maxima_keypair()

    with pytest.raises(CryptoError):
        maxdecrypt(other_private, node_blob())


def test_maxdecrypt_refuses_a_non_bytes_blob():
    with pytest.raises(CryptoError):
        maxdecrypt(private30(), response("40-")["encrypted"])  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------- sealed boxes


def test_box_keypair_makes_32_byte_x25519_keys():
    private, public = box_keypair()

    assert (len(private), len(public)) == (32, 32)
    assert box_keypair()[1] != public


@given(plaintext=st.binary(max_size=2048))
@settings(max_examples=25, deadline=None)
def test_seal_and_unseal_round_trip(plaintext):
    private, public = box_keypair()

    sealed = seal(public, plaintext)

    assert len(sealed) == len(plaintext) + 48
    assert unseal(private, sealed) == plaintext


def test_unseal_refuses_the_wrong_key_and_a_tampered_box():
    private, public = box_keypair()
    other_private, _ = box_keypair()
    sealed = seal(public, b"hello")

    for key, box in ((other_private, sealed), (private, sealed[:-1] + bytes([sealed[-1] ^ 1])), (private, b"")):
        with pytest.raises(CryptoError):
            unseal(key, box)


@pytest.mark.parametrize("key", [b"", b"\x00" * 31, b"\x00" * 33, "not bytes"])
def test_seal_and_unseal_refuse_a_malformed_key(key):
    with pytest.raises(CryptoError):
        seal(key, b"x")
    with pytest.raises(CryptoError):
        unseal(key, b"\x00" * 64)
