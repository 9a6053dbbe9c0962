"""``mns whois`` checks the gateway's proof against the directory root on chain, read through the user's own
(simnet) node: the bulletin coin carries a root signed with real maxsign keys, a stand-in gateway serves the
lookup. An honest answer is "in the published directory"; forged ones exit 6 with their reason; what cannot be
checked (no node, no root yet, registered after the cut-off) says why and exits 0."""

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mns_client.cli import main
from mns_client.protocol import transparency as t
from mns_client.protocol.codecs import public_key_hex, to_hex
from mns_client.protocol.crypto import generate_maxima_keypair, maxsign
from mns_client.protocol.entrypoints import BULLETIN_SCRIPT, Bulletin, ChainConfig, read_from_node
from mns_client.protocol.rpc import MinimaRPC
from mns_client.protocol.statements import NameStatement, SignedStatement
from mns_client.tests.test_sdk import FakeGateway
from simnet import SimNetwork
from testsupport import maxima_fixture
from testsupport.processes import free_port, wait_for

T0 = 1795660441638
CUTOFF = T0 + 3_600_000
BOX = to_hex(bytes(range(32)))
GATEWAY_KEY = maxima_fixture("01-")["parsed"]["response"]["publickey"]


@dataclass
class Keys:
    public: str
    private: bytes

    @classmethod
    def new(cls) -> "Keys":
        private, public = generate_maxima_keypair()
        return cls(public_key_hex(public), private)

    def sign(self, data: bytes) -> bytes:
        return maxsign(self.private, data)


OWNER, NEW_OWNER, FORGER = Keys.new(), Keys.new(), Keys.new()
SIGNERS = (Keys.new(), Keys.new())


def signed(name: str, seq: int, issued_at: int, *, by: Keys = OWNER, **fields: Any) -> SignedStatement:
    fields.setdefault("op", "register" if seq == 1 else "update")
    statement = NameStatement(
        name=name, owner=by.public, box_key=BOX, seq=seq, issued_at=issued_at, gateway=GATEWAY_KEY, **fields
    )
    return SignedStatement(statement=statement, signature=by.sign(statement.canonical()))


ALICE = signed("alice", 1, T0)
HELD = {"alice": ALICE, **{f"name{i}": signed(f"name{i}", 1, T0 + i) for i in range(20)}}
DIRECTORY = t.Directory((name, t.statement_hash(s.statement)) for name, s in HELD.items())
ROOT = t.Root(cutoff=CUTOFF, size=DIRECTORY.size, root=DIRECTORY.root)
SIGNED_ROOT = t.SignedRoot(
    root=ROOT, signers=tuple(t.Signer(key=k.public, signature=k.sign(ROOT.canonical())) for k in SIGNERS)
)


@dataclass
class Chain:
    net: SimNetwork
    reader: str  # the user's node's RPC URL
    with_root: ChainConfig
    without_root: ChainConfig


def _publish(net: SimNetwork, bulletin: Bulletin, token: str) -> ChainConfig:
    """A token of supply 1 and one bulletin coin of it at the bulletin script, as the publishing gateway makes."""
    publisher = MinimaRPC(net.nodes[0].rpc_url)
    publisher.tokencreate(name=token, amount=1, decimals=0)
    net.wait_blocks(4)  # mined, then 3 deep: spendable
    tokenid = next(tok["tokenid"] for tok in publisher.tokens() if tok.get("name") == {"name": token})
    script = publisher.newscript(script=BULLETIN_SCRIPT)["address"]
    owner = publisher.command("getaddress")["publickey"]
    publisher.send_with_state(address=script, amount=1, tokenid=tokenid, state=bulletin.state(owner))
    return ChainConfig(tokenid=tokenid, owner=owner)


@pytest.fixture(scope="module")
def chain() -> Iterator[Chain]:
    with SimNetwork(nodes=2, block_interval=0.25) as net:
        net.wait_blocks(3)
        with_root = _publish(net, Bulletin(seq=4, issued_at=CUTOFF + 60_000, entries=(), root=SIGNED_ROOT), "mns-a")
        without_root = _publish(net, Bulletin(seq=1, issued_at=CUTOFF, entries=()), "mns-b")
        reader = MinimaRPC(net.nodes[1].rpc_url)
        for config in (with_root, without_root):
            wait_for(lambda c=config: read_from_node(reader, c) is not None, timeout=20, what="the bulletin on chain")
        yield Chain(net, net.nodes[1].rpc_url, with_root, without_root)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MNS_HOME", "MNS_NODE", "MNS_NODE_PASSWORD", "MNS_GATEWAY", "MNS_NAME", "MNS_LISTEN"):
        monkeypatch.delenv(name, raising=False)


