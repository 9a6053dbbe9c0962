"""Reconciliation and snapshots over Maxima, with a peer that has no HTTPS API: each question goes out once as an
``ask``, the holder answers with a ``told`` within ``MNS_FEDERATION_BATCH_BYTES``, and the asker's round stops at
a question not answered yet and carries on when the answer arrives. Both sides through the real ``mns-sync``
routing (``FakePeer.says``) and the outbox."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from federation import tasks
from federation.models import Peer
from federation.services import questions, snapshots
from federation.tests.support import FakePeer, gateway, peer_b, sent_sync, state  # noqa: F401
from federation.tests.test_reconcile import Holder, peer_with_names
from mailboxes.tests.support import Owner
from maxima.models import OutboundMessage
from mns_client.protocol import reconcile, sync
from registry import services as registry_services
from registry.models import NameRecord
from registry.replication import statement_hash
from registry.tests.support import GATEWAY, fresh_owner

pytestmark = pytest.mark.usefixtures("many_names_per_owner")


@pytest.fixture
def many_names_per_owner(settings: Any) -> None:
    settings.MNS_NAMES_PER_OWNER = 1000


@pytest.fixture
def peer(peer_b: FakePeer) -> Peer:  # noqa: F811
    """gw-b, a peer without an API URL: reconciled with over Maxima."""
    Peer.objects.filter(name="gw-b").update(api_url="")
    return Peer.objects.get(name="gw-b")


def asks() -> list[dict[str, Any]]:
    return [body for _, body in sent_sync("ask")]


def told(message_id: str, **fields: Any) -> dict[str, Any]:
    return sync.message("told", ask=message_id, **fields)


def answer_of(holder: Holder, question: dict[str, Any]) -> dict[str, Any]:
    """What a holder's ``ask_received`` would answer (its serving functions, played by ``Holder``)."""
    rest = {key: value for key, value in question.items() if key not in ("q", "set")}
    if question["q"] == "position":
        return holder.position()
    if question["q"] == "roots":
        return {"roots": holder.roots(question["sets"])}
    if question["q"] == "nodes":
        return {"set": question["set"], "nodes": holder.nodes(question["set"], question["prefixes"])}
    return {"set": question["set"], **holder.items(question["set"], **rest)}


def catch_up(peer_b: FakePeer, peer: Peer, holder: Holder) -> list[snapshots.RoundReport]:  # noqa: F811
    """Rounds until one does not wait; after each, every ask not answered yet is told back through the routing."""
    before = len(asks())
    reports, answered = [snapshots.reconcile_with_peer(peer_id=peer.id)], set()
    while reports[-1].waiting:
        for body in asks()[before:]:
            if body["ask"] not in answered:
                assert peer_b.says(told(body["ask"], answer=answer_of(holder, body["question"]))) == "done"
                answered.add(body["ask"])
        reports.append(snapshots.reconcile_with_peer(peer_id=peer.id))
        assert len(reports) < 100
    return reports


# --- The asking side ------------------------------------------------------------------------------------------
def test_a_peer_without_an_api_is_caught_up_over_maxima_one_question_a_round(
    peer_b: FakePeer,  # noqa: F811
    peer: Peer,
) -> None:
    holder = peer_with_names(peer_b, fresh_owner(), 30, head=4000)

    reports = catch_up(peer_b, peer, holder)

    assert [report.waiting for report in reports] == [True] * (len(reports) - 1) + [False]
    assert [body["question"]["q"] for body in asks()][:3] == ["position", "roots", "nodes"]
    assert len({body["ask"] for body in asks()}) == len(asks())  # each question asked once
    assert NameRecord.objects.filter(name__startswith="snap", status="active").count() == 30
    assert reports[-1].jumped_to == 4000
    peer.refresh_from_db()
    assert (peer.cursor, peer.reconcile_fetched_total) == (4000, 30)
    assert all(body["type"] == "ask" for _, body in sent_sync())  # no pull, no replay: questions only


