"""The MNS network heals around what breaks it, end to end on three live gateways (``testsupport.gateways``):
a partition between gw-a and gw-c, with gw-b reaching both, converges through gw-b's relays; and a gateway
restored from an older backup of its database rejoins with nothing lost or doubled and no log position reused,
following ``docs/operations.md`` step by step.

One cluster serves the module; each test uses its own names and puts back what it breaks.
"""

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from federation.tests.test_network_e2e import FEDERATION, REPLICATED, copies_at, owner_at, wait_at, wait_everywhere
from testsupport.gateways import Gateway, GatewayCluster, require_postgres
from testsupport.processes import wait_for

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
        took["register a to c"] = time.monotonic() - start
        at_c.register("quin")  # confirmed by c and b
        start = time.monotonic()
        wait_at(a, "quin through b", lambda g: owner_at(g, "quin") == ("active", second))
        took["register c to a"] = time.monotonic() - start

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


# ---------------------------------------------------------------------------------------- restored from a backup


def backup(gateway: Gateway, dump: Path) -> None:
    """``docs/operations.md``, step 1: a custom-format dump of the gateway's database, taken while it runs."""
    subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", gateway.database_url], check=True, timeout=120)


def restore(gateway: Gateway, dump: Path) -> None:
    """Steps 3-4: the database recreated empty and the dump restored into it."""
    admin = gateway.database_url.rsplit("/", 1)[0] + "/postgres"
    subprocess.run(["dropdb", "--force", f"--maintenance-db={admin}", gateway.database], check=True, timeout=60)
    subprocess.run(["createdb", f"--maintenance-db={admin}", gateway.database], check=True, timeout=60)
    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={gateway.database_url}", str(dump)],
        check=True,
        timeout=300,
    )


def log_state(gateway: Gateway) -> dict[str, Any]:
    return json.loads(gateway.manage("backup_restored", "--status").stdout.splitlines()[-1])


def own_log(gateway: Gateway, of: Gateway) -> list[tuple[int, str, int]]:
    """``of``'s log as ``gateway`` holds it: (seq, kind, created_at in ms)."""
    rows = gateway.sql(
        "SELECT seq, kind, (extract(epoch FROM created_at) * 1000)::bigint FROM federation_operation "
        "WHERE origin = %s AND seq IS NOT NULL ORDER BY seq",
        of.identity,
    )
    return [tuple(row) for row in rows]


def same_ops(one: list[tuple[int, str, int]], other: list[tuple[int, str, int]]) -> bool:
    """The same ops at the same positions (``created_at`` to the millisecond, as a copy keeps it)."""
    return len(one) == len(other) and all(
        (x[0], x[1]) == (y[0], y[1]) and abs(x[2] - y[2]) <= 1 for x, y in zip(one, other, strict=True)
    )


def message_counts(gateway: Gateway, names: list[str]) -> dict[str, int]:
    rows = gateway.sql(
        "SELECT r.name, (SELECT coalesce(sum(c.message_count), 0) FROM mailboxes_mailboxcounter c "
        "WHERE c.mailbox_id = m.id) FROM mailboxes_mailbox m JOIN registry_namerecord r ON r.id = m.record_id "
        "WHERE r.name = ANY(%s)",
        names,
    )
    return dict(rows)


