"""Batched replies: the vectors are reproduced, read item by item by each item's own reader, and the malformed
refused; a client waiting for its receipt finds it alone or inside a batch."""

import json
from pathlib import Path

import pytest

from mns_client.listener import NodeListener
from mns_client.protocol import batch
from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.handshake import Result
from mns_client.protocol.mailbox import Forwarded, Receipt
from mns_client.sdk import _receipt_picker

VECTORS_DIR = Path(__file__).resolve().parents[2] / "docs" / "vectors"
VECTORS = json.loads((VECTORS_DIR / "batches.json").read_text())
READERS = {"receipt": Receipt, "handshake-result": Result, "forwarded": Forwarded}
GATEWAY = "0x30819F300D06092A864886F70D010101050003818D0030818902818100AB"


def test_the_generator_reproduces_the_committed_vectors() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_batch_vectors", VECTORS_DIR / "make_batch_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == (VECTORS_DIR / "batches.json").read_text()


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_every_batch_unpacks_to_its_items_in_order_each_read_by_its_own_reader(vector: dict) -> None:
    items = batch.unpack(from_hex(vector["data_hex"]))
    assert items == [item.encode() for item in vector["items"]]
    for item in items:
        reader = READERS[json.loads(item)["type"]]
        assert reader.from_bytes(item).to_bytes() == item
    assert batch.pack(items) == from_hex(vector["data_hex"])


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_a_malformed_batch_is_refused(vector: dict) -> None:
    with pytest.raises(batch.BatchInvalid):
        batch.unpack(from_hex(vector["data_hex"]))


def test_a_single_reply_is_read_as_itself_and_a_batch_as_its_items() -> None:
    alone = Receipt(id="k3Jd8_x-Qm2VbN7aL0pRtYw1", status="stored", message_id="Zk1nR8qW2xTb0pLe").to_bytes()
    assert batch.messages_of(alone) == [alone]
    assert batch.messages_of(batch.pack([alone, alone])) == [alone, alone]


def test_the_packed_size_is_the_size_of_the_batch() -> None:
    items = [from_hex(to_hex(item.encode())) for item in VECTORS["vectors"][1]["items"]]
    assert batch.packed_size([len(i) for i in items]) == len(batch.pack(items))


def test_a_batch_is_never_packed_inside_a_batch() -> None:
    inner = batch.pack([b'{"v":1,"type":"receipt"}'])
    with pytest.raises(ValueError, match="never another batch"):
        batch.pack([inner])


def _posted(sender: str, data: bytes) -> bytes:
    event = {"from": sender, "application": "mns", "data": to_hex(data), "msgid": "0x01"}
    return json.dumps({"event": "MAXIMA", "data": event}).encode()


def test_the_client_finds_its_receipt_inside_a_batch_from_the_gateway_and_not_from_anyone_else() -> None:
    mine = Receipt(id="k3Jd8_x-Qm2VbN7aL0pRtYw1", status="stored", message_id="Zk1nR8qW2xTb0pLe")
    other = Receipt(id="Qm2VbN7aL0pRtYw1k3Jd8_x-", status="refused", reason="blocked")
    listener = NodeListener(rpc=None)  # type: ignore[arg-type]  # receiving needs no node
    listener._receive(_posted("0xSTRANGER", batch.pack([mine.to_bytes()])))
    listener._receive(_posted(GATEWAY, batch.pack([other.to_bytes(), mine.to_bytes()])))
    assert len(listener.events) == 3
    assert listener.wait_for(_receipt_picker(GATEWAY, mine.id), timeout=0) == mine
    assert [e.sender for e in listener.events] == ["0xSTRANGER", GATEWAY, GATEWAY]