def test_a_round_stops_at_an_unanswered_question_keeps_its_place_and_asks_it_only_once(
    peer_b: FakePeer,  # noqa: F811
    peer: Peer,
) -> None:
    holder = peer_with_names(peer_b, fresh_owner(), 20, head=50)
    first = snapshots.reconcile_with_peer(peer_id=peer.id)
    (position,) = asks()
    assert peer_b.says(told(position["ask"], answer=holder.position())) == "done"

    second = snapshots.reconcile_with_peer(peer_id=peer.id)
    third = snapshots.reconcile_with_peer(peer_id=peer.id)  # woken by the beat: its question is on its way

    assert (first.waiting, second.waiting, third.waiting) == (True, True, True)
    assert [body["question"]["q"] for body in asks()] == ["position", "roots"]
    peer.refresh_from_db()
    assert peer.cursor == 0
    assert peer.reconcile_note.startswith("waiting for the answer to roots")
    assert not peer.reconcile_note.startswith("failed")


def test_the_first_chunks_of_the_next_subtrees_are_asked_ahead_while_the_round_waits(
    peer_b: FakePeer,  # noqa: F811
    peer: Peer,
) -> None:
    holder = peer_with_names(peer_b, fresh_owner(), 60, head=300)
    rounds = [snapshots.reconcile_with_peer(peer_id=peer.id)]
    while [body["question"]["q"] for body in asks()][-1] != "items":  # the walk's questions, one at a time
        last = asks()[-1]
        assert peer_b.says(told(last["ask"], answer=answer_of(holder, last["question"]))) == "done"
        rounds.append(snapshots.reconcile_with_peer(peer_id=peer.id))

    fetches = [body["question"] for body in asks() if body["question"]["q"] == "items"]
    assert len(fetches) == 1 + questions.AHEAD  # the subtree fetched, and the next ones' first chunks
    assert [question["after"] for question in fetches] == [""] * len(fetches)
    assert len({question["prefix"] for question in fetches}) == len(fetches)
    assert rounds[-1].waiting


