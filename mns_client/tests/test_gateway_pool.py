"""A gateway with a pool of nodes: its receipts may come from any key it lists in ``maxima.pool``, and from no
other."""

from mns_client.listener import MaximaEvent
from mns_client.protocol.mailbox import Receipt
from mns_client.sdk import GatewayInfo, _pool_keys, _receipt_picker

IDENTITY, OTHER_NODE, STRANGER = "0x30819F01", "0x30819F02", "0x30819F03"


def _gateway(pool: tuple[str, ...]) -> GatewayInfo:
    return GatewayInfo("http://127.0.0.1:8000", IDENTITY, "Mx@127.0.0.1:9001", "gw", 65536, ("s",), pool=pool)


def _receipt_from(sender: str) -> MaximaEvent:
    return MaximaEvent(sender=sender, application="mns", data=Receipt(id="d1", status="stored").to_bytes(), msgid="m")


def test_a_receipt_from_a_node_of_the_pool_is_taken_and_one_from_a_stranger_is_not() -> None:
    pick = _receipt_picker(_gateway((OTHER_NODE,)).senders, "d1")
    assert pick(_receipt_from(IDENTITY)) is not None
    assert pick(_receipt_from(OTHER_NODE)) is not None
    assert pick(_receipt_from(STRANGER)) is None


def test_a_gateway_without_a_pool_is_heard_from_its_identity_node_only() -> None:
    pick = _receipt_picker(_gateway(()).senders, "d1")
    assert pick(_receipt_from(IDENTITY)) is not None
    assert pick(_receipt_from(OTHER_NODE)) is None


def test_the_pool_of_the_policy_keeps_only_keys() -> None:
    assert _pool_keys([OTHER_NODE, 5, "Mx@host", None]) == (OTHER_NODE,)
    assert _pool_keys("0x30819F02") == ()
    assert _pool_keys(None) == ()
