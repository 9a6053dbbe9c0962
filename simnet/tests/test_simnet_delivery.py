"""Maxima delivery between simnet nodes: webhooks, stopped nodes, size limit, poll sends and faults."""

import socket
import time
from collections.abc import Iterator

import pytest

from mns_client.protocol import crypto
from mns_client.protocol.codecs import MaximaAddress, to_hex
from simnet import SendTiming, SimNetwork, SimNode
from simnet.testing import WebhookReceiver, rpc


@pytest.fixture
def net() -> Iterator[SimNetwork]:
    # Sends take a hundredth of the time measured on real nodes (a 250 000-byte send 0.1 s instead of ~10 s).
    with SimNetwork(nodes=2, block_interval=0.5, send_timing=SendTiming().scaled(0.01)) as network:
        yield network


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hooks:
        yield hooks


def send(node: SimNode, to: str, data: str = "0x01020304", extra: str = "") -> dict:
    reply = rpc(node.rpc_url, f"maxima action:send to:{to} application:mns data:{data} {extra}".strip())
    return reply.json()["response"]


def add_hook(node: SimNode, url: str, filt: str = "MAXIMA") -> None:
    assert rpc(node.rpc_url, f"webhooks action:add hook:{url} filter:{filt}").json()["status"] is True


def test_a_send_arrives_at_the_other_nodes_webhook_exactly_once(net: SimNetwork, receiver: WebhookReceiver) -> None:
    a, b = net.nodes
    add_hook(b, receiver.url())

    reply = send(a, b.address, "0x68656C6C6F")

    (request,) = receiver.wait_for(1)
    time.sleep(0.3)
    assert len(receiver.requests) == 1
    assert reply["delivered"] is True
    event = request.json()
    assert event["event"] == "MAXIMA"
    assert event["data"]["msgid"] == reply["msgid"]
    assert event["data"]["data"] == "0x68656C6C6F"
    assert event["data"]["from"] == a.publickey_hex
    assert b.webhook_log == [(receiver.url(), 200)]


def test_plain_text_and_json_data_are_delivered_as_hex(net: SimNetwork, receiver: WebhookReceiver) -> None:
    a, b = net.nodes
    add_hook(b, receiver.url())

    send(a, b.address, "hello-mns-world")
    send(a, b.address, '{"k":"v/w"}')

    first, second = receiver.wait_for(2)
    assert first.json()["data"]["data"] == to_hex(b"hello-mns-world")
    assert second.json()["data"]["data"] == to_hex(b'{"k":"v\\/w"}')


def test_a_stopped_node_refuses_rpc_and_deliveries_then_works_after_start(
    net: SimNetwork, receiver: WebhookReceiver
) -> None:
    a, b = net.nodes
    add_hook(b, receiver.url())
    b.stop()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((b.host, b.rpc_port), timeout=2).close()
    refused = send(a, b.address)
    assert refused["delivered"] is False
    assert refused["error"] == "java.net.ConnectException: Connection refused"
    assert "creation" not in refused

    b.start()
    delivered = send(a, b.address)
    assert delivered["delivered"] is True
    (request,) = receiver.wait_for(1)
    assert request.json()["data"]["msgid"] == delivered["msgid"]


def test_a_port_whose_node_does_not_hold_the_key_answers_unknown_address(net: SimNetwork) -> None:
    a, b = net.nodes
    _, stranger = crypto.generate_maxima_keypair()

    reply = send(a, str(MaximaAddress(stranger, b.host, b.p2p_port)))

    assert reply["delivered"] is False
    assert reply["error"] == "Unknown Address"
    assert list(reply)[-4:] == ["delivered", "creation", "sending", "error"]


def test_the_package_limit_passes_250000_bytes_and_refuses_300000(net: SimNetwork) -> None:
    a, b = net.nodes

    small = send(a, b.address, "0x" + "AB" * 250000)
    big = send(a, b.address, "0x" + "AB" * 300000)

    assert small["delivered"] is True
    assert (big["delivered"], big["error"]) == (False, "Maxima Mesasge too big")


def test_a_node_can_send_to_itself(net: SimNetwork, receiver: WebhookReceiver) -> None:
    a, _ = net.nodes
    add_hook(a, receiver.url())

    assert send(a, a.address)["delivered"] is True
    assert receiver.wait_for(1)[0].json()["data"]["to"] == to_hex(MaximaAddress.parse(a.address).key)


def test_a_poll_send_is_attempted_once_and_never_retried(net: SimNetwork, receiver: WebhookReceiver) -> None:
    a, b = net.nodes
    add_hook(b, receiver.url())
    b.stop()

    lost = send(a, b.address, extra="poll:true")
    time.sleep(0.3)
    b.start()
    time.sleep(0.5)
    queued = send(a, b.address, extra="poll:true")

    assert lost["message"] == queued["message"] == "Message added to send stack.."
    assert "delivered" not in queued
    (request,) = receiver.wait_for(1)
    time.sleep(0.3)
    assert len(receiver.requests) == 1
    assert request.json()["data"]["msgid"] == queued["msgid"]
    assert rpc(a.rpc_url, "maxima").json()["response"]["poll"] == 0