def test_an_unanswered_question_is_asked_again_after_a_while(
    peer_b: FakePeer,  # noqa: F811
    peer: Peer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    snapshots.reconcile_with_peer(peer_id=peer.id)
    monkeypatch.setattr(questions, "ASK_AGAIN_SECONDS", 0)

    snapshots.reconcile_with_peer(peer_id=peer.id)

    assert [body["ask"] for body in asks()] == [asks()[0]["ask"]] * 2  # the same question, the same id


def test_the_answer_s_arrival_starts_the_next_round_with_that_peer(
    peer_b: FakePeer,  # noqa: F811
    peer: Peer,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    started: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.reconcile_peer, "apply_async", lambda args, **options: started.append(args))
    snapshots.reconcile_with_peer(peer_id=peer.id)
    (position,) = asks()

    with django_capture_on_commit_callbacks(execute=True):
        assert peer_b.says(told(position["ask"], answer={"origin": peer_b.key, "head": 3, "cursors": {}})) == "done"

    assert started == [(peer.id,)]


def test_an_answer_to_no_question_asked_is_ignored(peer_b: FakePeer, peer: Peer) -> None:  # noqa: F811
    assert peer_b.says(told("0" * 32, answer={"origin": peer_b.key, "head": 3})) == "ignored: ignored"


def test_a_refused_question_fails_the_round_and_the_peer_is_left_to_its_log_for_a_while(
    peer_b: FakePeer,  # noqa: F811
    peer: Peer,
) -> None:
    snapshots.reconcile_with_peer(peer_id=peer.id)
    (position,) = asks()
    assert peer_b.says(told(position["ask"], error="set_forbidden", detail="not yours")) == "done"

    report = snapshots.reconcile_with_peer(peer_id=peer.id)

    assert report.note == "failed: position: set_forbidden: not yours"
    peer.refresh_from_db()
    assert not snapshots.snapshot_wanted(peer, head=10**6)  # cools off, as after a failed round over HTTPS


def test_keys_the_holder_could_not_fit_in_one_answer_are_asked_next(
    peer_b: FakePeer,  # noqa: F811
    peer: Peer,
) -> None:
    owner = fresh_owner()
    holder = peer_with_names(peer_b, owner, 40, head=10)
    catch_up(peer_b, peer, holder)  # now both hold the 40 names
    for index in (3, 5, 7):  # three names the holder updated since
        name = f"snap{index}"
        register = owner.sign("register", name, 1, gateway=peer_b.key)
        update = owner.sign("update", name, 2, gateway=peer_b.key)
        hashed = reconcile.item_hash(statement_hash(update.statement.to_dict()), "")
        item = {"name": name, "statements": [register.to_dict(), update.to_dict()], "suspended": False}
        holder.add("names", name, hashed, item)
    served = iter([1, 2])  # the holder's answers cover one key, then the other two

    def items(set_id: str, keys: list[str] | None = None, **rest: Any) -> dict[str, Any]:
        count = next(served)
        return {"items": [holder.sets[set_id][key][1] for key in keys[:count]], "next": None, "served": count}

    holder.items = items  # type: ignore[method-assign]
    asks_before = len(asks())

    reports = catch_up(peer_b, peer, holder)

    item_asks = [body["question"] for body in asks()[asks_before:] if body["question"]["q"] == "items"]
    assert [len(question["keys"]) for question in item_asks] == [3, 2]
    assert sum(report.fetched for report in reports) == 3
    assert set(NameRecord.objects.filter(name__in=["snap3", "snap5", "snap7"]).values_list("seq", flat=True)) == {2}


def test_a_far_behind_peer_without_an_api_wants_a_snapshot_and_the_beat_reconciles_it_when_due(
    peer: Peer,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.MNS_FEDERATION_SNAPSHOT_LAG = 100
    settings.MNS_FEDERATION_RECONCILE_MAXIMA_EVERY = 3600
    started: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.reconcile_peer, "apply_async", lambda args, **options: started.append(args))

    due = tasks.reconcile()
    Peer.objects.filter(id=peer.id).update(reconciled_at=timezone.now() - timedelta(minutes=10))
    not_due = tasks.reconcile()

    assert snapshots.snapshot_wanted(peer, head=101)
    assert not snapshots.snapshot_wanted(peer, head=100)
    assert (due, not_due) == (1, 0)
    assert started == [(peer.id,)]


# --- The serving side -----------------------------------------------------------------------------------------
def names_here(count: int) -> None:
    owner = fresh_owner()
    for index in range(count):
        registry_services.name_hold(signed=owner.sign("register", f"pub{index}", 1), gateway_key=GATEWAY, source="api")
        registry_services.name_activate(name=f"pub{index}")


def ask(peer_b: FakePeer, question: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    """Our answer to the peer's question, as queued in the outbox."""
    message_id = questions.question_id("test", question)
    assert peer_b.says(sync.message("ask", ask=message_id, question=question)) == "done"
    (reply,) = [body for to, body in sent_sync("told") if body["ask"] == message_id and to == peer_b.address]
    return reply


def test_a_peer_s_questions_are_answered_from_the_api_s_serving_functions(peer_b: FakePeer) -> None:  # noqa: F811
    names_here(40)

    position = ask(peer_b, {"q": "position"})["answer"]
    roots = ask(peer_b, {"q": "roots", "sets": ["names", "mailboxes"]})["answer"]["roots"]
    root = ask(peer_b, {"q": "nodes", "set": "names", "prefixes": [""]})["answer"]["nodes"][""]

    assert (position["origin"], position["head"]) == (GATEWAY, 0)
    assert roots["names"][0] == 40
    assert root["n"] == 40
    assert len(root["children"]) == 16


def test_a_subtree_s_items_come_in_answers_within_the_batch_size(peer_b: FakePeer, settings: Any) -> None:  # noqa: F811
    settings.MNS_FEDERATION_BATCH_BYTES = 8192  # the smallest allowed: a few names an answer
    names_here(40)
    got: list[str] = []
    after, answers = "", 0

    while after is not None:
        reply = ask(peer_b, {"q": "items", "set": "names", "prefix": "", "after": after})
        assert len(sync.encode(reply)) <= settings.MNS_FEDERATION_BATCH_BYTES
        got += [item["name"] for item in reply["answer"]["items"]]
        after, answers = reply["answer"]["next"], answers + 1

    assert sorted(got) == sorted(f"pub{index}" for index in range(40))  # each once
    assert answers > 3


def test_keys_asked_are_served_as_many_as_fit_and_the_answer_says_how_many(
    peer_b: FakePeer,  # noqa: F811
    settings: Any,
) -> None:
    settings.MNS_FEDERATION_BATCH_BYTES = 8192
    names_here(30)
    keys = [f"pub{index}" for index in range(30)]

    answer = ask(peer_b, {"q": "items", "set": "names", "keys": keys})["answer"]

    assert 0 < answer["served"] < 30
    assert [item["name"] for item in answer["items"]] == keys[: answer["served"]]


def test_a_nodes_answer_carries_as_many_prefixes_as_fit(peer_b: FakePeer, settings: Any) -> None:  # noqa: F811
    settings.MNS_FEDERATION_BATCH_BYTES = 8192
    names_here(100)
    prefixes = [a + b for a in reconcile.HEX for b in reconcile.HEX]  # 256 leaves, more than 8 KB in all

    reply = ask(peer_b, {"q": "nodes", "set": "names", "prefixes": prefixes})

    nodes = reply["answer"]["nodes"]
    assert 0 < len(nodes) < 256
    assert list(nodes) == prefixes[: len(nodes)]
    assert len(sync.encode(reply)) <= 8192


def test_a_mailbox_s_messages_are_refused_to_a_peer_that_does_not_keep_it_and_nothing_changes(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    owner, other = Owner.fresh(), FakePeer.fresh("gw-c")
    other.add()
    assert other.says(other.batch(other.register_op(owner, "priv"))) == "done"
    assert other.says(other.batch(other.mailbox_op(owner, "priv", [other.key, GATEWAY]))) == "done"
    assert other.says(other.batch(other.message_op("priv", "m-9"))) == "done"
    before = state()

    refused = ask(peer_b, {"q": "items", "set": "messages:priv", "keys": ["m-9"]})
    given = ask(other, {"q": "items", "set": "messages:priv", "keys": ["m-9"]})

    assert (refused["error"], "answer" in refused) == ("set_forbidden", False)
    assert given["answer"]["items"][0]["uid"] == "m-9"
    assert state() == before


@pytest.mark.parametrize(
    ("question", "code"),
    [
        ({"q": "nodes", "set": "nothing", "prefixes": [""]}, "set_unknown"),
        ({"q": "nodes", "set": "names", "prefixes": ["XY"]}, "reconcile_invalid"),
        ({"q": "nodes", "set": "names", "prefixes": [""] * 300}, "reconcile_invalid"),
        ({"q": "items", "set": "names", "prefix": "", "after": "zz"}, "snapshot_invalid"),
        ({"q": "items", "set": "names"}, "snapshot_invalid"),
        ({"q": "items", "set": 7, "keys": []}, "set_unknown"),
        ({"q": "roots", "sets": "names"}, "reconcile_invalid"),
    ],
)
def test_bad_questions_are_refused_in_the_answer_and_change_nothing(
    peer_b: FakePeer,  # noqa: F811
    question: dict[str, Any],
    code: str,
) -> None:
    before = state()

    reply = ask(peer_b, question)

    assert reply["error"] == code
    assert state() == before
    assert Peer.objects.get(name="gw-b").invalid_ops == 0  # a question it may ask, with a bad value: not an attack


def test_a_malformed_ask_is_counted_against_the_peer_and_not_answered(peer_b: FakePeer) -> None:  # noqa: F811
    body = {"v": 1, "type": "ask", "ask": "0" * 32, "question": {"q": "everything"}}

    assert peer_b.says(body) == "done"

    assert sent_sync("told") == []
    assert Peer.objects.get(name="gw-b").invalid_ops == 1


def test_questions_past_the_rate_are_refused_as_throttled(peer_b: FakePeer, settings: Any) -> None:  # noqa: F811
    settings.MNS_FEDERATION_ASKS_PER_MINUTE = 2

    replies = [ask(peer_b, {"q": "roots", "sets": ["names"] * count}) for count in (1, 2, 3)]

    assert ["answer" in reply for reply in replies] == [True, True, False]
    assert replies[2]["error"] == "throttled"


def test_a_question_asked_again_while_its_answer_waits_in_the_outbox_is_not_answered_twice(
    peer_b: FakePeer,  # noqa: F811
) -> None:
    question = {"q": "position"}
    message_id = questions.question_id("test", question)
    for _ in range(2):
        assert peer_b.says(sync.message("ask", ask=message_id, question=question)) == "done"

    assert OutboundMessage.objects.filter(idempotency_key__startswith="fed-told:").count() == 1
