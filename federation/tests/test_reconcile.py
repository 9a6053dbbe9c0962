"""Set reconciliation and snapshots: what a peer holds that this gateway lacks is found, fetched, verified item by
item and applied; the peer's cursor then jumps to the log position the snapshot corresponds to."""

import hashlib
import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from federation.models import Operation, Peer
from federation.selectors import deletion_logged
from federation.services import sets, snapshots
from federation.tests.support import FakePeer, gateway, peer_b  # noqa: F401
from mailboxes.models import Message
from mailboxes.replication import messages_items, messages_serve
from mailboxes.tests.support import Owner
from mns_client.protocol import reconcile
from mns_client.protocol.codecs import to_hex
from mns_client.protocol.crypto import maxsign
from mns_client.protocol.reconcile import Tree, item_hash
from registry.models import NameRecord
from registry.replication import statement_hash
from registry.tests.support import GATEWAY, fresh_owner

pytestmark = pytest.mark.usefixtures("many_names_per_owner")


@pytest.fixture
def many_names_per_owner(settings: Any) -> None:
    settings.MNS_NAMES_PER_OWNER = 1000


class Holder:
    """A peer's side of the API, played in-process: its sets as (key → hash, item), answered as its views would."""

    def __init__(self, key: str, head: int) -> None:
        self.key, self.head = key, head
        self.sets: dict[str, dict[str, tuple[bytes, dict[str, Any]]]] = {}
        self.bytes_used = 0
        self.asked: list[str] = []
        self.chunk = 10**6  # items an answer for a subtree, as MNS_FEDERATION_SNAPSHOT_CHUNK

    def add(self, set_id: str, key: str, hashed: bytes, item: dict[str, Any]) -> None:
        self.sets.setdefault(set_id, {})[key] = (hashed, item)

    def position(self) -> dict[str, Any]:
        return {"origin": self.key, "head": self.head, "cursors": {}}

    def roots(self, set_ids: list[str]) -> dict[str, Any]:
        self.asked.append("roots")
        return {set_id: self.tree(set_id).fingerprint("").wire() for set_id in set_ids}

    def tree(self, set_id: str) -> Tree:
        return Tree((key, hashed) for key, (hashed, _) in self.sets.get(set_id, {}).items())

    def nodes(self, set_id: str, prefixes: list[str]) -> dict[str, Any]:
        self.asked.append(set_id)
        tree = Tree((key, hashed) for key, (hashed, _) in self.sets.get(set_id, {}).items())
        return reconcile.answer(tree, prefixes)

    def items(self, set_id: str, keys: list[str] | None = None, prefix: str | None = None, after: str = "") -> dict:
        self.asked.append(f"items {set_id}")
        held, following = self.sets.get(set_id, {}), None
        if prefix is not None:
            tree = Tree((key, hashed) for key, (hashed, _) in held.items())
            keys, following = tree.keys_under(prefix, after=after, limit=self.chunk)
        return {"items": [held[key][1] for key in keys if key in held], "next": following}


def name_item(signed: Any, name: str) -> tuple[bytes, dict[str, Any]]:
    hashed = item_hash(statement_hash(signed.statement.to_dict()), "")
    return hashed, {"name": name, "statements": [signed.to_dict()], "suspended": False}


def peer_with_names(peer: FakePeer, owner: Owner, count: int, head: int) -> Holder:
    holder = Holder(peer.key, head)
    for index in range(count):
        name = f"snap{index}"
        holder.add("names", name, *name_item(owner.sign("register", name, 1, gateway=peer.key), name))
    return holder


def test_the_names_a_peer_holds_are_fetched_and_its_cursor_jumps_to_the_snapshot_head(peer_b: FakePeer) -> None:  # noqa: F811
    owner = fresh_owner()
    holder = peer_with_names(peer_b, owner, 30, head=4000)
    peer = Peer.objects.get(name="gw-b")

    report = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert report.fetched == 30
    assert report.applied == 30
    assert report.jumped_to == 4000
    assert set(NameRecord.objects.filter(status="active").values_list("name", flat=True)) == {
        f"snap{i}" for i in range(30)
    }
    peer.refresh_from_db()
    assert (peer.cursor, peer.remote_head, peer.reconcile_fetched) == (4000, 4000, 30)
    assert peer.reconcile_note.endswith("cursor to 4000")


