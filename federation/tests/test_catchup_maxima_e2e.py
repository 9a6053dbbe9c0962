"""A gateway added to a running network whose peers have no HTTPS API catches up by set reconciliation and
snapshots over Maxima (``ask``/``told`` in answers of ``MNS_FEDERATION_BATCH_BYTES``), not by replaying its peers'
logs from seq 1; and an anti-entropy round over Maxima repairs a name it lost.

gw-a and gw-b run, peers of each other without API URLs; the network holds ``MAXIMA_CATCHUP_NAMES`` names (seeded
as in ``test_catchup_e2e``: homed at gw-a, whose log holds a ``statement`` op for each) and their mailboxes'
announcements. Then gw-c joins, also without API URLs.
"""

import json
import os
import time
from collections.abc import Iterator

import pytest

from federation.tests.test_catchup_e2e import MAILBOXES, names_at, peer_of, seed, signed_names
from testsupport.gateways import GatewayCluster, require_postgres
from testsupport.processes import wait_for

pytestmark = [pytest.mark.slow]

NAMES = int(os.environ.get("MNS_MAXIMA_CATCHUP_NAMES", "200"))

ENV = {
    "MNS_FEDERATION_SYNC_EVERY": "2",
    "MNS_FEDERATION_CLAIM_SECONDS": "30",
    "MNS_FEDERATION_SNAPSHOT_LAG": "100",
    "MNS_FEDERATION_RECONCILE_EVERY": "3600",  # the rounds here are the catch-up's and the test's own
    "MNS_FEDERATION_RECONCILE_MAXIMA_EVERY": "3600",
    "MNS_FEDERATION_ASKS_PER_MINUTE": "6000",
    "MNS_NAMES_PER_OWNER": "1000",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayCluster]:
    pg_url = require_postgres()
    folder = tmp_path_factory.mktemp("catchup-maxima")
    with GatewayCluster(
        folder,
        gateways_count=3,
        held_back=1,
        users_count=1,
        pg_url=pg_url,
        extra_env=ENV,
        permanent=[True] * 3,
        api_urls=False,
    ) as cluster:
        yield cluster


def test_a_gateway_whose_peers_have_no_api_catches_up_over_maxima_without_replaying_from_seq_1(
    cluster: GatewayCluster,
) -> None:
    a, b, c = cluster.gateways
    replicas = [a.identity, b.identity]
    rows = signed_names(NAMES, a.identity)
    seed(b, rows, replicas, home=False)
    seed(a, rows, replicas, home=True)
    head = a.scalar("SELECT seq FROM federation_loghead WHERE origin = %s", a.identity)
    assert head >= NAMES

    started = time.monotonic()
    cluster.add_gateway()
    wait_for(lambda: names_at(c) == NAMES, timeout=120, what=f"{NAMES} names at gw-c", log=c.worker_log)
    wait_for(lambda: peer_of(c, "gw-a")["cursor"] >= head, timeout=60, what="gw-c's cursor of gw-a at its head")
    took = time.monotonic() - started
    at_c = peer_of(c, "gw-a")
    asked = c.scalar("SELECT count(*) FROM maxima_outboundmessage WHERE idempotency_key LIKE 'fed-ask:%%'")
    print(f"\ncatch-up of {NAMES} names over Maxima: {took:.1f} s, {asked} questions, {at_c}")

    assert c.scalar("SELECT api_url FROM federation_peer WHERE name = 'gw-a'") == ""
    replayed = c.scalar("SELECT count(*) FROM federation_operation WHERE origin = %s", a.identity)
    assert replayed < 20  # the log was not replayed: the snapshot brought the names, the cursor jumped
    assert at_c["reconcile_fetched_total"] >= NAMES
    assert asked > 3
    announced = c.scalar(
        "SELECT count(*) FROM registry_namerecord WHERE name LIKE 'k%%' AND gateways = %s::jsonb", json.dumps(replicas)
    )
    assert announced == min(NAMES, MAILBOXES)  # the replicas, as the home announced them (the mailboxes set)

    # An anti-entropy round over Maxima, by hand: it asks its first question, the worker carries it on.
    lost = c.scalar("SELECT name FROM registry_namerecord WHERE name LIKE 'k%%' ORDER BY md5(name) LIMIT 1")
    c.sql(
        "WITH s AS (DELETE FROM registry_statementrecord WHERE record_id IN "
        "(SELECT id FROM registry_namerecord WHERE name = %s)) "
        "DELETE FROM registry_namerecord WHERE name = %s RETURNING id",
        lost,
        lost,
    )
    done = c.manage("federation_reconcile", "--peer", "gw-a")
    rounds = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert rounds[0]["waiting"] is True
    wait_for(
        lambda: c.scalar("SELECT status FROM registry_namerecord WHERE name = %s", lost) == "active",
        timeout=60,
        what="the lost name back at gw-c",
        log=c.worker_log,
    )