def test_a_gateway_restored_from_an_older_backup_converges_with_nothing_lost_or_doubled(
    cluster: GatewayCluster, tmp_path: Path
) -> None:
    a, b, c = cluster.gateways
    first, second, third = (user.key for user in cluster.users)
    sol = cluster.client(0, a)
    sol.register("sol")
    before = [cluster.client(2, a).send("sol", b"before the backup")]
    wait_everywhere(cluster, "the first letter", lambda g: copies_at(g, before[0].delivery_id) == 1)
    dump = tmp_path / "gw-a.dump"
    backup(a, dump)
    backed_up_head = a.scalar("SELECT seq FROM federation_loghead")

    # the day after the backup: names, a data record and letters at a, and at the others
    cluster.client(1, a).register("tara")
    sol.set_data("sol", {"website": "https://sol.example/"})
    after = [cluster.client(2, a).send("sol", f"after the backup {n}".encode()) for n in range(2)]
    after.append(cluster.client(2, a).send("tara", b"to tara at a"))
    cluster.client(2, b).register("uma")
    after.append(cluster.client(0, b).send("tara", b"to tara at b"))
    after.append(cluster.client(1, c).send("sol", b"to sol at c"))
    after.append(cluster.client(0, c).send("uma", b"to uma at c"))
    letters = before + after
    wait_everywhere(cluster, "every letter", lambda g: all(copies_at(g, s.delivery_id) == 1 for s in letters))
    wait_at(b, "a's log", lambda g: cursor_of(g, a) == a.scalar("SELECT seq FROM federation_loghead"))
    wait_at(c, "a's log", lambda g: cursor_of(g, a) == a.scalar("SELECT seq FROM federation_loghead"))
    lost_head = a.scalar("SELECT seq FROM federation_loghead")
    held_by_b = own_log(b, a)
    assert lost_head > backed_up_head

    # a's database is lost: stopped, restored from the backup, told so, started (docs/operations.md)
    cluster.stop_gateway(a)
    a.web.stop()
    restore(a, dump)
    assert a.scalar("SELECT seq FROM federation_loghead") == backed_up_head
    assert owner_at(a, "tara") is None
    a.manage("backup_restored", "--reason", "the test restored yesterday's dump")
    started = time.monotonic()
    a.web.start()
    cluster.start_gateway(a)
    wait_for(lambda: not log_state(a)["recovering"], timeout=REPLICATED, what="a to recover its log", log=a.worker_log)
    recovered_in = time.monotonic() - started

    names = {"sol": first, "tara": second, "uma": third}
    for name, owner in names.items():
        wait_everywhere(cluster, name, lambda g, name=name, owner=owner: owner_at(g, name) == ("active", owner))
    wait_everywhere(cluster, "every letter once", lambda g: all(copies_at(g, s.delivery_id) == 1 for s in letters))
    converged_in = time.monotonic() - started
    state = log_state(a)
    assert state["seq"] >= lost_head
    assert state["recovered_ops"] > 0
    assert f"the log was at {backed_up_head}" in state["note"]

    # after it: a new letter at a takes a new position, past every one its peers saw, and reaches them
    late = cluster.client(1, a).send("sol", b"after the restore")
    letters.append(late)
    wait_everywhere(cluster, "the late letter", lambda g: copies_at(g, late.delivery_id) == 1)
    time.sleep(4)  # two more sync rounds: nothing arrives a second time
    for gateway in cluster.gateways:
        assert [copies_at(gateway, s.delivery_id) for s in letters] == [1] * len(letters), gateway.name
        assert message_counts(gateway, list(names)) == {"sol": 5, "tara": 2, "uma": 1}, gateway.name
        assert statement_of(gateway, "sol")["data"] == {"website": "https://sol.example/"}
    recovered = own_log(a, a)
    assert [seq for seq, _kind, _at in recovered] == list(range(1, len(recovered) + 1))  # no hole, none twice
    assert same_ops(recovered[: len(held_by_b)], held_by_b)  # the lost positions hold the same ops as before
    assert len(recovered) > lost_head  # the new ops took positions past every one the peers had seen
    for peer in (b, c):
        held = own_log(peer, a)
        assert same_ops(held[: len(held_by_b)], held_by_b)  # nothing the peers held was replaced
        assert same_ops(held, recovered[: len(held)])
        assert "positions it used before" not in peer.worker_log.read_text(errors="replace")
    health = a.health()
    assert health["checks"]["log"]["ok"], health
    assert "recovered" in health["checks"]["log"]["detail"]
    print(f"\nrestore: recovering took {recovered_in:.1f} s, every name and letter everywhere {converged_in:.1f} s")
    cluster.wait_healthy()
