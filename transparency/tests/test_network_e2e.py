"""The transparency root across three live gateways (``GatewayCluster``): each computes its root at every cut-off,
signs it on its node and sends it to its peers; gw-a publishes the agreed root on chain with the entry points;
a user's ``mns whois`` (the CLI, reading the bulletin through their own node) finds the name in the published
directory. Then gw-c's database is forged (a name's record and history changed to another owner key, validly
signed by that key): ``mns whois`` at gw-c exits 6 without showing the record, and both honest peers flag gw-c in
health, while gw-c says it is in the minority.

The module's ``network`` fixture is the cluster, its chain set up, and ``victor`` registered and published in an
agreed root; the tests run in order (the forgery comes after the honest checks).
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mns_client.config import Home
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.crypto import maxsign
from mns_client.protocol.statements import NameStatement
from mns_client.protocol.transparency import ProofInvalid, SignedRoot, check_in_directory
from registry.tests.support import fresh_owner
from testsupport.gateways import Gateway, GatewayCluster, require_postgres
from testsupport.processes import wait_for

pytestmark = [pytest.mark.slow]

SETTLED = 120  # seconds for a name to replicate, roots to be computed and exchanged, and a bulletin to be mined
NAME = "victor"
ENV = {
    "MNS_FEDERATION_SYNC_EVERY": "2",
    "MNS_TRANSPARENCY_EVERY": "4",
    "MNS_TRANSPARENCY_SETTLE": "6",  # replication's time to bring a statement before its cut-off is computed
    "MNS_ENTRYPOINTS_CHECK_EVERY": "2",
    "MNS_CONFIRMATIONS": "1",
}


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayCluster]:
    pg_url = require_postgres()
    folder = tmp_path_factory.mktemp("transparency")
    publisher = {0: {"MNS_PUBLISHER": "true"}}
    with GatewayCluster(
        folder, gateways_count=3, users_count=2, pg_url=pg_url, extra_env=ENV, gateway_env=publisher
    ) as cluster:
        chain_set_up(cluster)
        cluster.client(0, cluster.gateways[0]).register(NAME)
        issued = wait_replicated(cluster, NAME)
        wait_for(lambda: agreed_cutoff(cluster.gateways[0], after=issued), timeout=SETTLED, what="an agreed root")
        publish(cluster.gateways[0])
        yield cluster


# ------------------------------------------------------------------------------------------------- helpers


def chain_set_up(cluster: GatewayCluster) -> None:
    """gw-a makes the entry-point token and first bulletin; gw-b and gw-c track its script (readers)."""
    a, *readers = cluster.gateways
    a.manage("entrypoints_setup", "--wait", str(SETTLED), timeout=SETTLED + 30)
    tokenid, owner = a.sql("SELECT tokenid, owner_key FROM entrypoints_setup WHERE id = 1")[0]
    for reader in readers:
        reader.env.update({"MNS_ENTRYPOINTS_TOKENID": tokenid, "MNS_ENTRYPOINTS_OWNER": owner})
        reader.manage("entrypoints_setup", "--wait", str(SETTLED), timeout=SETTLED + 30)


def wait_replicated(cluster: GatewayCluster, name: str) -> int:
    """Until every gateway holds the name active; its statement's issued_at."""
    for gateway in cluster.gateways:
        wait_for(
            lambda g=gateway: g.scalar("SELECT status FROM registry_namerecord WHERE name = %s", name) == "active",
            timeout=SETTLED,
            what=f"{name} at {gateway.name}",
        )
    statement = cluster.gateways[0].scalar("SELECT statement FROM registry_namerecord WHERE name = %s", name)
    return int(statement["issued_at"])


def agreed_cutoff(gateway: Gateway, *, after: int) -> int | None:
    """The newest cut-off after ``after`` at which both peers signed the same root as this gateway, or None."""
    return gateway.scalar(
        "SELECT max(d.cutoff) FROM transparency_directoryroot d WHERE d.cutoff >= %s AND ("
        "SELECT count(DISTINCT p.peer_key) FROM transparency_peerroot p WHERE p.cutoff = d.cutoff AND p.root = d.root"
        ") = 2",
        after,
    )


def publish(publisher: Gateway) -> None:
    publisher.manage("entrypoints_publish", "--once", "--wait", str(SETTLED), timeout=SETTLED + 30)


def chain_root(gateway: Gateway) -> SignedRoot | None:
    """The root of the newest bulletin the gateway read or confirmed on chain."""
    rows = gateway.sql(
        "SELECT bulletin FROM entrypoints_publication WHERE status = 'confirmed' ORDER BY seq DESC LIMIT 1"
    )
    raw = rows[0][0] if rows else {}
    return SignedRoot.from_dict(raw["root"]) if raw.get("root") else None


def reads_the_chain(cluster: GatewayCluster, user: int) -> None:
    """The user's client knows where the entry-point bulletin is (its token and owner, as a user configures it or
    learns it from a gateway it trusts), so a gateway it asks cannot point it elsewhere; the rest it reads through
    its own node."""
    tokenid, owner = cluster.gateways[0].sql("SELECT tokenid, owner_key FROM entrypoints_setup WHERE id = 1")[0]
    home = Home(cluster.users[user].home)
    home.ensure()
    settings = home.settings()
    settings.entry_points = {"tokenid": tokenid, "owner": owner, "seq": 0}
    home.save_settings(settings)


def whois(cluster: GatewayCluster, user: int, gateway: Gateway) -> tuple[int, dict[str, Any], str]:
    """``mns whois victor --json`` as the user runs it, with their node, against ``gateway``."""
    done = cluster.cli(user, gateway, "whois", NAME, "--json")
    return done.returncode, json.loads(done.stdout), done.stderr


