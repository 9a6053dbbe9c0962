"""Envelopes: the signed letter, its canonical bytes, strict parsing, both schemes, the recipient's checks, vectors."""

import importlib.util
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.crypto import box_keypair, maxdecrypt, maxsign
from mns_client.protocol.envelope import (
    MAX_SUBJECT_CHARS,
    SCHEME_NACL,
    SCHEME_RSA,
    EnvelopeInvalid,
    Letter,
    SignedLetter,
    decrypt,
    encrypt,
    open_letter,
)
from testsupport import REPO, maxima_fixture

_SENDER = maxima_fixture("30-")["parsed"]["response"]
SENDER, SENDER_PRIVATE = _SENDER["publickey"], from_hex(_SENDER["privatekey"])
_OTHER = maxima_fixture("55-")["parsed"]["response"]
OTHER, OTHER_PRIVATE = _OTHER["publickey"], from_hex(_OTHER["privatekey"])
VECTORS = REPO / "docs" / "vectors" / "envelopes.json"
DELIVERY_ID = "d" * 32


def letter(**overrides: Any) -> Letter:
    fields: dict[str, Any] = {
        "id": DELIVERY_ID,
        "from_": SENDER,
        "to": "alice",
        "sent_at": 1795660441638,
        "subject": "Lunch?",
        "body": "Hello",
    }
    return Letter(**{**fields, **overrides})


def sign(item: Letter, private_key: bytes = SENDER_PRIVATE) -> SignedLetter:
    return SignedLetter(letter=item, signature=maxsign(private_key, item.canonical()))


