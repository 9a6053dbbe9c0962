"""The MNS network heals around what breaks it, end to end on three live gateways (``testsupport.gateways``):
a partition between gw-a and gw-c, with gw-b reaching both, converges through gw-b's relays; and a gateway
restored from an older backup of its database rejoins with nothing lost or doubled and no log position reused,
following ``docs/operations.md`` step by step.

One cluster serves the module; each test uses its own names and puts back what it breaks.
"""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from federation.tests.test_network_e2e import FEDERATION, owner_at, wait_at
from testsupport.gateways import Gateway, GatewayCluster, require_postgres

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayCluster]:
    pg_url = require_postgres()
    folder = tmp_path_factory.mktemp("recovery")
    with GatewayCluster(folder, gateways_count=3, users_count=3, pg_url=pg_url, extra_env=FEDERATION) as cluster:
        yield cluster


def statement_of(gateway: Gateway, name: str) -> dict[str, Any]:
    rows = gateway.sql("SELECT statement FROM registry_namerecord WHERE name = %s", name)
    statement = rows[0][0] if rows else None
    return (json.loads(statement) if isinstance(statement, str) else statement) or {}


def relays_at(gateway: Gateway, *, by: Gateway, origin: Gateway) -> int:
    """How many ops of ``by``'s log stored at ``gateway`` relay a statement of ``origin``'s."""
    return gateway.scalar(
        "SELECT count(*) FROM federation_operation WHERE origin = %s AND payload->'relay'->>'origin' = %s",
        by.identity,
        origin.identity,
    )


def cursor_of(gateway: Gateway, peer: Gateway) -> int:
    return gateway.scalar("SELECT cursor FROM federation_peer WHERE identity_key = %s", peer.identity)


def test_partitioned_a_and_c_with_b_in_the_middle_converge_through_b(cluster: GatewayCluster) -> None:
    """gw-a's and gw-c's nodes cannot reach each other; both reach gw-b. Names registered at a and at c, their
    updates, and a transfer offered at a and accepted at c reach the other side through b's relays."""
    a, b, c = cluster.gateways
    first, second, third = (user.key for user in cluster.users)
    cluster.net.cut(a.index, c.index)
    took: dict[str, float] = {}
    try:
        at_a, at_c = cluster.client(0, a), cluster.client(1, c)
        at_a.register("pia")  # confirmed by a and b, a majority of three
        start = time.monotonic()
        wait_at(c, "pia through b", lambda g: owner_at(g, "pia") == ("active", first))
        took["register a→c"] = time.monotonic() - start
        at_c.register("quin")  # confirmed by c and b
        start = time.monotonic()
        wait_at(a, "quin through b", lambda g: owner_at(g, "quin") == ("active", second))
        took["register c→a"] = time.monotonic() - start

        start = time.monotonic()
        at_a.set_data("pia", {"website": "https://pia.example/"})
        at_c.set_data("quin", {"website": "https://quin.example/"})
        wait_at(c, "pia's update", lambda g: statement_of(g, "pia").get("data") == {"website": "https://pia.example/"})
        wait_at(
            a, "quin's update", lambda g: statement_of(g, "quin").get("data") == {"website": "https://quin.example/"}
        )
        took["update"] = time.monotonic() - start

        start = time.monotonic()
        at_a.transfer("pia", third)  # offered at a, accepted at c by the new owner
        wait_at(c, "the offer", lambda g: statement_of(g, "pia").get("op") == "transfer")
        taker_at_c = cluster.client(2, c)
        assert taker_at_c.accept_transfer("pia").owner == third
        wait_at(a, "the accept", lambda g: owner_at(g, "pia") == ("active", third))
        took["transfer"] = time.monotonic() - start

        for gateway in cluster.gateways:
            assert owner_at(gateway, "pia") == ("active", third), gateway.name
            assert owner_at(gateway, "quin") == ("active", second), gateway.name
            assert statement_of(gateway, "quin")["seq"] == 2
        assert relays_at(c, by=b, origin=a) >= 3  # a's register, update and offer reached c as b's relays
        assert relays_at(a, by=b, origin=c) >= 3  # c's register, update and accept reached a the same way
        # nothing of a's log reached c from a itself, nor the other way round
        assert c.scalar("SELECT count(*) FROM federation_operation WHERE origin = %s", a.identity) == 0
        assert a.scalar("SELECT count(*) FROM federation_operation WHERE origin = %s", c.identity) == 0
        for client in (at_a, at_c, taker_at_c):
            client.close()
    finally:
        cluster.net.cut(a.index, c.index, cut=False)
    print(f"\npartition convergence (s): {json.dumps({k: round(v, 1) for k, v in took.items()})}")
    # healed: a's and c's own logs reach each other again, and relayed copies change nothing twice
    wait_at(c, "a's own log", lambda g: cursor_of(g, a) == a.scalar("SELECT seq FROM federation_loghead"))
    for gateway in cluster.gateways:
        assert gateway.scalar("SELECT count(*) FROM registry_namerecord WHERE name IN ('pia', 'quin')") == 2
        assert gateway.scalar("SELECT sum(invalid_ops) FROM federation_peer") == 0, gateway.name
    cluster.wait_healthy()
