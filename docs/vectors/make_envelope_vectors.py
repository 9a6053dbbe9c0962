"""Write ``docs/vectors/envelopes.json``: signed letters, their plaintexts, and their ciphertexts in both schemes.

Run from the repository root: ``.venv/bin/python docs/vectors/make_envelope_vectors.py``. The output is committed;
``mns_client/tests/test_envelope.py`` checks that this script reproduces it byte for byte and that every vector
opens and verifies (or, for the invalid ones, is refused with its code).

Keys (all published: never use them for anything else):

- the sender is the owner of the ``maxcreate`` pair in ``maxima/30-maxcreate-keypair.json``;
- the recipient's Maxima key is the pair in ``maxima/55-maxcreate-mx-vector-2.json`` (``maxima-rsa-v1``);
- the recipient's box key is the X25519 key of the private key 32 bytes of ``03`` (``nacl-sealedbox-v1``);
- a sealed box's ephemeral key is the private key 32 bytes of ``09`` (a real sender draws a fresh one every time), so
  the sealed boxes here are reproducible: ``epk ‖ crypto_box(m, blake2b-24(epk ‖ pk), esk, pk)``.

``maxencrypt`` pads its RSA block with random bytes, so a ``maxima-rsa-v1`` ciphertext cannot be made again byte
for byte: the script keeps the committed one as long as it still opens to the same plaintext (IV ``00…0F`` and
AES key ``10…1F`` are fixed, the RSA block is not).
"""

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "docs" / "vectors" / "envelopes.json"
SENT_AT = 1795660441638  # node A's clock in fixture 61 (2026-11-26)
IV = bytes(range(16))
AES_KEY = bytes(range(16, 32))


def _sealed_box(recipient_public: bytes, plaintext: bytes, ephemeral_private: bytes) -> bytes:
    """A NaCl sealed box with a chosen ephemeral key: what ``crypto_box_seal`` makes with that key."""
    from nacl.encoding import RawEncoder
    from nacl.hash import blake2b
    from nacl.public import Box, PrivateKey, PublicKey

    ephemeral = PrivateKey(ephemeral_private)
    epk = bytes(ephemeral.public_key)
    nonce = blake2b(epk + recipient_public, digest_size=24, encoder=RawEncoder)
    return epk + Box(ephemeral, PublicKey(recipient_public)).encrypt(plaintext, nonce).ciphertext


