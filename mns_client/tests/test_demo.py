"""The walk-through says what happened when a forwarded message did not reach alice's node in time."""

from mns_client.demo import not_forwarded

WAITED = {"name": "alice", "queued": 1, "retried": 0, "in_flight": 0, "received": []}


def test_a_message_still_queued_at_the_gateway_is_said_to_be_queued_not_lost() -> None:
    text = not_forwarded(WAITED, "forwarding")
    assert text.startswith("bob's second message has not reached alice's node yet: the gateway holds it, queued")
    assert "(1 queued now, 0 already being sent, 0 re-queued)" in text
    assert "var/log/worker.log" in text
    assert "did not arrive" not in text


def test_a_message_the_gateway_delivered_is_said_to_be_delivered_to_her_node() -> None:
    assert "delivered bob's second message to alice's node (state forwarded)" in not_forwarded(WAITED, "forwarded")


def test_a_message_no_longer_in_the_mailbox_is_said_to_be_gone() -> None:
    assert "no longer in alice's mailbox" in not_forwarded(WAITED, None)


def test_a_message_never_queued_says_its_state() -> None:
    assert not_forwarded(WAITED, "stored").startswith("the gateway did not queue bob's second message for forwarding")