def serve(
    gateway: FakeGateway,
    config: ChainConfig,
    current: SignedStatement,
    transparency: Any,
    history: list[SignedStatement] | None = None,
) -> None:
    statement = current.statement
    gateway.routes["/.well-known/mns.json"] = (200, {"entry_points": config.to_dict()})
    gateway.routes[f"/api/v1/names/{statement.name}"] = (
        200,
        {
            "name": statement.name,
            "status": "active",
            "owner": statement.owner,
            "box_key": statement.box_key,
            "payment_address": None,
            "gateways": [GATEWAY_KEY],
            "seq": statement.seq,
            **current.to_dict(),
            "transparency": transparency,
        },
    )
    results = [{"seq": s.statement.seq, **s.to_dict()} for s in history or []]
    gateway.routes[f"/api/v1/names/{statement.name}/history"] = (200, {"results": results, "next": None})


def proven(name: str, held: SignedStatement, *, current: bool = True, proof: Any = None, root: Any = None) -> dict:
    return {
        "root": (root or ROOT).to_dict(),
        "statement": held.to_dict(),
        "proof": proof or DIRECTORY.proof(name).to_dict(),
        "current": current,
    }


def mns(tmp_path: Path, node: str, gateway: FakeGateway, *argv: str) -> tuple[int, Any, str]:
    out, err = io.StringIO(), io.StringIO()
    common = ["--home", str(tmp_path / "home"), "--node", node, "--gateway", gateway.url, "--json"]
    code = main([*argv, *common], stdout=out, stderr=err)
    return code, json.loads(out.getvalue()), err.getvalue()


def whois(tmp_path: Path, node: str, gateway: FakeGateway, name: str = "alice", *, as_json: bool = True):
    out, err = io.StringIO(), io.StringIO()
    argv = ["whois", name, "--home", str(tmp_path / "home"), "--node", node, "--gateway", gateway.url]
    code = main([*argv, "--json"] if as_json else argv, stdout=out, stderr=err)
    return code, (json.loads(out.getvalue()) if as_json else out.getvalue()), err.getvalue()


def test_an_honest_answer_is_in_the_published_directory_signed_by_two_gateways(
    chain: Chain, gateway: FakeGateway, tmp_path: Path
) -> None:
    serve(gateway, chain.with_root, ALICE, proven("alice", ALICE))

    code, out, _ = whois(tmp_path, chain.reader, gateway, as_json=False)

    assert code == 0
    assert "directory  in the published directory (root of 2026-11-26 " in out
    assert "UTC, signed by 2 gateways)" in out


def test_json_gives_the_outcome_with_the_root_its_signers_and_the_bulletin(
    chain: Chain, gateway: FakeGateway, tmp_path: Path
) -> None:
    serve(gateway, chain.with_root, ALICE, proven("alice", ALICE))

    code, body, _ = whois(tmp_path, chain.reader, gateway)

    assert code == 0
    directory = body["directory"]
    assert (directory["status"], directory["failed"], directory["seq"], directory["bulletin"]) == (
        "in_directory",
        False,
        1,
        4,
    )
    assert directory["root"] == ROOT.to_dict()
    assert directory["signers"] == [k.public for k in SIGNERS]


FORGED = signed("alice", 2, T0 + 10, by=FORGER, op="register")
FORGED_DIRECTORY = t.Directory(
    [
        *((n, t.statement_hash(s.statement)) for n, s in HELD.items() if n != "alice"),
        ("alice", t.statement_hash(FORGED.statement)),
    ]
)
OTHER_DIRECTORY = t.Directory([*((n, t.statement_hash(s.statement)) for n, s in HELD.items()), ("zed", b"\1" * 32)])
_PROOF = DIRECTORY.proof("alice").to_dict()
_FLIPPED = {
    **_PROOF,
    "top": [*_PROOF["top"][:-1], "0x" + ("%02X" % (int(_PROOF["top"][-1][2:4], 16) ^ 1)) + _PROOF["top"][-1][4:]],
}