def test_a_second_round_finds_nothing_and_costs_one_question_for_every_set(peer_b: FakePeer) -> None:  # noqa: F811
    holder = peer_with_names(peer_b, fresh_owner(), 40, head=10)
    peer = Peer.objects.get(name="gw-b")
    snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)
    holder.asked.clear()

    report = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert (report.fetched, report.differing) == (0, 0)
    assert holder.asked == ["roots"]


def test_a_name_changed_since_is_fetched_alone(peer_b: FakePeer) -> None:  # noqa: F811
    owner = fresh_owner()
    holder = peer_with_names(peer_b, owner, 50, head=10)
    peer = Peer.objects.get(name="gw-b")
    snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)
    register = owner.sign("register", "snap7", 1, gateway=peer_b.key)
    update = owner.sign("update", "snap7", 2, gateway=peer_b.key)
    holder.add(
        "names",
        "snap7",
        item_hash(statement_hash(update.statement.to_dict()), ""),
        {"name": "snap7", "statements": [register.to_dict(), update.to_dict()], "suspended": False},
    )

    report = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert (report.fetched, report.applied) == (1, 1)
    assert NameRecord.objects.get(name="snap7").seq == 2


def test_a_forged_item_changes_nothing_is_counted_and_the_cursor_stays(peer_b: FakePeer) -> None:  # noqa: F811
    owner, forger = fresh_owner(), fresh_owner()
    holder = peer_with_names(peer_b, owner, 3, head=900)
    signed = owner.sign("register", "forged", 1, gateway=peer_b.key)
    item = name_item(signed, "forged")[1]
    item["statements"][0]["signature"] = to_hex(maxsign(forger.private_key, signed.statement.canonical()))
    holder.add("names", "forged", item_hash(b"forged"), item)
    peer = Peer.objects.get(name="gw-b")

    report = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert report.outcomes["invalid:signature_invalid"] == 1
    assert not NameRecord.objects.filter(name="forged").exists()
    peer.refresh_from_db()
    assert (peer.cursor, peer.invalid_ops) == (0, 1)


def test_a_round_out_of_time_moves_no_cursor_and_the_next_carries_on(peer_b: FakePeer) -> None:  # noqa: F811
    holder = peer_with_names(peer_b, fresh_owner(), 20, head=50)
    peer = Peer.objects.get(name="gw-b")

    first = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder, seconds=0)
    peer.refresh_from_db()
    cursor_after_first = peer.cursor
    second = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert first.unfinished
    assert cursor_after_first == 0
    assert first.fetched + second.fetched == 20
    assert second.jumped_to == 50


def test_rounds_cut_short_by_their_budget_carry_on_where_they_stopped_without_walking_again(
    peer_b: FakePeer,  # noqa: F811
    monkeypatch: Any,
) -> None:
    holder = peer_with_names(peer_b, fresh_owner(), 60, head=50)
    holder.chunk = 4
    monkeypatch.setattr(snapshots, "APPLY_CHUNK", 2)
    peer = Peer.objects.get(name="gw-b")

    reports = [snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder, seconds=0)]
    holder.head = 70  # the holder moves on meanwhile: the rounds still finish what the first one found
    while reports[-1].unfinished:
        reports.append(snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder, seconds=0))
    peer.refresh_from_db()

    assert len(reports) > 10  # each round did a little: a walk's request, or a chunk fetched and applied
    assert holder.asked.count("roots") == 1  # asked once and kept with the rest, for the rounds that carry on
    assert holder.asked.count("names") == 1  # the walk of the names was not done again
    assert sum(report.fetched for report in reports) == 60  # nothing fetched twice
    assert NameRecord.objects.filter(name__startswith="snap").count() == 60
    assert reports[-1].jumped_to == 50  # the position the walk started from
    assert peer.cursor == 50


def test_a_finished_round_keeps_nothing_and_the_next_walks_anew(peer_b: FakePeer) -> None:  # noqa: F811
    owner = fresh_owner()
    holder = peer_with_names(peer_b, owner, 20, head=50)
    peer = Peer.objects.get(name="gw-b")
    snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)
    holder.add("names", "late", *name_item(owner.sign("register", "late", 1, gateway=peer_b.key), "late"))
    holder.head = 51

    again = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert (again.fetched, again.jumped_to) == (1, 51)
    assert NameRecord.objects.filter(name="late").exists()