def test_dropped_deliveries_say_delivered_but_never_reach_the_webhook(
    net: SimNetwork, receiver: WebhookReceiver
) -> None:
    a, b = net.nodes
    add_hook(b, receiver.url())
    b.faults.drop_deliveries = True

    reply = send(a, b.address)
    time.sleep(0.5)

    assert reply["delivered"] is True
    assert receiver.requests == []


def test_a_delivery_delay_makes_the_synchronous_send_wait(net: SimNetwork) -> None:
    a, b = net.nodes
    b.faults.delivery_delay = 0.6

    started = time.monotonic()
    reply = send(a, b.address)

    assert reply["delivered"] is True
    assert time.monotonic() - started >= 0.6


def test_a_slow_webhook_delays_later_events_of_that_node_only(net: SimNetwork) -> None:
    a, b = net.nodes
    with WebhookReceiver(delay=1.0) as slow, WebhookReceiver() as fast:
        add_hook(b, slow.url())
        add_hook(a, fast.url())
        send(a, b.address, "0x01")
        send(a, b.address, "0x02")
        started = time.monotonic()
        send(b, a.address, "0x03")

        fast.wait_for(1, timeout=0.8)
        assert time.monotonic() - started < 0.8
        assert len(slow.requests) <= 1
        first, second = slow.wait_for(2, timeout=5)
        assert [first.json()["data"]["data"], second.json()["data"]["data"]] == ["0x01", "0x02"]
        assert time.monotonic() - started >= 1.5


def test_the_webhook_delay_fault_acts_like_a_slow_endpoint(net: SimNetwork, receiver: WebhookReceiver) -> None:
    a, b = net.nodes
    add_hook(b, receiver.url())
    b.faults.webhook_delay = 0.5

    started = time.monotonic()
    send(a, b.address)
    receiver.wait_for(1)

    assert time.monotonic() - started >= 0.5


def test_the_filter_is_a_substring_of_the_event_name(net: SimNetwork) -> None:
    a, b = net.nodes
    with WebhookReceiver() as maxima, WebhookReceiver() as newcoin:
        add_hook(a, maxima.url(), "MAXIMA")
        add_hook(a, newcoin.url(), "NEWCOIN")
        rpc(b.rpc_url, f"maxcontacts action:add contact:{a.address}")

        events = {r.json()["event"] for r in maxima.wait_for(1)}
        assert events == {"MAXIMACONTACTS"}
        assert newcoin.requests == []


def test_a_failing_webhook_is_logged_and_not_retried(net: SimNetwork) -> None:
    a, b = net.nodes
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    add_hook(b, dead)

    send(a, b.address)
    deadline = time.monotonic() + 5
    while not b.webhook_log and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)

    assert len(b.webhook_log) == 1
    url, outcome = b.webhook_log[0]
    assert url == dead
    assert isinstance(outcome, ConnectionRefusedError)


def test_contacts_add_each_other_and_publickey_sends_reach_the_contact(
    net: SimNetwork, receiver: WebhookReceiver
) -> None:
    a, b = net.nodes
    add_hook(b, receiver.url())

    added = rpc(b.rpc_url, f"maxcontacts action:add contact:{a.address}").json()["response"]["maxima"]
    deadline = time.monotonic() + 5
    while not (a.contacts and b.contacts and b.contacts[0].extradata) and time.monotonic() < deadline:
        time.sleep(0.05)
    reply = rpc(a.rpc_url, f"maxima action:send publickey:{b.publickey_hex} application:mns data:0x01").json()

    assert added["delivered"] is True
    assert [c.publickey for c in a.contacts] == [b.publickey_hex]
    assert [c.publickey for c in b.contacts] == [a.publickey_hex]
    assert reply["response"]["delivered"] is True
    assert any(r.json()["data"].get("msgid") == reply["response"]["msgid"] for r in receiver.wait_for(2))


def test_a_permanent_address_resolves_through_the_mls_and_delivers(net: SimNetwork, receiver: WebhookReceiver) -> None:
    a, b = net.nodes
    add_hook(b, receiver.url())
    rpc(b.rpc_url, f"maxextra action:staticmls host:{a.address}")
    rpc(a.rpc_url, f"maxextra action:addpermanent publickey:{b.publickey_hex}")
    deadline = time.monotonic() + 5
    while b.publickey_hex not in a.mls_registry and time.monotonic() < deadline:
        time.sleep(0.05)
    permanent = f"MAX#{b.publickey_hex}#{a.address}"

    lookup = rpc(a.rpc_url, f"maxextra action:getaddress maxaddress:{permanent}").json()["response"]
    reply = send(a, permanent)

    assert lookup["success"] is True
    assert lookup["mlsresponse"]["address"] == b.address
    assert reply["delivered"] is True
    assert receiver.wait_for(1)[0].json()["data"]["msgid"] == reply["msgid"]


def test_an_unknown_permanent_key_gives_success_false_and_an_empty_string(net: SimNetwork) -> None:
    a, _ = net.nodes
    _, stranger = crypto.generate_maxima_keypair()

    reply = rpc(a.rpc_url, f"maxextra action:getaddress maxaddress:MAX#{to_hex(stranger)}#{a.address}").json()

    assert reply["response"]["success"] is False
    assert reply["response"]["mlsresponse"] == "{}"