_ALICE_BUCKET = t.bucket_of("alice")


def absent(name: str, entries: Any = None, top: Any = None) -> dict[str, Any]:
    """A ``not_in_directory`` answer with ``name``'s bucket (its real one unless ``entries`` or ``top`` are given)."""
    bucket = t.bucket_of(name)
    found = DIRECTORY.buckets[bucket] if entries is None else entries
    path = t.top_path(bucket, DIRECTORY.levels) if top is None else top
    absence = t.Absence(entries=tuple(sorted(found, key=lambda e: e[0].encode())), top=tuple(path))
    return {"status": "not_in_directory", "root": ROOT.to_dict(), "bucket": absence.to_dict()}


_HIDDEN = [entry for entry in DIRECTORY.buckets[_ALICE_BUCKET] if entry[0] != "alice"]


@pytest.mark.parametrize(
    ("current", "transparency", "status", "reason"),
    [
        pytest.param(
            FORGED,
            proven(
                "alice",
                FORGED,
                root=t.Root(cutoff=CUTOFF, size=FORGED_DIRECTORY.size, root=FORGED_DIRECTORY.root),
                proof=FORGED_DIRECTORY.proof("alice").to_dict(),
            ),
            "root_differs",
            None,
            id="another owner key, validly signed by it, proven in the gateway's own directory",
        ),
        pytest.param(
            FORGED,
            proven("alice", FORGED),
            "proof_invalid",
            "root_mismatch",
            id="another owner key, validly signed by it, with the real proof",
        ),
        pytest.param(
            ALICE,
            proven("alice", ALICE, proof=OTHER_DIRECTORY.proof("alice").to_dict()),
            "proof_invalid",
            "root_mismatch",
            id="a proof for another root",
        ),
        pytest.param(
            ALICE, proven("alice", ALICE, proof=_FLIPPED), "proof_invalid", "root_mismatch", id="a tampered path"
        ),
        pytest.param(
            signed("alice", 3, CUTOFF + 5, by=FORGER),
            proven("alice", ALICE, current=False),
            "not_current",
            "statement_wrong_owner",
            id="changed since, to another key, with no chain of statements leading there",
        ),
        pytest.param(
            signed("alice", 1, CUTOFF + 1, by=FORGER),
            absent("alice", entries=_HIDDEN),
            "proof_invalid",
            "root_mismatch",
            id="a name in the directory hidden: another key's later registration, its bucket without the name",
        ),
        pytest.param(
            signed("alice", 1, CUTOFF + 1, by=FORGER),
            absent("alice"),
            "proof_invalid",
            "name_in_bucket",
            id="a name in the directory hidden: another key's later registration, its bucket showing the name",
        ),
    ],
)
def test_a_forged_answer_is_refused_with_its_reason_and_exit_6(
    chain: Chain,
    gateway: FakeGateway,
    tmp_path: Path,
    current: SignedStatement,
    transparency: dict,
    status: str,
    reason: str | None,
) -> None:
    serve(gateway, chain.with_root, current, transparency)

    code, body, _ = whois(tmp_path, chain.reader, gateway)

    assert code == 6
    assert (body["error"], body["exit_code"]) == (status, 6)
    assert (body["directory"]["status"], body["directory"].get("reason"), body["directory"]["failed"]) == (
        status,
        reason,
        True,
    )
    assert "owner" not in body  # the record of a gateway proven wrong is not shown


def test_a_lying_gateway_is_named_as_such_in_words(chain: Chain, gateway: FakeGateway, tmp_path: Path) -> None:
    serve(
        gateway,
        chain.with_root,
        FORGED,
        proven(
            "alice",
            FORGED,
            root=t.Root(cutoff=CUTOFF, size=FORGED_DIRECTORY.size, root=FORGED_DIRECTORY.root),
            proof=FORGED_DIRECTORY.proof("alice").to_dict(),
        ),
    )

    code, out, err = whois(tmp_path, chain.reader, gateway, as_json=False)

    assert code == 6
    assert out == ""
    assert err == "mns: the gateway's root differs from the one on chain: this gateway may be lying\n"