def test_messages_of_a_mailbox_both_keep_are_fetched_but_not_a_deleted_one(peer_b: FakePeer) -> None:  # noqa: F811
    owner = Owner.fresh()
    assert peer_b.says(peer_b.batch(peer_b.register_op(owner, "shared"))) == "done"
    assert peer_b.says(peer_b.batch(peer_b.mailbox_op(owner, "shared", [peer_b.key, GATEWAY]))) == "done"
    assert peer_b.says(peer_b.batch(peer_b.op("delete", {"name": "shared", "uid": "m-gone"}))) == "done"
    holder = Holder(peer_b.key, head=3)
    for uid in ("m-1", "m-2", "m-3", "m-gone"):
        payload = peer_b.message_op("shared", uid, ciphertext=uid.encode() * 20)["payload"]
        ciphertext_hash = hashlib.sha256(uid.encode() * 20).digest()
        hashed = item_hash(uid, payload["delivery_id"], payload["scheme"], ciphertext_hash)
        holder.add("messages:shared", uid, hashed, {**payload, "owner": owner.key})
    peer = Peer.objects.get(name="gw-b")

    report = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert set(Message.objects.values_list("uid", flat=True)) == {"m-1", "m-2", "m-3"}
    assert report.outcomes == {"applied": 3, "deleted": 1}
    kept = dict(messages_items("shared", GATEWAY))
    assert kept.keys() == {"m-1", "m-2", "m-3", "m-gone"}  # the deletion is an item too: a tombstone
    assert kept["m-gone"] == item_hash("m-gone", "deleted")
    assert sets.set_ids_shared_with(peer_b.key) == ["names", "mailboxes", "messages:shared"]


def test_a_replicas_tombstone_deletes_a_message_still_held_here_and_is_kept_and_handed_on(peer_b: FakePeer) -> None:  # noqa: F811
    # This gateway was away when gw-b's delete of m-2 went by, and a snapshot moved its cursor past it: m-2 is
    # still here. gw-b's messages set has m-2 as a tombstone, so the next round deletes it here too.
    owner = Owner.fresh()
    assert peer_b.says(peer_b.batch(peer_b.register_op(owner, "shared"))) == "done"
    assert peer_b.says(peer_b.batch(peer_b.mailbox_op(owner, "shared", [peer_b.key, GATEWAY]))) == "done"
    ops = [peer_b.message_op("shared", uid, ciphertext=uid.encode() * 20) for uid in ("m-1", "m-2")]
    assert peer_b.says(peer_b.batch(*ops)) == "done"
    assert set(Message.objects.values_list("uid", flat=True)) == {"m-1", "m-2"}
    here = dict(messages_items("shared", GATEWAY))
    holder = Holder(peer_b.key, head=4)
    holder.add("messages:shared", "m-1", here["m-1"], {})  # the same letter on both sides: never fetched
    deleted_at = int(time.time() * 1000) - 3_600_000  # an hour ago, at gw-b
    tombstone = {"name": "shared", "uid": "m-2", "deleted": True, "deleted_at": deleted_at}
    holder.add("messages:shared", "m-2", item_hash("m-2", "deleted"), tombstone)
    peer = Peer.objects.get(name="gw-b")

    report = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert report.outcomes == {"applied": 1}
    assert set(Message.objects.values_list("uid", flat=True)) == {"m-1"}
    assert deletion_logged(uid="m-2")  # kept: a third replica that still holds m-2 cannot bring it back
    own = Operation.objects.get(kind="delete", origin=GATEWAY)
    assert int(own.created_at.timestamp() * 1000) == deleted_at  # it expires when gw-b's does, not later
    assert messages_serve("shared", ["m-1", "m-2"])[1:] == [tombstone]
    again = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)
    assert (again.differing, again.fetched) == (0, 0)  # both sides now list the same tombstone
    # A letter of another replica's log that arrives after its deletion is not stored again.
    assert peer_b.says(peer_b.batch(peer_b.message_op("shared", "m-2", ciphertext=b"m-2" * 20))) == "done"
    assert set(Message.objects.values_list("uid", flat=True)) == {"m-1"}