def forge(gateway: Gateway, name: str) -> str:
    """Change the gateway's own record and history of ``name`` to another owner key, with a valid signature by that
    key (what a lying operator could do to its database); returns the new key."""
    other = fresh_owner()
    current = gateway.scalar("SELECT statement FROM registry_namerecord WHERE name = %s", name)
    statement = NameStatement.from_dict({**current, "owner": other.key})
    signature = to_hex(maxsign(other.private_key, statement.canonical()))
    forged = json.dumps(statement.to_dict())
    gateway.sql(
        "WITH r AS (UPDATE registry_namerecord SET owner_key = %s, statement = %s::jsonb, signature = %s "
        "WHERE name = %s RETURNING id) "
        "UPDATE registry_statementrecord s SET owner_key = %s, statement = %s::jsonb, signature = %s "
        "FROM r WHERE s.record_id = r.id AND s.seq = %s RETURNING s.id",
        other.key,
        forged,
        signature,
        name,
        other.key,
        forged,
        signature,
        statement.seq,
    )
    return other.key


def lookup_root(gateway: Gateway) -> dict[str, Any] | None:
    """The root a lookup of ``NAME`` at the gateway proves against (None while it has none)."""
    return (gateway.api("GET", f"/api/v1/names/{NAME}")[1] or {}).get("transparency", {}).get("root")


def transparency_health(gateway: Gateway) -> dict[str, Any]:
    body = gateway.health()
    return {"check": body.get("checks", {}).get("transparency", {}), **(body.get("transparency") or {})}


def flags(gateway: Gateway) -> set[str]:
    return {flag["gateway"] for flag in transparency_health(gateway).get("flagged", [])}


# ------------------------------------------------------------------------------------------------- tests


def test_the_agreed_root_is_on_chain_signed_by_a_majority_and_a_lookup_proves_against_it(
    network: GatewayCluster,
) -> None:
    a, b, c = network.gateways
    signed = chain_root(a)
    assert signed is not None
    assert len(set(signed.verified_signers()) & {a.identity, b.identity, c.identity}) >= 2

    for gateway in (a, b):  # the publisher, and a reader that read the bulletin from the chain
        wait_for(
            lambda g=gateway: lookup_root(g) == signed.root.to_dict(),
            timeout=SETTLED,
            what=f"a lookup at {gateway.name} proving against the root on chain",
        )
        answer = gateway.api("GET", f"/api/v1/names/{NAME}")[1]["transparency"]
        statement = NameStatement.from_dict(answer["statement"]["statement"])
        check_in_directory(root=signed.root, name=NAME, statement=statement, proof=answer["proof"])
        assert statement.owner == network.users[0].key


def test_mns_whois_through_the_users_own_node_finds_the_name_in_the_published_directory_at_an_honest_gateway(
    network: GatewayCluster,
) -> None:
    a, b, c = network.gateways
    signed = chain_root(a)
    assert signed is not None
    reads_the_chain(network, 1)

    for gateway in (a, b):
        wait_for(lambda g=gateway: lookup_root(g) == signed.root.to_dict(), timeout=SETTLED, what="a proven lookup")
        code, body, err = whois(network, 1, gateway)

        assert code == 0, err
        assert body["owner"] == network.users[0].key
        directory = body["directory"]
        assert (directory["status"], directory["failed"]) == ("in_directory", False), directory
        assert directory["detail"].startswith("in the published directory (root of ")
        assert directory["root"] == signed.root.to_dict()
        assert len(set(directory["signers"]) & {a.identity, b.identity, c.identity}) >= 2  # a majority of three


def test_a_gateway_that_serves_another_owner_key_than_the_root_on_chain_is_caught_by_whois_and_flagged_by_peers(
    network: GatewayCluster,
) -> None:
    a, b, c = network.gateways
    forged_key = forge(c, NAME)
    assert c.scalar("SELECT owner_key FROM registry_namerecord WHERE name = %s", NAME) == forged_key

    signed = chain_root(a)
    forged = c.api("GET", f"/api/v1/names/{NAME}")[1]
    assert forged["owner"] == forged_key
    with pytest.raises(ProofInvalid):  # what a client checking gw-c's answer against the chain finds
        check_in_directory(
            root=signed.root,
            name=NAME,
            statement=NameStatement.from_dict(forged["transparency"]["statement"]["statement"]),
            proof=forged["transparency"]["proof"],
        )

    reads_the_chain(network, 1)
    code, body, err = whois(network, 1, c)  # what a user asking gw-c with the real CLI and their own node sees
    assert code == 6, err
    assert body["exit_code"] == 6
    assert body["error"] in ("root_differs", "proof_invalid")
    assert (body["directory"]["status"], body["directory"]["failed"]) == (body["error"], True)
    assert "owner" not in body  # the record of a gateway proven wrong is not shown
    assert forged_key not in json.dumps(body)

    for honest in (a, b):
        wait_for(lambda g=honest: "gw-c" in flags(g), timeout=SETTLED, what=f"gw-c flagged at {honest.name}")
        seen = transparency_health(honest)
        assert seen["check"]["ok"] is False
        assert "gw-c" in seen["check"]["detail"]
        assert all(flag["evidence_id"] for flag in seen["flagged"] if flag["gateway"] == "gw-c")
    wait_for(lambda: "this gateway" in flags(c), timeout=SETTLED, what="gw-c saying it is in the minority")
    assert "minority" in " ".join(flag["detail"] for flag in transparency_health(c)["flagged"])
