"""Log compaction end to end on three live gateways (``testsupport.gateways``): gw-c is down while gw-a compacts its
log past where gw-c stopped; back, gw-c gets gw-a's ``compacted`` answer with the tombstone of a letter deleted
meanwhile, reconciles with gw-a, and ends with every letter once, the deleted one nowhere, and nothing doubled.

Compaction runs by hand here (``manage.py federation_compact``), keeping one op, with a silent bound of 3 s.
"""

import json
import time
from collections.abc import Iterator

import pytest

from federation.tests.test_network_e2e import FEDERATION, copies_at, owner_at, wait_at, wait_everywhere
from testsupport.gateways import Gateway, GatewayCluster, require_postgres
from testsupport.processes import wait_for

pytestmark = [pytest.mark.slow]

ENV = {
    **FEDERATION,
    "MNS_FEDERATION_COMPACT_EVERY": "0",
    "MNS_FEDERATION_LOG_KEEP": "1",
    "MNS_FEDERATION_COMPACT_SILENT_SECONDS": "3",
    "MNS_FEDERATION_RECONCILE_EVERY": "3600",  # the rounds here are the compacted answer's
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayCluster]:
    pg_url = require_postgres()
    folder = tmp_path_factory.mktemp("compaction")
    with GatewayCluster(
        folder, gateways_count=3, users_count=2, pg_url=pg_url, extra_env=ENV, permanent=[True] * 3
    ) as cluster:
        yield cluster


def head_of(gateway: Gateway) -> int:
    return gateway.scalar("SELECT seq FROM federation_loghead")


def peer_value(gateway: Gateway, column: str, peer: Gateway) -> int:
    return gateway.scalar(f"SELECT {column} FROM federation_peer WHERE identity_key = %s", peer.identity)  # noqa: S608


def test_a_gateway_down_while_its_peer_compacted_rejoins_and_converges_with_nothing_lost_or_doubled(
    cluster: GatewayCluster,
) -> None:
    a, b, c = cluster.gateways
    owner, sender = cluster.client(0, a), cluster.client(1, a)
    owner.register("wren")
    before = [sender.send("wren", f"before {n}".encode()) for n in range(2)]
    wait_everywhere(cluster, "the first letters", lambda g: all(copies_at(g, s.delivery_id) == 1 for s in before))
    gone_uid = a.scalar("SELECT uid FROM mailboxes_message WHERE delivery_id = %s", before[0].delivery_id)
    cursor_before = peer_value(c, "cursor", a)

    cluster.stop_gateway(c)
    try:
        cluster.client(1, a).register("yara")  # a majority without c: a and b
        owner.delete("wren", gone_uid)  # c holds it: only the tombstone can tell it
        after = [sender.send("wren", f"while c was away {n}".encode()) for n in range(3)]
        after.append(cluster.client(0, a).send("yara", b"to yara"))
        wait_at(b, "a's log", lambda g: peer_value(g, "cursor", a) == head_of(a))
        wait_for(lambda: peer_value(a, "log_position", b) == head_of(a), timeout=60, what="b to say it holds a's log")
        time.sleep(3.5)  # c silent past the bound
        report = json.loads(a.manage("federation_compact").stdout.splitlines()[-1])
    finally:
        cluster.start_gateway(c)

    floor = report["floor"]
    assert floor == head_of(a) - 1 > cursor_before
    kept = a.sql("SELECT seq, kind FROM federation_operation WHERE origin = %s AND seq <= %s", a.identity, floor)
    assert kept  # the deletion's tombstone …
    assert all(kind == "delete" for _, kind in kept)  # … and nothing else below the floor

    wait_at(c, "the deletion", lambda g: copies_at(g, before[0].delivery_id) == 0)
    wait_at(c, "yara", lambda g: owner_at(g, "yara") == ("active", cluster.users[1].key))
    letters = [before[1], *after]
    wait_at(c, "every letter", lambda g: all(copies_at(g, s.delivery_id) == 1 for s in letters))
    wait_at(c, "the cursor past the floor", lambda g: peer_value(g, "cursor", a) >= floor)
    assert peer_value(c, "remote_floor", a) == floor  # it came by the compacted answer, not a replay
    time.sleep(4)  # two more sync rounds: nothing arrives a second time
    for gateway in cluster.gateways:
        assert copies_at(gateway, before[0].delivery_id) == 0, gateway.name
        assert [copies_at(gateway, s.delivery_id) for s in letters] == [1] * len(letters), gateway.name
        counts = gateway.sql(
            "SELECT r.name, (SELECT coalesce(sum(c.message_count), 0) FROM mailboxes_mailboxcounter c "
            "WHERE c.mailbox_id = m.id) FROM mailboxes_mailbox m JOIN registry_namerecord r ON r.id = m.record_id "
            "WHERE r.name IN ('wren', 'yara') ORDER BY r.name"
        )
        assert counts == [("wren", 4), ("yara", 1)], gateway.name
        assert gateway.scalar("SELECT sum(invalid_ops) FROM federation_peer") == 0, gateway.name
    for client in (owner, sender):
        client.close()
    cluster.wait_healthy()
