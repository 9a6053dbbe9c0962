"""The published form of a name (``registry.published``): a lookup served from Redis in the rate limits' round trip,
and never the old record once a change has committed."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from core.errors import DomainError
from registry import published, services
from registry.models import NameRecord
from registry.tests.support import Owner, register

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def redis_cache(settings: Any, redis_url: str) -> Iterator[None]:
    """The cache of a production gateway: core.cache.RedisCache on a real Redis (this test's database)."""
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "mns"}}
    cache.clear()
    yield
    redis.Redis.from_url(redis_url).flushdb()  # no entry outlives this test's database (even if CACHES changed)


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


def lookup(client: Client, name: str = "alice", **headers: str) -> tuple[int, Any]:
    response = client.get(f"/api/v1/names/{name}", headers=headers)
    data = json.loads(response.content) if response.content else None
    return response.status_code, data, response


def entry() -> bytes | None:
    return cache.raw_client().get(cache.make_and_validate_key(published.ENTRY + "alice"))


def test_a_second_lookup_is_answered_from_redis_without_touching_the_database(
    client: Client, alice: Owner, django_assert_num_queries: Any
) -> None:
    register(alice, "alice")
    status, first, response = lookup(client)
    assert status == 200
    assert entry() is not None
    with django_assert_num_queries(0):
        status, second, cached = lookup(client)
    assert (status, second, cached["ETag"]) == (200, first, response["ETag"])
    assert cached.content == response.content


def test_a_current_etag_answers_304_from_the_published_form(
    client: Client, alice: Owner, django_assert_num_queries: Any
) -> None:
    register(alice, "alice")
    etag = lookup(client)[2]["ETag"]
    with django_assert_num_queries(0):
        status, _, response = lookup(client, If_None_Match=etag)
    assert (status, response.content, response["ETag"]) == (304, b"", etag)
    assert lookup(client, If_None_Match='"other"')[0] == 200


def test_the_rate_limits_still_count_a_lookup_served_from_redis(
    client: Client, alice: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "lookup", "3/min")
    register(alice, "alice")
    assert [lookup(client)[0] for _ in range(4)] == [200, 200, 200, 429]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda owner, staff: services.statement_apply(signed=owner.sign("update", "alice", 2), source="api"), 200),
        (lambda owner, staff: services.name_suspend(name="alice", actor=staff, reason="spam"), 403),
        (lambda owner, staff: services.statement_apply(signed=owner.sign("release", "alice", 2), source="api"), 410),
        (lambda owner, staff: services.name_replicas_set(name="alice", gateways=["0xAB"]), 200),
    ],
    ids=["update", "suspension", "release", "replicas"],
)
def test_no_lookup_answers_the_old_record_once_a_change_committed(
    client: Client, alice: Owner, staff: Any, change: Any, expected: int
) -> None:
    register(alice, "alice")
    _, before, response = lookup(client)
    assert entry() is not None
    change(alice, staff)
    status, after, changed = lookup(client, If_None_Match=response["ETag"])
    assert status == expected
    assert after != before
    assert changed.get("ETag") != response["ETag"]
    assert lookup(client)[1] == after  # and what it kept since is the new record too


def test_a_lookup_between_the_commit_and_the_finish_reads_the_new_record_and_keeps_nothing(
    client: Client, alice: Owner, staff: Any
) -> None:
    register(alice, "alice")
    lookup(client)
    seen: list[tuple[int, bytes | None]] = []
    with transaction.atomic():
        # Runs after the COMMIT and before the change's own on_commit finish (callbacks run in order).
        transaction.on_commit(lambda: seen.append((lookup(client)[0], entry())))
        services.name_suspend(name="alice", actor=staff, reason="spam")
        assert entry() is None  # the mark already deleted the old entry before the commit
    assert seen == [(403, None)]
    assert lookup(client)[0] == 403


def test_a_lookup_that_read_the_old_record_before_the_commit_cannot_keep_it_after(
    client: Client, alice: Owner, bob: Owner
) -> None:
    """The race: a lookup fetched the (missing) entry and read the database just before a change committed, and
    stores what it read only after: whenever its store lands, it is refused."""
    register(alice, "alice")
    keys = published.cache_keys("alice")

    def fetched() -> list[Any]:
        return [cache.raw_client().get(cache.make_and_validate_key(key)) for key in keys]

    def read_old_record() -> tuple[list[Any], bytes]:
        before = fetched()
        return before, lookup(client)[2].content

    cache.clear()
    early, old_body = read_old_record()
    cache.clear()  # the entry the lookup itself stored: only ``early``'s own store below matters
    during: list[bool] = []
    mid: list[list[Any]] = []  # a lookup that fetched after the change was marked, and read before its commit

    def store(seen: list[Any]) -> bool:
        return published.store("alice", '"old"', old_body, seen)

    with transaction.atomic():
        transaction.on_commit(lambda: during.extend([store(early), store(mid[0])]))  # after COMMIT, before finish
        services.statement_apply(signed=alice.sign("update", "alice", 2), source="api")
        mid.append(fetched())
        during.extend([store(early), store(mid[0])])  # marked, not committed yet
    after = [store(early), store(mid[0])]  # committed and finished
    assert (during, after) == ([False] * 4, [False] * 2)
    assert entry() is None
    status, data, _ = lookup(client)
    assert (status, data["seq"]) == (200, 2)


def test_a_change_is_refused_and_nothing_written_when_the_mark_cannot_be_set(
    settings: Any, alice: Owner, staff: Any
) -> None:
    register(alice, "alice")
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    with pytest.raises(DomainError) as refused:
        services.name_suspend(name="alice", actor=staff, reason="spam")
    assert (refused.value.code, refused.value.status) == ("cache_unavailable", 503)
    assert NameRecord.objects.get(name="alice").status == NameRecord.Status.ACTIVE


def test_a_lookup_still_answers_from_the_database_when_redis_is_down(
    client: Client, alice: Owner, settings: Any
) -> None:
    register(alice, "alice")
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    status, data, _ = lookup(client)
    assert (status, data["name"]) == (200, "alice")


def test_a_rolled_back_change_leaves_the_record_served_from_the_database(client: Client, alice: Owner) -> None:
    register(alice, "alice")
    lookup(client)
    with transaction.atomic():
        NameRecord.objects.filter(name="alice").update(payment_address="Mx" + "A" * 60)
        transaction.set_rollback(True)
    assert entry() is None  # dropped by the mark, not stored again while the mark lasts
    status, data, _ = lookup(client)
    assert (status, data["payment_address"]) == (200, None)


def test_publishing_every_active_name_keeps_their_answers_and_nothing_else(
    client: Client, alice: Owner, bob: Owner, staff: Any, django_assert_num_queries: Any
) -> None:
    register(alice, "alice")
    register(bob, "bobby")
    services.name_suspend(name="bobby", actor=staff, reason="spam")
    assert published.publish_active(batch=1) == 1
    with django_assert_num_queries(0):
        status, data, _ = lookup(client)
    assert (status, data["name"]) == (200, "alice")
    assert lookup(client, "bobby")[0] == 403


def test_publishing_keeps_nothing_while_a_change_of_the_name_is_under_way(alice: Owner) -> None:
    register(alice, "alice")
    kept: list[int] = []
    with transaction.atomic():
        transaction.on_commit(lambda: kept.append(published.publish_active()))  # after the commit, before finish
        services.statement_apply(signed=alice.sign("update", "alice", 2), source="api")
        kept.append(published.publish_active())  # marked, not committed
    assert (kept, entry()) == ([0, 0], None)
    assert published.publish_active() == 1