def _previous_ciphertexts() -> dict[str, str]:
    try:
        document = json.loads(OUTPUT.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {v["description"]: v["ciphertext_hex"] for v in document.get("vectors", []) if "ciphertext_hex" in v}


def build() -> str:
    """The JSON text of the vectors file (with its final newline)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from nacl.public import PrivateKey

    from mns_client.protocol.codecs import from_hex, to_hex
    from mns_client.protocol.crypto import maxdecrypt, maxencrypt, maxsign
    from mns_client.protocol.envelope import SCHEME_NACL, SCHEME_RSA, Letter, SignedLetter
    from testsupport import maxima_fixture

    sender_pair = maxima_fixture("30-")["parsed"]["response"]
    recipient_pair = maxima_fixture("55-")["parsed"]["response"]
    sender, sender_private = sender_pair["publickey"], from_hex(sender_pair["privatekey"])
    recipient_key, recipient_private = from_hex(recipient_pair["publickey"]), from_hex(recipient_pair["privatekey"])
    box_private = bytes([3]) * 32
    box_public = bytes(PrivateKey(box_private).public_key)
    ephemeral_private = bytes([9]) * 32
    previous = _previous_ciphertexts()

    cases: list[tuple[str, str, Letter]] = [
        (
            "a text letter with a subject and the sender's name, sealed to the box key",
            SCHEME_NACL,
            Letter(
                id="vec1-AAAAAAAAAAAAAAAAAAAAAAAA",
                from_=sender,
                from_name="bob",
                to="alice",
                sent_at=SENT_AT,
                subject="Lunch?",
                body="Hello Alice,\nlunch at noon?\n",
            ),
        ),
        (
            "a binary body (body_b64) without a subject, maxencrypt to the owner's Maxima key",
            SCHEME_RSA,
            Letter.make(
                id="vec2-BBBBBBBBBBBBBBBBBBBBBBBB",
                sender=sender,
                to="alice",
                sent_at=SENT_AT + 1000,
                body=bytes([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0xFF]),
            ),
        ),
        (
            "non-ASCII text (UTF-8 in the canonical bytes, not \\u escapes) and a control character in the body",
            SCHEME_NACL,
            Letter(
                id="vec3-CCCCCCCCCCCCCCCCCCCCCCCC",
                from_=sender,
                to="bob-smith_42",
                sent_at=SENT_AT + 2000,
                subject="Grüße 👋",
                body='Tabs\tand "quotes" and a bell \x07 and ünïcödé 😀',
            ),
        ),
    ]
    vectors: list[dict[str, Any]] = []
    for description, scheme, letter in cases:
        canonical = letter.canonical()
        signed = SignedLetter(letter=letter, signature=maxsign(sender_private, canonical))
        plaintext = signed.to_bytes()
        if scheme == SCHEME_NACL:
            ciphertext_hex = to_hex(_sealed_box(box_public, plaintext, ephemeral_private))
        else:
            kept = previous.get(description)
            if kept is None or maxdecrypt(recipient_private, from_hex(kept)) != plaintext:
                kept = to_hex(maxencrypt(recipient_key, plaintext, iv=IV, aes_key=AES_KEY))
            ciphertext_hex = kept
        vectors.append(
            {
                "description": description,
                "scheme": scheme,
                "letter": letter.to_dict(),
                "canonical": canonical.decode(),
                "canonical_hex": to_hex(canonical),
                "signature_hex": to_hex(signed.signature),
                "plaintext": plaintext.decode(),
                "ciphertext_hex": ciphertext_hex,
            }
        )
    document = {
        "description": (
            "MNS envelopes (docs/protocol.md, 'Envelopes'). canonical_hex is what the sender's node is given as "
            "maxsign data:0x...; signature_hex is SHA256withRSA PKCS#1 v1.5 by the key of "
            "maxima/30-maxcreate-keypair.json; plaintext is what is encrypted. nacl-sealedbox-v1 vectors open with "
            "box_private_hex; maxima-rsa-v1 vectors with the private key of maxima/55-maxcreate-mx-vector-2.json "
            "(maxdecrypt). invalid: plaintexts a reader must refuse, with the code. Made by make_envelope_vectors.py."
        ),
        "sender_publickey_hex": sender,
        "recipient_publickey_hex": to_hex(recipient_key),
        "box_private_hex": to_hex(box_private),
        "box_public_hex": to_hex(box_public),
        "ephemeral_private_hex": to_hex(ephemeral_private),
        "vectors": vectors,
        "invalid": _invalid_cases(vectors[0], sender_private),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _invalid_cases(valid: dict[str, Any], sender_private: bytes) -> list[dict[str, Any]]:
    """Plaintexts that must be refused, each a small change to vector 1, with the code a reader gives."""
    from mns_client.protocol.codecs import to_hex
    from mns_client.protocol.crypto import maxsign

    letter = valid["letter"]

    def signed_as_is(fields: dict[str, Any]) -> str:
        """Signed over the canonical bytes of exactly these fields, so only the field rule can refuse it."""
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return _plaintext(fields, to_hex(maxsign(sender_private, canonical)))

    cases = [
        (
            "the subject changed after signing",
            "envelope_signature_invalid",
            _plaintext({**letter, "subject": "Dinner?"}, valid["signature_hex"]),
        ),
        (
            "addressed to another name than the mailbox it is read from (read as 'carol')",
            "envelope_wrong_recipient",
            valid["plaintext"],
        ),
        ("a null optional field", "envelope_invalid", signed_as_is({**letter, "from_name": None})),
        ("an unknown field", "envelope_invalid", signed_as_is({**letter, "cc": "carol"})),
        (
            "the sender key in lower-case hex",
            "envelope_invalid",
            signed_as_is({**letter, "from": "0x" + letter["from"][2:].lower()}),
        ),
        ("both body and body_b64", "envelope_invalid", signed_as_is({**letter, "body_b64": "AA=="})),
        (
            "UTF-8 text in body_b64",
            "envelope_invalid",
            signed_as_is({**{k: v for k, v in letter.items() if k != "body"}, "body_b64": "aGk="}),
        ),
        ("an empty subject (omit it instead)", "envelope_invalid", signed_as_is({**letter, "subject": ""})),
        ("a name not in normal form", "envelope_invalid", signed_as_is({**letter, "to": "Alice"})),
        ("type is not letter", "envelope_invalid", signed_as_is({**letter, "type": "statement"})),
    ]
    return [
        {"description": d, "read_as": "carol" if "carol" in d else "alice", "code": c, "plaintext": p}
        for d, c, p in cases
    ]


def _plaintext(letter: dict[str, Any], signature_hex: str) -> str:
    return json.dumps(
        {"letter": letter, "sig": signature_hex}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


if __name__ == "__main__":
    OUTPUT.write_text(build(), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")