def test_a_tombstone_past_the_horizon_is_neither_listed_nor_taken(peer_b: FakePeer, settings: Any) -> None:  # noqa: F811
    owner = Owner.fresh()
    assert peer_b.says(peer_b.batch(peer_b.register_op(owner, "shared"))) == "done"
    assert peer_b.says(peer_b.batch(peer_b.mailbox_op(owner, "shared", [peer_b.key, GATEWAY]))) == "done"
    assert peer_b.says(peer_b.batch(peer_b.op("delete", {"name": "shared", "uid": "m-old"}))) == "done"
    Operation.objects.filter(kind="delete").update(
        created_at=timezone.now() - timedelta(days=settings.MNS_RETENTION_DAYS + 2)
    )
    assert dict(messages_items("shared", GATEWAY)) == {}  # every letter it could delete has expired everywhere
    old = int((timezone.now() - timedelta(days=settings.MNS_RETENTION_DAYS + 2)).timestamp() * 1000)
    holder = Holder(peer_b.key, head=3)
    item = {"name": "shared", "uid": "m-older", "deleted": True, "deleted_at": old}
    holder.add("messages:shared", "m-older", item_hash("m-older", "deleted"), item)

    report = snapshots.reconcile_with_peer(peer_id=Peer.objects.get(name="gw-b").id, transport=holder)

    assert report.outcomes == {"tombstone_expired": 1}
    assert not deletion_logged(uid="m-older")


@override_settings(MNS_FEDERATION_SNAPSHOT_LAG=5)
def test_a_batch_far_ahead_of_the_cursor_is_left_for_a_snapshot(peer_b: FakePeer, monkeypatch: Any) -> None:  # noqa: F811
    enqueued = []
    monkeypatch.setattr("federation.services.replication.enqueue_coalesced", lambda task, *a, **k: enqueued.append(a))
    owner = Owner.fresh()

    assert peer_b.says(peer_b.batch(peer_b.register_op(owner, "early"), head=100)) == "done"

    peer = Peer.objects.get(name="gw-b")
    assert (peer.cursor, peer.remote_head) == (0, 100)
    assert not NameRecord.objects.filter(name="early").exists()
    assert enqueued == [(peer.id,)]


# --- The serving side, over the API --------------------------------------------------------------------------
def post(client: Client, path: str, body: dict[str, Any], **headers: str) -> Any:
    return client.post(f"/api/v1/federation/{path}", body, content_type="application/json", headers=headers)


def test_the_names_set_is_answered_to_anyone_level_by_level(gateway: object) -> None:  # noqa: F811
    owner = fresh_owner()
    for index in range(40):
        holder_item = owner.sign("register", f"pub{index}", 1)
        from registry import services as registry_services

        registry_services.name_hold(signed=holder_item, gateway_key=GATEWAY, source="api")
        registry_services.name_activate(name=f"pub{index}")
    sets.trees_forget()
    client = Client()

    root = post(client, "reconcile", {"set": "names", "prefixes": [""]})
    leaf_prefix = next(
        digit for digit, child in zip(reconcile.HEX, root.json()["nodes"][""]["children"], strict=True) if child[0]
    )
    leaf = post(client, "reconcile", {"set": "names", "prefixes": [leaf_prefix]}).json()["nodes"][leaf_prefix]
    chunk = post(client, "snapshot", {"set": "names", "keys": [leaf["items"][0][0]]}).json()

    roots = post(client, "roots", {"sets": ["names", "mailboxes"]}).json()["roots"]
    assert root.status_code == 200
    assert root.json()["nodes"][""]["n"] == 40
    assert roots["names"][0] == 40
    assert roots["mailboxes"] == [0, "0" * 16]
    assert chunk["items"][0]["statements"][0]["statement"]["name"] == leaf["items"][0][0]
    assert client.get("/api/v1/federation/position").json()["origin"] == GATEWAY


