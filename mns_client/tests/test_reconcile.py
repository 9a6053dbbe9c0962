"""The set reconciliation core: two sets find exactly what one lacks, in bytes that follow the difference."""

import dataclasses
import json
import random

import pytest

from mns_client.protocol import reconcile
from mns_client.protocol.reconcile import Tree, answer, find_missing, item_hash


def pairs(count: int, *, tag: str = "v1", start: int = 0) -> dict[str, bytes]:
    return {f"name{i}": item_hash(f"name{i}", tag) for i in range(start, start + count)}


class Wire:
    """The holder's side, as a transport would carry it: JSON both ways, bytes counted."""

    def __init__(self, tree: Tree) -> None:
        self.tree, self.bytes = tree, 0

    def __call__(self, prefixes: list[str]) -> dict:
        request = json.dumps({"prefixes": prefixes})
        response = json.dumps(answer(self.tree, reconcile.check_prefixes(json.loads(request)["prefixes"])))
        self.bytes += len(request) + len(response)
        return json.loads(response)


def expand(difference: reconcile.Difference, holder: Tree) -> set[str]:
    found = set(difference.keys)
    for prefix in difference.prefixes:
        keys, after = holder.keys_under(prefix, limit=10**9)
        assert after is None
        found.update(keys)
    return found


def test_equal_sets_cost_one_question_and_find_nothing() -> None:
    items = pairs(5000)
    wire = Wire(Tree(items.items()))

    difference = find_missing(Tree(items.items()), wire)

    assert difference.empty
    assert difference.rounds == 1
    assert difference.remote_count == 5000
    assert wire.bytes < 1000


def test_the_difference_is_found_exactly_changed_and_missing_items_alike() -> None:
    theirs = pairs(20_000)
    mine = dict(theirs)
    rng = random.Random(7)
    missing = set(rng.sample(sorted(theirs), 30))
    changed = set(rng.sample(sorted(set(theirs) - missing), 30))
    for key in missing:
        del mine[key]
    for key in changed:
        mine[key] = item_hash(key, "v0")
    mine.update(pairs(10, start=50_000))  # only mine: not asked for
    holder = Tree(theirs.items())

    difference = find_missing(Tree(mine.items()), Wire(holder))

    assert expand(difference, holder) == missing | changed


def test_an_empty_set_asks_for_whole_subtrees_instead_of_descending() -> None:
    theirs = pairs(3000)
    holder = Tree(theirs.items())
    wire = Wire(holder)

    difference = find_missing(Tree([]), wire)

    assert difference.keys == []
    assert sorted(difference.prefixes) == list(reconcile.HEX)
    assert expand(difference, holder) == set(theirs)
    assert difference.rounds == 1


def test_a_hundred_differences_in_a_hundred_thousand_cost_far_less_than_the_set() -> None:
    theirs = pairs(100_000)
    mine = dict(theirs)
    for key in random.Random(3).sample(sorted(theirs), 100):
        mine[key] = item_hash(key, "old")
    holder = Tree(theirs.items())
    wire = Wire(holder)
    full_listing = len(json.dumps([[key, reconcile.short(int.from_bytes(h, "big"))] for key, h in theirs.items()]))

    difference = find_missing(Tree(mine.items()), wire)

    assert len(expand(difference, holder)) == 100
    assert wire.bytes < full_listing / 15
    assert difference.rounds <= 6


def test_the_cost_grows_with_the_difference_not_with_the_set() -> None:
    costs = []
    for size in (10_000, 100_000):
        theirs = pairs(size)
        mine = dict(theirs)
        for key in random.Random(5).sample(sorted(theirs), 10):
            del mine[key]
        holder = Tree(theirs.items())
        wire = Wire(holder)
        assert len(expand(find_missing(Tree(mine.items()), wire), holder)) == 10
        costs.append(wire.bytes)

    assert costs[1] < 2 * costs[0]


def test_a_subtree_the_asker_holds_less_than_half_of_is_fetched_whole_not_walked_down() -> None:
    theirs = pairs(50_000)
    holder = Tree(theirs.items())
    mostly = {key: hashed for key, hashed in theirs.items() if reconcile.key_digest(key)[0] != "3"}
    for key in sorted(theirs)[:50_000:3]:  # under "3", a third of the holder's items
        if reconcile.key_digest(key)[0] == "3":
            mostly[key] = theirs[key]
    wire = Wire(holder)

    difference = find_missing(Tree(mostly.items()), wire)

    assert difference.prefixes == ["3"]
    assert difference.keys == []
    assert difference.rounds == 1  # the root's answer alone: "3" was not walked down
    assert expand(difference, holder) >= set(theirs) - set(mostly)


