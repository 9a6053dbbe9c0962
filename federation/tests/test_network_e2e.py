"""The MNS network end to end: three live gateways (gw-a and gw-b with permanent MAX# addresses, gw-c reachable
only as a contact), each with its own PostgreSQL database, Redis database, Celery worker and beat, gunicorn and
simnet node, made peers of each other with ``manage.py peers add``; users act through the real ``mns`` SDK on
their own simnet nodes.

One cluster serves the whole module: each test uses its own names, and puts back what it stops. What a gateway
holds is read from its own database (``Gateway.sql``) and through its API, as a client would.
"""

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from mns_client.protocol.codecs import to_hex
from mns_client.protocol.crypto import box_keypair, maxsign
from mns_client.protocol.errors import MNSError
from mns_client.protocol.rpc import MinimaRPC
from mns_client.protocol.statements import NameStatement, SignedStatement
from testsupport.gateways import Gateway, GatewayCluster, require_postgres
from testsupport.processes import wait_for

pytestmark = [pytest.mark.slow]

REPLICATED = 90  # seconds a change may take to reach every gateway (sync every 2 s; outbox retries every 1-2 s)

FEDERATION = {
    "MNS_FEDERATION_SYNC_EVERY": "2",
    "MNS_FEDERATION_CLAIM_SECONDS": "30",
    "MNS_FEDERATION_PAUSE_AFTER_INVALID": "3",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayCluster]:
    pg_url = require_postgres()
    folder = tmp_path_factory.mktemp("network")
    with GatewayCluster(folder, gateways_count=3, users_count=3, pg_url=pg_url, extra_env=FEDERATION) as cluster:
        yield cluster


# ------------------------------------------------------------------------------------------------- helpers


def owner_at(gateway: Gateway, name: str) -> tuple[str, str] | None:
    """(status, owner key) of a name in that gateway's own registry, or None."""
    rows = gateway.sql("SELECT status, owner_key FROM registry_namerecord WHERE name = %s", name)
    return rows[0] if rows else None


def copies_at(gateway: Gateway, delivery_id: str) -> int:
    """How many stored messages of one delivery that gateway holds."""
    return gateway.scalar("SELECT count(*) FROM mailboxes_message WHERE delivery_id = %s", delivery_id)


def wait_at(gateway: Gateway, what: str, check: Any) -> None:
    """Until ``check(gateway)``; a timeout says where the gateway's replication stands."""
    try:
        wait_for(lambda: check(gateway), timeout=REPLICATED, what=f"{what} at {gateway.name}")
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n{replication_state(gateway)}") from None


def wait_everywhere(cluster: GatewayCluster, what: str, check: Any, gateways: list[Gateway] | None = None) -> None:
    for gateway in gateways or cluster.gateways:
        wait_at(gateway, what, check)


def replication_state(gateway: Gateway) -> str:
    """The gateway's peers (cursors, heads, waits, counters), its latest mns-sync events and unsent mns-sync."""
    peers = gateway.sql(
        "SELECT name, cursor, remote_head, pushed, waiting_seq, invalid_ops, refused_ops, paused, last_heard_at "
        "FROM federation_peer ORDER BY name"
    )
    events = gateway.sql(
        "SELECT status, attempts, last_error, left(convert_from(data, 'UTF8'), 160) FROM maxima_inboundevent "
        "WHERE application = 'mns-sync' ORDER BY id DESC LIMIT 8"
    )
    unsent = gateway.sql(
        "SELECT idempotency_key, status, attempts, last_error FROM maxima_outboundmessage "
        "WHERE application = 'mns-sync' AND status <> 'sent' ORDER BY id LIMIT 8"
    )
    outcomes = gateway.sql(
        "SELECT kind, outcome, count(*) FROM federation_operation GROUP BY kind, outcome ORDER BY kind, outcome"
    )
    lines = [f"--- {gateway.name}: peers (name, cursor, remote_head, pushed, waiting_seq, invalid, refused, paused)"]
    lines += [repr(row) for row in peers]
    lines += ["--- op outcomes", repr(outcomes), "--- latest mns-sync events", *map(repr, events)]
    lines += ["--- unsent mns-sync", *map(repr, unsent), "--- worker log", gateway.tail(2000)]
    return "\n".join(lines)