def test_a_mailbox_s_messages_are_refused_without_a_peer_s_token_and_given_with_one(peer_b: FakePeer) -> None:  # noqa: F811
    keys = fresh_owner()
    Peer.objects.filter(name="gw-b").update(identity_key=keys.key)
    owner = Owner.fresh()
    peer_b.key = keys.key
    assert peer_b.says(peer_b.batch(peer_b.register_op(owner, "priv"))) == "done"
    assert peer_b.says(peer_b.batch(peer_b.mailbox_op(owner, "priv", [peer_b.key, GATEWAY]))) == "done"
    assert peer_b.says(peer_b.batch(peer_b.message_op("priv", "m-9"))) == "done"
    body = reconcile.peer_token_body(issuer=keys.key, audience=GATEWAY, expires_ms=int(time.time() * 1000) + 60_000)
    token = reconcile.peer_token(body, maxsign(keys.private_key, body))
    forged = reconcile.peer_token(body, maxsign(fresh_owner().private_key, body))
    client = Client()
    request = {"set": "messages:priv", "keys": ["m-9"]}

    anonymous = post(client, "snapshot", request)
    forged_answer = post(client, "snapshot", request, Authorization=forged)
    answered = post(client, "snapshot", request, Authorization=token)

    assert (anonymous.status_code, anonymous.json()["error"]) == (403, "set_forbidden")
    assert (forged_answer.status_code, forged_answer.json()["error"]) == (403, "peer_token_invalid")
    assert answered.status_code == 200
    assert answered.json()["items"][0]["uid"] == "m-9"
    assert answered.json()["items"][0]["ciphertext"] == to_hex(b"\x07" * 50)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"set": "nothing", "prefixes": [""]}, "set_unknown"),
        ({"set": "names", "prefixes": ["XY"]}, "reconcile_invalid"),
        ({"set": "names", "prefixes": [""] * 300}, "invalid"),
    ],
)
def test_bad_reconcile_requests_are_refused_with_a_clear_error(gateway: object, body: dict, code: str) -> None:  # noqa: F811
    answer = post(Client(), "reconcile", body)

    assert answer.status_code in (400, 404)
    assert answer.json()["error"] == code


def test_new_names_applied_together_keep_the_name_space_rules(peer_b: FakePeer, settings: Any) -> None:  # noqa: F811
    settings.MNS_NAMES_PER_OWNER = 2
    owner, other = fresh_owner(), fresh_owner()
    holder = Holder(peer_b.key, head=5)
    for name in ("limit1", "limit2", "limit3"):
        holder.add("names", name, *name_item(owner.sign("register", name, 1, gateway=peer_b.key), name))
    forged = name_item(owner.sign("register", "forged2", 1, gateway=peer_b.key), "forged2")[1]
    forged["statements"][0]["signature"] = to_hex(maxsign(other.private_key, b"something else"))
    holder.add("names", "forged2", item_hash(b"x"), forged)
    unknown = name_item(other.sign("register", "elsewhere", 1, gateway=fresh_owner().key), "elsewhere")
    holder.add("names", "elsewhere", *unknown)
    peer = Peer.objects.get(name="gw-b")

    report = snapshots.reconcile_with_peer(peer_id=peer.id, transport=holder)

    assert report.outcomes == {
        "applied": 2,
        "owner_limit_reached": 1,
        "invalid:signature_invalid": 1,
        "invalid:statement_gateway_unknow": 1,
    }
    assert NameRecord.objects.filter(owner_key=owner.key).count() == 2
    assert not NameRecord.objects.filter(name__in=["forged2", "elsewhere"]).exists()


def test_an_answer_cut_to_its_byte_budget_reads_few_more_items_than_it_sends() -> None:
    read: list[int] = []

    def serve(argument: str, keys: list[str]) -> list[dict[str, Any]]:
        read.append(len(keys))
        return [{"uid": key, "ciphertext": "ab" * 500} for key in keys]  # ~1 KB each as JSON

    kind = sets.SetKind(items=lambda a, h: [], serve=serve, apply=lambda h, i: "applied")
    keys = [f"m{n:03}" for n in range(500)]

    items, served = snapshots._items_fitting(kind, "box", keys, max_bytes=10_500)

    assert served == len(items) == 10
    assert [item["uid"] for item in items] == keys[:10]
    assert sum(read) <= 3 * served  # not the 500 of the chunk
    one, served_one = snapshots._items_fitting(kind, "box", keys, max_bytes=10)  # even one is too big: one goes
    assert (len(one), served_one) == (1, 1)
