"""Write ``docs/vectors/batches.json``: batches of the gateway's replies, their items, and batches a reader refuses.

Run from the repository root: ``.venv/bin/python docs/vectors/make_batch_vectors.py``. The output is committed;
``mns_client/tests/test_batch.py`` checks that this script reproduces it byte for byte, that every batch unpacks to
its items (each read by its own reader) and that every invalid one is refused.
"""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "docs" / "vectors" / "batches.json"


def build() -> dict:
    sys.path.insert(0, str(REPO))
    from mns_client.protocol import batch
    from mns_client.protocol.codecs import to_hex
    from mns_client.protocol.handshake import Result
    from mns_client.protocol.mailbox import Forwarded, Receipt

    stored = Receipt(id="k3Jd8_x-Qm2VbN7aL0pRtYw1", status="stored", message_id="Zk1nR8qW2xTb0pLe").to_bytes()
    refused = Receipt(
        id="Qm2VbN7aL0pRtYw1k3Jd8_x-",
        status="refused",
        reason="over_quota",
        detail="The mailbox is full; its owner has to read and delete messages first.",
    ).to_bytes()
    verdict = Result(challenge="fn51u4icL2jhcQcsF-TYMQ", status="verified", reason=None).to_bytes()
    forwarded = Forwarded(
        name="alice",
        message_id="Pq0wE8rT5yU2iO9a",
        sender="",
        sender_verified=False,
        scheme="nacl-sealedbox-v1",
        ciphertext=bytes(range(8)),
        received_at=1795660441638,
    ).to_bytes()
    valid = [
        ("two receipts", [stored, refused]),
        ("a receipt, a verdict and a forwarded message", [stored, verdict, forwarded]),
        ("one item", [stored]),
    ]
    invalid = [
        ("no item", b'{"v":1,"type":"batch","messages":[]}'),
        ("a batch inside", b'{"v":1,"type":"batch","messages":[{"v":1,"type":"batch","messages":[{}]}]}'),
        ("an item that is not an object", b'{"v":1,"type":"batch","messages":["receipt"]}'),
        ("an item without a type", b'{"v":1,"type":"batch","messages":[{"v":1}]}'),
        ("an unknown key", b'{"v":1,"type":"batch","messages":[{"v":1,"type":"receipt"}],"more":true}'),
        ("messages written twice", b'{"v":1,"type":"batch","messages":[],"messages":[{"v":1,"type":"x"}]}'),
        ("version 2", b'{"v":2,"type":"batch","messages":[{"v":1,"type":"receipt"}]}'),
    ]
    return {
        "description": "Batched replies (docs/protocol.md, Batched replies): data_hex is the Maxima data; items "
        "are the messages it carries, in order, each as the bytes that would travel alone.",
        "vectors": [
            {
                "name": name,
                "data_hex": to_hex(batch.pack(items)),
                "items": [item.decode() for item in items],
            }
            for name, items in valid
        ],
        "invalid": [{"name": name, "data_hex": to_hex(data)} for name, data in invalid],
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