def test_a_subtree_the_asker_holds_more_than_half_of_is_walked_down_to_what_it_lacks() -> None:
    theirs = pairs(20_000)
    holder = Tree(theirs.items())
    lacking = {key for key in theirs if reconcile.key_digest(key)[0] == "3"}
    lacking = set(sorted(lacking)[: len(lacking) // 3])
    mine = {key: hashed for key, hashed in theirs.items() if key not in lacking}

    difference = find_missing(Tree(mine.items()), Wire(holder))

    assert "3" not in difference.prefixes
    fetched = expand(difference, holder)
    assert fetched >= lacking
    assert len(fetched) < 2 * len(lacking)  # a subtree fetched whole holds more lacking items than held ones


def test_a_walk_cut_short_goes_on_from_its_frontier_without_asking_again() -> None:
    theirs = pairs(20_000)
    mine = dict(theirs)
    for key in random.Random(11).sample(sorted(theirs), 200):
        del mine[key]
    holder = Tree(theirs.items())
    whole = Wire(holder)
    uninterrupted = find_missing(Tree(mine.items()), whole, per_request=16)

    wire, difference, walks = Wire(holder), reconcile.Difference(), 0
    asked: list[list[str]] = []

    def ask(prefixes: list[str]) -> dict:
        asked.append(prefixes)
        return wire(prefixes)

    while not difference.walked:
        walks += 1
        stopped = json.loads(json.dumps(dataclasses.asdict(difference)))  # kept between rounds as plain data
        difference = reconcile.walk(
            Tree(mine.items()), ask, reconcile.Difference(**stopped), per_request=16, stop=lambda: True
        )

    assert walks == uninterrupted.rounds > 3  # one request a walk: each went on where the last one stopped
    assert len(asked) == uninterrupted.rounds
    assert len([prefix for chunk in asked for prefix in chunk]) == len({prefix for chunk in asked for prefix in chunk})
    assert wire.bytes == whole.bytes
    assert expand(difference, holder) == expand(uninterrupted, holder) >= set(theirs) - set(mine)


def test_keys_under_a_prefix_come_in_chunks_that_continue_where_they_stopped() -> None:
    holder = Tree(pairs(1000).items())
    seen, after = [], ""
    while True:
        keys, after = holder.keys_under("a", after=after, limit=7)
        seen.extend(keys)
        if after is None:
            break

    assert seen == [key for key in holder.keys if reconcile.key_digest(key).startswith("a")]


@pytest.mark.parametrize("prefixes", [[], ["G"], ["a" * 65], "abc", [1], ["0"] * 257])
def test_bad_prefixes_are_refused(prefixes: object) -> None:
    with pytest.raises(reconcile.ReconcileInvalid):
        reconcile.check_prefixes(prefixes)


def test_a_malformed_answer_is_refused_not_trusted() -> None:
    def lying(prefixes: list[str]) -> dict:
        return {"": {"n": 5, "children": [[1, "00"]] * 3}}

    with pytest.raises(reconcile.ReconcileInvalid):
        find_missing(Tree([]), lying)


def test_an_answer_cut_to_what_fits_is_walked_to_the_same_difference_asking_the_rest_again() -> None:
    theirs = pairs(20_000)
    mine = dict(theirs)
    rng = random.Random(11)
    for key in rng.sample(sorted(theirs), 200):
        mine[key] = item_hash(key, "v0")
    holder = Tree(theirs.items())
    sizes: list[int] = []

    def fitting(prefixes: list[str]) -> dict:
        nodes = reconcile.answer_fitting(holder, reconcile.check_prefixes(prefixes), max_bytes=4000)
        sizes.append(len(json.dumps(nodes, separators=(",", ":"))))
        return nodes

    cut = find_missing(Tree(mine.items()), fitting)
    whole = find_missing(Tree(mine.items()), Wire(holder))

    assert sorted(cut.keys) == sorted(whole.keys)
    assert cut.prefixes == whole.prefixes
    assert cut.rounds > whole.rounds
    assert max(sizes) <= 4000


def test_an_answer_of_none_of_the_prefixes_asked_is_refused() -> None:
    with pytest.raises(reconcile.ReconcileInvalid):
        find_missing(Tree(pairs(10).items()), lambda prefixes: {})
