"""The mailbox wire formats: one spelling per message, strict parsing of what strangers send, the token blob."""

import json

import pytest

from mns_client.protocol.codecs import from_hex, to_hex
from mns_client.protocol.crypto import generate_maxima_keypair, maxencrypt
from mns_client.protocol.mailbox import (
    AccessTokenMessage,
    Deliver,
    Forwarded,
    MailboxMessageInvalid,
    Receipt,
    access_token_header,
    access_token_open,
    access_token_plaintext,
    delivery_id_of,
    new_delivery_id,
    reply_to_of,
)
from testsupport import maxima_fixture

ADDRESS = maxima_fixture("01-")["parsed"]["response"]["p2pidentity"]
DELIVERY_ID = "k3Jd8_x-Qm2VbN7aL0pRtY"
OWNER_KEY = maxima_fixture("30-")["parsed"]["response"]["publickey"]


def test_a_deliver_message_is_compact_json_with_hex_ciphertext() -> None:
    message = Deliver(id=DELIVERY_ID, to="alice", scheme="nacl-sealedbox-v1", ciphertext=b"\x01\xab", reply_to=ADDRESS)
    assert message.to_bytes() == (
        b'{"v":1,"type":"deliver","id":"k3Jd8_x-Qm2VbN7aL0pRtY","to":"alice","scheme":"nacl-sealedbox-v1",'
        b'"ciphertext":"0x01AB","reply_to":"' + ADDRESS.encode() + b'"}'
    )
    assert Deliver.from_dict(json.loads(message.to_bytes())) == message


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"id": "short"}, "id: expected 16 to 64 characters"),
        ({"ciphertext": "AB"}, "ciphertext: expected 0x and hex digits"),
        ({"ciphertext": "0x"}, "ciphertext: must not be empty"),
        ({"to": ""}, "to: must be 1 to 128 characters"),
        ({"reply_to": "nowhere"}, "reply_to: expected Mx…@host:port or MAX#…"),
        ({"reply_to": None}, "reply_to: must be omitted rather than null"),
        ({"owner": OWNER_KEY.lower().replace("0X", "0x")}, "owner: expected 0x and the upper-case hex"),
        ({"owner": "alice"}, "owner: expected 0x and the upper-case hex"),
        ({"extra": 1}, "extra: is an unknown field"),
        ({"v": 2}, "v: must be 1"),
    ],
)
def test_a_malformed_deliver_is_refused_with_the_field_named(change: dict, problem: str) -> None:
    body = {**Deliver(id=DELIVERY_ID, to="alice", scheme="s", ciphertext=b"x").to_dict(), **change}
    with pytest.raises(MailboxMessageInvalid, match=problem.replace("{", r"\{").replace("…", ".")):
        Deliver.from_dict(body)


def test_a_deliver_may_name_the_owner_it_was_sealed_for() -> None:
    message = Deliver(id=DELIVERY_ID, to="alice", scheme="nacl-sealedbox-v1", ciphertext=b"\x01", owner=OWNER_KEY)
    assert message.to_dict()["owner"] == OWNER_KEY
    assert Deliver.from_dict(json.loads(message.to_bytes())) == message


def test_the_id_and_reply_to_of_a_malformed_message_are_still_found_when_they_are_good() -> None:
    body = {"v": 1, "type": "deliver", "id": DELIVERY_ID, "reply_to": ADDRESS, "ciphertext": "junk"}
    assert (delivery_id_of(body), reply_to_of(body)) == (DELIVERY_ID, ADDRESS)
    assert (delivery_id_of({"id": "x"}), reply_to_of({"reply_to": "x"}), delivery_id_of("not a dict")) == (
        None,
        None,
        None,
    )


def test_receipts_carry_message_id_when_stored_and_reason_when_refused() -> None:
    stored = Receipt(id=DELIVERY_ID, status="stored", message_id="m1")
    refused = Receipt(id=DELIVERY_ID, status="refused", reason="over_quota", detail="full")
    assert stored.to_dict() == {"v": 1, "type": "receipt", "id": DELIVERY_ID, "status": "stored", "message_id": "m1"}
    assert refused.to_dict() == {
        "v": 1,
        "type": "receipt",
        "id": DELIVERY_ID,
        "status": "refused",
        "reason": "over_quota",
        "detail": "full",
    }
    assert Receipt.from_bytes(refused.to_bytes()) == refused


def test_a_forwarded_message_round_trips() -> None:
    forwarded = Forwarded(
        name="alice",
        message_id="m1",
        sender="0xAB",
        sender_verified=True,
        scheme="maxima-rsa-v1",
        ciphertext=b"\x00\xff",
        received_at=1795660441638,
    )
    assert json.loads(forwarded.to_bytes())["ciphertext"] == "0x00FF"
    assert Forwarded.from_bytes(forwarded.to_bytes()) == forwarded


def test_a_forwarded_message_submitted_over_rest_has_an_empty_sender_and_still_reads() -> None:
    forwarded = Forwarded(
        name="alice",
        message_id="m1",
        sender="",
        sender_verified=False,
        scheme="nacl-sealedbox-v1",
        ciphertext=b"\x01",
        received_at=0,
    )
    assert Forwarded.from_bytes(forwarded.to_bytes()) == forwarded


def test_the_access_token_opens_only_with_the_owners_key_and_makes_the_header() -> None:
    private, public = generate_maxima_keypair()
    other, _ = generate_maxima_keypair()
    blob = maxencrypt(public, access_token_plaintext(token_id="abcdefghijklmnop", secret="s3cret"))
    message = AccessTokenMessage(name="alice", token_id="abcdefghijklmnop", blob=blob)
    assert json.loads(message.to_bytes())["token"] == to_hex(blob)
    assert AccessTokenMessage.from_bytes(message.to_bytes()).blob == blob
    assert access_token_open(private, from_hex(to_hex(blob))) == ("abcdefghijklmnop", "s3cret")
    assert access_token_header("abcdefghijklmnop", "s3cret") == "MNS-Token abcdefghijklmnop:s3cret"
    with pytest.raises(MailboxMessageInvalid):
        access_token_open(other, blob)


def test_new_delivery_ids_are_random_and_well_formed() -> None:
    ids = {new_delivery_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(delivery_id_of({"id": value}) == value for value in ids)
