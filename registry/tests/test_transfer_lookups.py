"""Lookups served from the published form (Redis) are never stale after a data record, an offer or an accept:
each goes through the registry's one path for statements, which invalidates the name in its transaction."""

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.test import Client

from registry import published, services
from registry.tests.support import Owner, register

pytestmark = pytest.mark.django_db(transaction=True)

DAY_MS = 24 * 3600 * 1000


@pytest.fixture(autouse=True)
def redis_cache(settings: Any, redis_url: str) -> Iterator[None]:
    """The cache of a production gateway: core.cache.RedisCache on a real Redis (this test's database)."""
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "mns"}}
    cache.clear()
    yield
    redis.Redis.from_url(redis_url).flushdb()


def cached_lookup(client: Client) -> dict[str, Any]:
    """A lookup, then the same lookup again, which the published form answers: both must agree."""
    first = client.get("/api/v1/names/alice")
    assert first.status_code == 200
    assert cache.raw_client().get(cache.make_and_validate_key(published.ENTRY + "alice")) is not None
    second = client.get("/api/v1/names/alice")
    assert second.content == first.content
    return json.loads(second.content)


def test_a_cached_lookup_follows_a_data_record_an_offer_and_an_accept_at_once(alice: Owner, bob: Owner) -> None:
    client = Client()
    record = register(alice, "alice")
    assert cached_lookup(client)["data"] is None
    # a data record
    services.statement_apply(
        signed=alice.sign("update", "alice", 2, box_key=record.box_key, data={"website": "https://a.example/"}),
        source="api",
    )
    assert cached_lookup(client)["data"] == {"website": "https://a.example/"}
    # an offer
    now = int(time.time() * 1000)
    offer = alice.sign("transfer", "alice", 3, box_key=record.box_key, to=bob.key, expires_at=now + DAY_MS)
    services.statement_apply(signed=offer, source="api")
    assert cached_lookup(client)["transfer"] == {"to": bob.key, "expires_at": now + DAY_MS, "offer": 3}
    # the accept, replicated from a peer: the name is bob's in the very next lookup
    accept = bob.sign("accept", "alice", 4, accepts=3, issued_at=now + 1)
    services.statement_replicate(signed=accept)
    after = cached_lookup(client)
    assert (after["owner"], after["box_key"], after["transfer"], after["data"]) == (
        bob.key,
        accept.statement.box_key,
        None,
        None,
    )
