"""What other apps learn of the outbox: a callback per idempotency-key prefix, run when a message is sent."""

from collections.abc import Iterator

import pytest

from maxima import services
from maxima.models import OutboundMessage
from maxima.services import on_outbound_sent, outbound_enqueue, outbound_send
from mns_client.protocol.errors import DeliveryFailed
from mns_client.protocol.rpc import SendResult
from testsupport import maxima_fixture

pytestmark = pytest.mark.django_db

ADDRESS = maxima_fixture("02-")["parsed"]["response"]["p2pidentity"]


class Node:
    def __init__(self, delivered: bool = True) -> None:
        self.delivered = delivered

    def maxima_send(self, **kwargs: object) -> SendResult:
        if not self.delivered:
            raise DeliveryFailed("maxima", "java.net.ConnectException: Connection refused")
        return SendResult(msgid="0x" + "AB" * 32, delivered=True, from_key=b"", to_key=b"", timemilli=0, poll=False)


@pytest.fixture
def calls() -> Iterator[list[tuple[int, str]]]:
    seen: list[tuple[int, str]] = []
    saved = dict(services._sent_callbacks)
    on_outbound_sent("test:", lambda message: seen.append((message.id, message.idempotency_key)))
    yield seen
    services._sent_callbacks.clear()
    services._sent_callbacks.update(saved)


def queue(key: str) -> OutboundMessage:
    return outbound_enqueue(destination=ADDRESS, application="mns", payload=b"{}", idempotency_key=key)


def test_a_callback_runs_once_when_a_message_of_its_prefix_is_sent(calls: list[tuple[int, str]]) -> None:
    message = queue("test:1")
    assert outbound_send(message_id=message.id, client=Node()) == "sent"
    assert calls == [(message.id, "test:1")]
    assert outbound_send(message_id=message.id, client=Node()) == "skipped"
    assert len(calls) == 1


def test_no_callback_runs_for_another_prefix_or_a_failed_send(calls: list[tuple[int, str]]) -> None:
    other, failing = queue("other:1"), queue("test:2")
    assert outbound_send(message_id=other.id, client=Node()) == "sent"
    assert outbound_send(message_id=failing.id, client=Node(delivered=False)) == "queued"
    assert calls == []


def test_a_failing_callback_is_logged_its_writes_undone_and_the_message_stays_sent(
    calls: list[tuple[int, str]], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(message: OutboundMessage) -> None:
        OutboundMessage.objects.filter(id=message.id).update(last_error="written by the callback")
        raise RuntimeError("boom")

    on_outbound_sent("broken:", broken)
    message = queue("broken:1")
    assert outbound_send(message_id=message.id, client=Node()) == "sent"
    message.refresh_from_db()
    assert (message.status, message.last_error) == ("sent", "")
    assert "the sent callback for 'broken:' failed" in caplog.text