def test_a_name_that_changed_hands_since_the_cutoff_is_proven_through_its_history(
    chain: Chain, gateway: FakeGateway, tmp_path: Path
) -> None:
    offer = signed("alice", 2, CUTOFF + 1000, op="transfer", to=NEW_OWNER.public, expires_at=CUTOFF + 86_400_000)
    accepted = signed("alice", 3, CUTOFF + 2000, by=NEW_OWNER, op="accept", accepts=2)
    serve(gateway, chain.with_root, accepted, proven("alice", ALICE, current=False), [ALICE, offer, accepted])

    code, body, _ = whois(tmp_path, chain.reader, gateway)

    assert code == 0
    assert (body["directory"]["status"], body["directory"]["seq"], body["owner"]) == (
        "changed_since",
        1,
        NEW_OWNER.public,
    )


def test_a_name_registered_after_the_cutoff_is_not_in_the_directory_yet(
    chain: Chain, gateway: FakeGateway, tmp_path: Path
) -> None:
    newcomer = signed("newcomer", 1, CUTOFF + 1)
    serve(gateway, chain.with_root, newcomer, {"status": "not_in_directory", "root": ROOT.to_dict()})

    code, body, _ = whois(tmp_path, chain.reader, gateway, "newcomer")

    assert code == 0
    assert (body["directory"]["status"], body["directory"]["failed"]) == ("not_yet", False)
    assert (
        body["directory"]["detail"]
        == "not in the published directory yet: registered after its cut-off, so nothing proves this answer yet"
    )


def test_a_name_registered_after_the_cutoff_is_proven_absent_by_its_bucket(
    chain: Chain, gateway: FakeGateway, tmp_path: Path
) -> None:
    newcomer = signed("newcomer", 1, CUTOFF + 1)
    serve(gateway, chain.with_root, newcomer, absent("newcomer"))

    code, body, _ = whois(tmp_path, chain.reader, gateway, "newcomer")

    assert code == 0
    assert (body["directory"]["status"], body["directory"]["failed"]) == ("not_yet", False)
    assert body["directory"]["detail"] == (
        "not in the published directory yet: registered after its cut-off (its bucket shows it absent then)"
    )
    assert body["owner"] == OWNER.public


def test_a_gateway_hiding_a_name_of_the_directory_is_refused_in_words_with_exit_6(
    chain: Chain, gateway: FakeGateway, tmp_path: Path
) -> None:
    serve(gateway, chain.with_root, signed("alice", 1, CUTOFF + 1, by=FORGER), absent("alice", entries=_HIDDEN))

    code, out, err = whois(tmp_path, chain.reader, gateway, as_json=False)

    assert (code, out) == (6, "")
    assert err.startswith("mns: the gateway's proof that the name is not in the directory does not hold: ")


def test_without_a_root_on_chain_nothing_is_checked_and_whois_says_so(
    chain: Chain, gateway: FakeGateway, tmp_path: Path
) -> None:
    serve(gateway, chain.without_root, ALICE, {"status": "no_root"})

    code, out, _ = whois(tmp_path, chain.reader, gateway, as_json=False)

    assert code == 0
    assert "directory  not checked: there is no directory root on chain yet" in out


def test_without_a_node_to_read_the_chain_nothing_is_checked_and_whois_says_so(
    gateway: FakeGateway, tmp_path: Path
) -> None:
    serve(gateway, ChainConfig(tokenid="0x01", owner="0x02"), ALICE, proven("alice", ALICE))

    code, body, _ = whois(tmp_path, f"http://127.0.0.1:{free_port()}", gateway)

    assert code == 0
    assert body["directory"]["status"] == "no_node"
    assert body["directory"]["detail"].startswith("not checked: the chain could not be read through your node")


def test_send_refuses_to_encrypt_to_a_key_a_lying_gateway_serves(
    chain: Chain, gateway: FakeGateway, tmp_path: Path
) -> None:
    serve(gateway, chain.with_root, FORGED, proven("alice", FORGED))
    (tmp_path / "letter.txt").write_text("for alice only")

    code, body, _ = mns(tmp_path, chain.reader, gateway, "send", "alice", str(tmp_path / "letter.txt"))

    assert (code, body["error"], body["directory"]["reason"]) == (6, "proof_invalid", "root_mismatch")
    assert "delivery_id" not in body  # refused before anything was encrypted or sent