def peer_paused(gateway: Gateway, name: str) -> bool:
    return bool(gateway.scalar("SELECT paused FROM federation_peer WHERE name = %s", name))


def peer_row(gateway: Gateway, name: str) -> dict[str, Any]:
    """The peer as ``manage.py peers list --json`` shows it to staff."""
    listed = json.loads(gateway.manage("peers", "list", "--json").stdout)
    return next(row for row in listed if row["name"] == name)


# ------------------------------------------------------------------------------------------------- the mesh


def test_every_gateway_has_the_others_as_enabled_peers_and_says_it_is_healthy(cluster: GatewayCluster) -> None:
    for gateway in cluster.gateways:
        listed = json.loads(gateway.manage("peers", "list", "--json").stdout)
        others = [g for g in cluster.gateways if g is not gateway]
        assert [(row["name"], row["identity_key"], row["address"], row["permanent"]) for row in listed] == [
            (g.name, g.identity, g.address, g.permanent) for g in others
        ]
        assert all(row["enabled"] and not row["paused"] for row in listed)
        assert gateway.health()["status"] == "ok"
    assert [g.address.startswith("MAX#") for g in cluster.gateways] == [True, True, False]


# -------------------------------------------------------------------------------------------------- claims


def test_a_name_registered_at_two_gateways_at_once_ends_with_one_owner_everywhere(cluster: GatewayCluster) -> None:
    a, b, _ = cluster.gateways
    first, second = cluster.client(0, a), cluster.client(1, b)
    for client in (first, second):  # what the clients learn before asking, so both ask at the same moment
        client.identity(), client.gateway()
    start = threading.Barrier(2)
    outcome: dict[str, Any] = {}

    def register(label: str, client: Any) -> None:
        start.wait()
        try:
            outcome[label] = client.register("zoe")
        except Exception as exc:
            outcome[label] = exc

    threads = [threading.Thread(target=register, args=pair) for pair in (("a", first), ("b", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)

    refused = {label: result for label, result in outcome.items() if isinstance(result, Exception)}
    registered = {label: result for label, result in outcome.items() if label not in refused}
    assert len(registered) == 1, outcome
    (loser,) = refused.values()
    assert isinstance(loser, MNSError), repr(loser)  # refused at the request or at its handshake
    assert loser.code == "name_taken", repr(loser)
    (winner,) = registered.values()
    assert winner.owner == (cluster.users[0] if "a" in registered else cluster.users[1]).key

    wait_everywhere(cluster, "zoe's owner", lambda g: owner_at(g, "zoe") == ("active", winner.owner))
    for gateway in cluster.gateways:
        whois = cluster.cli(2, gateway, "whois", "zoe", "--json")  # the mns CLI checks the binding signature itself
        assert whois.returncode == 0, whois.stderr
        assert json.loads(whois.stdout)["owner"] == winner.owner
        assert gateway.scalar("SELECT count(*) FROM registry_namerecord WHERE skeleton = 'zoe'") == 1
    for client in (first, second):
        client.close()


# --------------------------------------------------------------------------------------------- replication


def test_a_message_delivered_at_a_is_read_at_c_and_deleted_there_everywhere(cluster: GatewayCluster) -> None:
    a, _, c = cluster.gateways
    owner_at_a = cluster.client(0, a)
    owner_at_a.register("mira")
    sent = cluster.client(1, a).send("mira", b"hello from the other side", subject="hi")
    assert sent.status == "stored"
    wait_everywhere(cluster, "the message", lambda g: copies_at(g, sent.delivery_id) == 1)

    owner_at_c = cluster.client(0, c)
    listed = owner_at_c.messages("mira")  # a handshake at c, answered by the owner's node to c's Mx… address
    assert len(listed) == 1
    message = owner_at_c.read("mira", listed[0].id)
    assert message.opened is not None, message.problem
    assert message.opened.letter.body == "hello from the other side"
    assert message.meta.sender == cluster.users[1].key

    owner_at_c.delete("mira", listed[0].id)
    wait_everywhere(cluster, "the deletion", lambda g: copies_at(g, sent.delivery_id) == 0)
    assert owner_at_a.messages("mira") == []
    for gateway in cluster.gateways:
        assert (
            gateway.scalar(
                "SELECT coalesce(sum(c.message_count), 0) FROM mailboxes_mailboxcounter c "
                "JOIN mailboxes_mailbox m ON m.id = c.mailbox_id JOIN registry_namerecord r "
                "ON r.id = m.record_id WHERE r.name = 'mira'"
            )
            == 0
        )
    for client in (owner_at_a, owner_at_c):
        client.close()


def test_a_data_record_and_a_transfer_reach_every_gateway_and_the_old_mail_goes_everywhere(
    cluster: GatewayCluster,
) -> None:
    a, b, _ = cluster.gateways
    old_owner, new_owner = cluster.users[0].key, cluster.users[2].key
    at_a = cluster.client(0, a)
    at_a.register("vela")
    at_a.set_data("vela", {"website": "https://vela.example/"})
    sent = cluster.client(1, a).send("vela", b"for the first owner only")
    wait_everywhere(cluster, "the data record and the message", lambda g: _data_of(g, "vela") is not None)
    wait_everywhere(cluster, "the old owner's message", lambda g: copies_at(g, sent.delivery_id) == 1)
    # the owner offers vela at a; the new owner accepts at b (its home from now on)
    at_a.transfer("vela", new_owner)
    taker_at_b = cluster.client(2, b)
    wait_at(b, "the offer", lambda g: _op_of(g, "vela") == "transfer")
    taken = taker_at_b.accept_transfer("vela")
    assert (taken.owner, taken.data, taken.transfer) == (new_owner, None, None)
    # everywhere: the new owner's, without the old owner's mail; the new owner reads an empty mailbox at b
    wait_everywhere(cluster, "the accepted transfer", lambda g: owner_at(g, "vela") == ("active", new_owner))
    wait_everywhere(cluster, "the old mail gone", lambda g: copies_at(g, sent.delivery_id) == 0)
    assert taker_at_b.messages("vela") == []
    assert old_owner != new_owner
    for client in (at_a, taker_at_b):
        client.close()


def _data_of(gateway: Gateway, name: str) -> Any:
    rows = gateway.sql("SELECT statement FROM registry_namerecord WHERE name = %s", name)
    statement = rows[0][0] if rows else None
    statement = json.loads(statement) if isinstance(statement, str) else statement
    return (statement or {}).get("data")


def _op_of(gateway: Gateway, name: str) -> str | None:
    rows = gateway.sql("SELECT statement FROM registry_namerecord WHERE name = %s", name)
    statement = rows[0][0] if rows else None
    statement = json.loads(statement) if isinstance(statement, str) else statement
    return (statement or {}).get("op")


def test_a_gateway_that_was_stopped_catches_up_with_nothing_lost_or_doubled(cluster: GatewayCluster) -> None:
    a, b, c = cluster.gateways
    cluster.stop_gateway(b)
    try:
        cluster.client(0, a).register("nova")  # a majority without b: a and c
        cluster.client(1, c).register("orla")  # at the contact-only gateway
        sender = cluster.client(2, a)
        sent = [sender.send("nova", f"while b was away {n}".encode()) for n in range(3)]
        sent.append(cluster.client(2, c).send("orla", b"to orla at c"))
        wait_everywhere(cluster, "the messages", lambda g: all(copies_at(g, s.delivery_id) == 1 for s in sent), [a, c])
        time.sleep(3)  # b stays away a little longer: its peers' pushes to it fail and wait
    finally:
        cluster.start_gateway(b)

    wait_at(b, "nova", lambda g: owner_at(g, "nova") == ("active", cluster.users[0].key))
    wait_at(b, "orla", lambda g: owner_at(g, "orla") == ("active", cluster.users[1].key))
    wait_everywhere(cluster, "every message once", lambda g: all(copies_at(g, s.delivery_id) == 1 for s in sent))
    time.sleep(4)  # two more sync rounds: nothing arrives a second time
    for gateway in cluster.gateways:
        assert [copies_at(gateway, s.delivery_id) for s in sent] == [1, 1, 1, 1], gateway.name
        counts = gateway.sql(
            "SELECT r.name, (SELECT coalesce(sum(c.message_count), 0) FROM mailboxes_mailboxcounter c "
            "WHERE c.mailbox_id = m.id) FROM mailboxes_mailbox m JOIN registry_namerecord r ON r.id = m.record_id "
            "WHERE r.name IN ('nova', 'orla') ORDER BY r.name"
        )
        assert counts == [("nova", 3), ("orla", 1)], gateway.name
        doubled = gateway.scalar(
            "SELECT count(*) FROM (SELECT origin, seq FROM federation_operation WHERE seq IS NOT NULL "
            "GROUP BY origin, seq HAVING count(*) > 1) d"
        )
        assert doubled == 0
    cluster.wait_healthy()


# ------------------------------------------------------------------------------------------------ poisoning


def test_a_peer_that_sends_forged_statements_changes_nothing_and_is_paused(cluster: GatewayCluster) -> None:
    a = cluster.gateways[0]
    rogue = cluster.users[2].node  # a node posing as a peer gateway of a
    victim = cluster.client(0, a)
    victim.register("vera")
    record_before = a.sql("SELECT owner_key, box_key, seq, signature FROM registry_namerecord WHERE name = 'vera'")
    names_before = a.scalar("SELECT count(*) FROM registry_namerecord")
    forged = json.dumps(_forged_ops(a, rogue, victim_key=cluster.users[0].key)).encode()
    rpc = MinimaRPC(rogue.rpc_url, timeout=30)

    stranger = rpc.maxima_send(to=a.address, application="mns-sync", data=forged).msgid  # not a peer yet
    wait_for(
        lambda: a.scalar("SELECT status FROM maxima_inboundevent WHERE msgid = %s", stranger) == "ignored",
        timeout=30,
        what="the stranger's batch to be ignored",
        log=a.worker_log,
    )
    assert a.scalar("SELECT count(*) FROM federation_operation WHERE origin = %s", rogue.publickey_hex) == 0

    a.manage("peers", "add", "rogue", "--key", rogue.publickey_hex, "--address", rogue.address)
    try:
        rpc.maxima_send(to=a.address, application="mns-sync", data=forged)
        wait_for(lambda: peer_paused(a, "rogue"), timeout=60, what="the rogue peer to be paused", log=a.worker_log)

        row = peer_row(a, "rogue")
        assert row["invalid_ops"] >= 3
        assert row["paused_reason"]
        assert a.sql("SELECT owner_key, box_key, seq, signature FROM registry_namerecord WHERE name = 'vera'") == (
            record_before
        )
        assert a.scalar("SELECT count(*) FROM registry_namerecord") == names_before
        for name in ("mallory", "victoria"):
            assert a.api("GET", f"/api/v1/names/{name}")[0] == 404
        assert a.scalar("SELECT count(*) FROM federation_operation WHERE origin = %s", rogue.publickey_hex) == 0
        health = a.health()
        assert health["status"] == "degraded", health
        assert not health["checks"]["peers"]["ok"], health
    finally:
        a.manage("peers", "remove", "rogue")
    cluster.wait_healthy([a])


def _forged_ops(gateway: Gateway, rogue: Any, *, victim_key: str) -> dict[str, Any]:
    """An ``ops`` batch of the rogue's own log (seq 1-3): a new name whose signature is garbage, vera handed to the
    rogue's key (an update signed by the rogue, not by vera's owner), and a name said to be the victim's, signed
    by the rogue."""
    now = int(time.time() * 1000)
    box = to_hex(box_keypair()[1])

    def statement(op: str, name: str, owner: str, seq: int) -> NameStatement:
        return NameStatement(
            op=op, name=name, owner=owner, box_key=box, seq=seq, issued_at=now, gateway=rogue.publickey_hex
        )

    def signed_by_rogue(statement: NameStatement) -> SignedStatement:
        return SignedStatement(statement, maxsign(rogue.private_key, statement.canonical()))

    forged = [
        SignedStatement(statement("register", "mallory", rogue.publickey_hex, 1), b"\x01" * 128),
        signed_by_rogue(statement("update", "vera", rogue.publickey_hex, 2)),
        signed_by_rogue(statement("register", "victoria", victim_key, 1)),
    ]
    ops = [
        {"seq": seq, "kind": "statement", "payload": signed.to_dict(), "created_at": now}
        for seq, signed in enumerate(forged, start=1)
    ]
    return {"v": 1, "type": "ops", "origin": rogue.publickey_hex, "head": len(ops), "ops": ops}
