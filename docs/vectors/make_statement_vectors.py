"""Write ``docs/vectors/statements.json``: name statements signed with the fixture 30 key.

Run from the repository root: ``.venv/bin/python docs/vectors/make_statement_vectors.py``. The output is
committed; ``mns_client/tests/test_statements.py`` checks that this script reproduces it byte for byte (PKCS#1 v1.5
signatures are deterministic) and that every vector verifies.

The owner key is ``maxcreate``'s pair in ``maxima/30-maxcreate-keypair.json``, and the key a name is transferred to
is the pair in ``maxima/55-maxcreate-mx-vector-2.json``; the gateways are the identities of node A (``01-``) and
node B (``02-``); the box keys are X25519 keys of fixed, published private keys (never use them for anything else).
"""

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "docs" / "vectors" / "statements.json"
ISSUED_AT = 1795660441638  # node A's clock in fixture 61 (2026-11-26)
DAY_MS = 24 * 3600 * 1000
HEX_ADDRESS = "0x957FE07D406C55D49C7BD1101EB23AF541786FC8BEE925F10FA9DDFDC5282F24"


def build() -> str:
    """The JSON text of the vectors file (with its final newline)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from nacl.public import PrivateKey

    from mns_client.protocol.codecs import from_hex, to_hex
    from mns_client.protocol.crypto import maxsign
    from mns_client.protocol.statements import NameStatement
    from testsupport import maxima_fixture

    keypair = maxima_fixture("30-")["parsed"]["response"]
    owner, private_key = keypair["publickey"], from_hex(keypair["privatekey"])
    new_keypair = maxima_fixture("55-")["parsed"]["response"]
    new_owner = new_keypair["publickey"]
    private_keys = {owner: private_key, new_owner: from_hex(new_keypair["privatekey"])}
    gateway_a = maxima_fixture("01-")["parsed"]["response"]["publickey"]
    gateway_b = maxima_fixture("02-")["parsed"]["response"]["publickey"]
    box_1 = to_hex(bytes(PrivateKey(bytes([1]) * 32).public_key))
    box_2 = to_hex(bytes(PrivateKey(bytes([2]) * 32).public_key))
    common = {"name": "alice", "owner": owner}
    cases: list[tuple[str, NameStatement]] = [
        (
            "register alice at gateway A, with a payment address in Mx form",
            NameStatement(
                op="register",
                **common,
                box_key=box_1,
                payment_address="MxG084YFVG7QG3CANA9ZUUH20FB4ENY85S6VW5UT4WV23T9RNUSAA1F4WG1CVK4",
                seq=1,
                issued_at=ISSUED_AT,
                gateway=gateway_a,
            ),
        ),
        (
            "update alice (seq 2): a new box key, the payment address in 0x form, moved to gateway B",
            NameStatement(
                op="update",
                **common,
                box_key=box_2,
                payment_address=HEX_ADDRESS,
                seq=2,
                issued_at=ISSUED_AT + 60_000,
                gateway=gateway_b,
            ),
        ),
        (
            "release alice (seq 3): no box key, no payment address",
            NameStatement(op="release", **common, seq=3, issued_at=ISSUED_AT + 120_000, gateway=gateway_b),
        ),
        (
            "register a name with both separators and digits, without a payment address",
            NameStatement(
                op="register",
                name="bob-smith_42",
                owner=owner,
                box_key=box_1,
                seq=1,
                issued_at=ISSUED_AT,
                gateway=gateway_a,
            ),
        ),
        (
            "register carol with a data record (a website for MNS Web and a Minima address)",
            NameStatement(
                op="register",
                name="carol",
                owner=owner,
                box_key=box_1,
                data={"website": "https://carol.example/", "minima": HEX_ADDRESS},
                seq=1,
                issued_at=ISSUED_AT,
                gateway=gateway_a,
            ),
        ),
        (
            "carol's owner offers the name to the key of fixture 55 (seq 2), open for 7 days; the binding stands",
            NameStatement(
                op="transfer",
                name="carol",
                owner=owner,
                box_key=box_1,
                data={"website": "https://carol.example/", "minima": HEX_ADDRESS},
                to=new_owner,
                expires_at=ISSUED_AT + 7 * DAY_MS,
                seq=2,
                issued_at=ISSUED_AT + 60_000,
                gateway=gateway_a,
            ),
        ),
        (
            "the new key accepts offer 2 (seq 3), signed by itself: its own box key, gateway B, and data with "
            "non-ASCII text, a list, an integer, a boolean and a nested object",
            NameStatement(
                op="accept",
                name="carol",
                owner=new_owner,
                box_key=box_2,
                data={"greeting": "Grüße, 日本 ✓", "tags": ["web", "mail"], "since": 2026, "nested": {"ok": True}},
                accepts=2,
                seq=3,
                issued_at=ISSUED_AT + 120_000,
                gateway=gateway_b,
            ),
        ),
    ]
    vectors: list[dict[str, Any]] = []
    for description, statement in cases:
        canonical = statement.canonical()
        vectors.append(
            {
                "description": description,
                "statement": statement.to_dict(),
                "canonical": canonical.decode(),
                "canonical_hex": to_hex(canonical),
                "signature_hex": to_hex(maxsign(private_keys[statement.owner], canonical)),
                "owner_publickey_hex": statement.owner,
            }
        )
    document = {
        "description": (
            "MNS name statements (docs/protocol.md, 'Name statements'). canonical_hex is what maxsign is given as "
            "data:0x...; signature_hex is SHA256withRSA PKCS#1 v1.5 by the key of maxima/30-maxcreate-keypair.json; "
            "vectors 1-3 are one valid chain, and so are 5-7 (register with data, transfer, accept: 7 is signed by "
            "the key of maxima/55-maxcreate-mx-vector-2.json, its owner). Made by make_statement_vectors.py."
        ),
        "vectors": vectors,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(build(), encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")