def plaintext_of(fields: dict[str, Any], private_key: bytes = SENDER_PRIVATE) -> bytes:
    """A plaintext signed over exactly ``fields`` (bypassing Letter's checks), so only parsing can refuse it."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return json.dumps({"letter": fields, "sig": to_hex(maxsign(private_key, canonical))}).encode()


# ------------------------------------------------------------------------------------------------ the letter


def test_the_canonical_bytes_are_sorted_compact_utf8_json_without_absent_fields() -> None:
    item = letter(subject="Grüße", body="a\nb")

    assert item.canonical() == (
        '{"body":"a\\nb","from":"' + SENDER + '","id":"' + DELIVERY_ID + '","sent_at":1795660441638,'
        '"subject":"Grüße","to":"alice","type":"letter","v":1}'
    ).encode("utf-8")


def test_make_keeps_utf8_text_as_body_and_anything_else_as_canonical_base64() -> None:
    text = Letter.make(id=DELIVERY_ID, sender=SENDER, to="alice", sent_at=1, body="héllo".encode())
    binary = Letter.make(id=DELIVERY_ID, sender=SENDER, to="alice", sent_at=1, body=b"\xff\x00\x01")

    assert (text.body, text.body_b64, text.body_bytes) == ("héllo", None, "héllo".encode())
    assert (binary.body, binary.body_b64, binary.body_bytes) == (None, "/wAB", b"\xff\x00\x01")


def test_make_omits_an_empty_subject_rather_than_signing_an_empty_string() -> None:
    made = Letter.make(id=DELIVERY_ID, sender=SENDER, to="alice", sent_at=1, body=b"x", subject="")

    assert "subject" not in made.to_dict()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"v": 2}, "v"),
        ({"v": True}, "v"),
        ({"type": "statement"}, "type"),
        ({"id": "short"}, "id"),
        ({"id": "x" * 16 + " "}, "id"),
        ({"from_": "0x" + SENDER[2:].lower()}, "from"),
        ({"from_": "0x1234"}, "from"),
        ({"to": "Alice"}, "to"),
        ({"to": "al ice"}, "to"),
        ({"from_name": "Bob"}, "from_name"),
        ({"sent_at": 1.0}, "sent_at"),
        ({"sent_at": True}, "sent_at"),
        ({"sent_at": -1}, "sent_at"),
        ({"sent_at": 2**53}, "sent_at"),
        ({"subject": ""}, "subject"),
        ({"subject": "x" * (MAX_SUBJECT_CHARS + 1)}, "subject"),
        ({"subject": "line\nbreak"}, "subject"),
        ({"body": None}, "body"),
        ({"body_b64": "AA=="}, "body"),
        ({"body": "\ud800"}, "body"),
        ({"body": None, "body_b64": "aGk="}, "body_b64"),
        ({"body": None, "body_b64": "AA"}, "body_b64"),
        ({"body": None, "body_b64": "AB=="}, "body_b64"),
    ],
)
def test_a_letter_with_a_wrong_value_cannot_be_made(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(EnvelopeInvalid) as caught:
        letter(**overrides)

    assert (caught.value.code, caught.value.field) == ("envelope_invalid", field)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(cc="carol"), "cc"),
        (lambda d: d.pop("sent_at"), "sent_at"),
        (lambda d: d.update(subject=None), "subject"),
    ],
)
def test_parsing_refuses_unknown_missing_and_null_fields(change: Any, field: str) -> None:
    data = letter().to_dict()
    change(data)

    with pytest.raises(EnvelopeInvalid) as caught:
        Letter.from_dict(data)

    assert caught.value.field == field


@given(
    subject=st.one_of(st.none(), st.text(min_size=1, max_size=MAX_SUBJECT_CHARS).filter(str.isprintable)),
    body=st.binary(max_size=300),
)
def test_a_letter_reads_back_to_the_same_canonical_bytes(subject: str | None, body: bytes) -> None:
    made = Letter.make(id=DELIVERY_ID, sender=SENDER, to="alice", sent_at=5, body=body, subject=subject)

    parsed = Letter.from_dict(json.loads(made.canonical()))

    assert parsed == made
    assert parsed.canonical() == made.canonical()
    assert parsed.body_bytes == body


# ------------------------------------------------------------------------------------------------ signing


def test_a_signed_letter_round_trips_through_its_plaintext_and_verifies() -> None:
    signed = sign(letter())

    again = SignedLetter.from_bytes(signed.to_bytes())
    again.verify()

    assert again == signed


def test_a_letter_signed_by_another_key_than_its_from_does_not_verify() -> None:
    forged = sign(letter(), OTHER_PRIVATE)

    with pytest.raises(EnvelopeInvalid) as caught:
        SignedLetter.from_bytes(forged.to_bytes()).verify()

    assert caught.value.code == "envelope_signature_invalid"


@pytest.mark.parametrize(
    "plaintext",
    [b"not json", b"\xff", b"[]", b'{"letter":{}}', b'{"letter":{},"sig":"0x00","extra":1}', b'{"letter":{},"sig":1}'],
)
def test_a_plaintext_that_is_not_a_signed_letter_is_refused_as_invalid(plaintext: bytes) -> None:
    with pytest.raises(EnvelopeInvalid) as caught:
        open_letter(plaintext, name="alice")

    assert caught.value.code == "envelope_invalid"


def test_a_signature_in_lower_case_hex_is_refused() -> None:
    signed = sign(letter())
    data = signed.to_dict()
    data["sig"] = "0x" + data["sig"][2:].lower()

    with pytest.raises(EnvelopeInvalid) as caught:
        SignedLetter.from_bytes(json.dumps(data).encode())

    assert caught.value.field == "sig"


# ------------------------------------------------------------------------------------------------ the schemes


def test_a_sealed_box_opens_with_the_current_or_an_older_box_key_only() -> None:
    old_private, old_public = box_keypair()
    new_private, _ = box_keypair()
    stranger_private, _ = box_keypair()
    plaintext = sign(letter()).to_bytes()
    ciphertext = encrypt(SCHEME_NACL, plaintext, box_key=old_public)

    assert decrypt(SCHEME_NACL, ciphertext, box_privates=[new_private, old_private]) == plaintext
    with pytest.raises(EnvelopeInvalid) as caught:
        decrypt(SCHEME_NACL, ciphertext, box_privates=[new_private, stranger_private])
    assert caught.value.code == "envelope_undecryptable"


def test_maxima_rsa_is_the_maxencrypt_blob_opened_by_the_owners_maxdecrypt() -> None:
    plaintext = sign(letter()).to_bytes()
    ciphertext = encrypt(SCHEME_RSA, plaintext, owner_key=from_hex(OTHER))

    assert decrypt(SCHEME_RSA, ciphertext, maxdecrypt=lambda blob: maxdecrypt(OTHER_PRIVATE, blob)) == plaintext
    with pytest.raises(EnvelopeInvalid) as caught:
        decrypt(SCHEME_RSA, ciphertext, maxdecrypt=lambda blob: maxdecrypt(SENDER_PRIVATE, blob))
    assert caught.value.code == "envelope_undecryptable"


def test_an_unknown_scheme_is_refused_both_ways() -> None:
    for call in (
        lambda: encrypt("rot13", b"x", box_key=bytes(32)),
        lambda: decrypt("rot13", b"x"),
    ):
        with pytest.raises(EnvelopeInvalid) as caught:
            call()
        assert caught.value.code == "envelope_scheme_unknown"


# ------------------------------------------------------------------------------------------------ checks


def test_open_letter_says_whether_the_signer_is_the_key_maxima_verified_as_the_sender() -> None:
    plaintext = sign(letter()).to_bytes()

    assert open_letter(plaintext, name="alice", delivery_sender=SENDER).sender_matches is True
    assert open_letter(plaintext, name="alice", delivery_sender=OTHER).sender_matches is False
    assert open_letter(plaintext, name="alice", delivery_sender=None).sender_matches is None


def test_a_letter_written_to_another_name_is_refused_by_its_reader() -> None:
    plaintext = sign(letter(to="carol")).to_bytes()

    with pytest.raises(EnvelopeInvalid) as caught:
        open_letter(plaintext, name="alice")

    assert caught.value.code == "envelope_wrong_recipient"


# ------------------------------------------------------------------------------------------------ vectors


def _document() -> dict[str, Any]:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def test_the_vectors_file_is_what_the_script_makes() -> None:
    path = REPO / "docs" / "vectors" / "make_envelope_vectors.py"
    spec = importlib.util.spec_from_file_location("make_envelope_vectors", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert module.build() == VECTORS.read_text(encoding="utf-8")


@pytest.mark.parametrize("index", range(3))
def test_each_vector_signs_encrypts_and_opens_as_documented(index: int) -> None:
    document = _document()
    vector = document["vectors"][index]
    parsed = Letter.from_dict(vector["letter"])
    signed = SignedLetter.from_bytes(vector["plaintext"].encode())

    assert parsed.canonical() == vector["canonical"].encode() == from_hex(vector["canonical_hex"])
    assert maxsign(SENDER_PRIVATE, parsed.canonical()) == from_hex(vector["signature_hex"])
    assert signed.letter == parsed
    plaintext = decrypt(
        vector["scheme"],
        from_hex(vector["ciphertext_hex"]),
        box_privates=[from_hex(document["box_private_hex"])],
        maxdecrypt=lambda blob: maxdecrypt(OTHER_PRIVATE, blob),
    )
    assert plaintext == vector["plaintext"].encode()
    assert open_letter(plaintext, name=parsed.to, delivery_sender=SENDER).sender_matches is True


@pytest.mark.parametrize("index", range(10))
def test_each_invalid_vector_is_refused_with_its_code(index: int) -> None:
    case = _document()["invalid"][index]

    with pytest.raises(EnvelopeInvalid) as caught:
        open_letter(case["plaintext"].encode(), name=case["read_as"])

    assert caught.value.code == case["code"]
