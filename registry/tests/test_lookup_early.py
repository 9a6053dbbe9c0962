"""The lookup of a cached name answered before DRF (``core.fastpath``, ``registry.views.lookup_early``): the same
answer as the view's, counted once, and never the old record once a change has committed."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.db import transaction
from prometheus_client import REGISTRY
from rest_framework.throttling import ScopedRateThrottle

from core.fastpath import EarlyAnswers
from registry import services
from registry.tests.support import Owner, register
from testsupport.wsgi import Django, request

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def redis_cache(settings: Any, redis_url: str) -> Iterator[None]:
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "mns"}}
    cache.clear()
    yield
    redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def app(django_app: Django) -> EarlyAnswers:
    return EarlyAnswers(django_app)


def get(app: Any, path: str = "/api/v1/names/alice", method: str = "GET", **headers: str) -> tuple[int, dict, bytes]:
    return request(app, path, method=method, **headers)


def test_a_cached_lookup_is_answered_before_django_exactly_as_django_answers_it(
    app: EarlyAnswers, django_app: Django, alice: Owner, django_assert_num_queries: Any, monkeypatch: Any
) -> None:
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "lookup", "6/min")
    register(alice, "alice")
    assert get(app)[0] == 200  # not cached yet: Django answers and keeps it
    assert django_app.reached == 1
    etag = get(django_app)[1]["ETag"]
    for headers in [{"X_Request_ID": "client-chosen-id"}, {"If_None_Match": etag, "X_Request_ID": "client-chosen-id"}]:
        reached = django_app.reached
        with django_assert_num_queries(0):
            early = get(app, **headers)
        assert django_app.reached == reached  # not Django's
        assert early == get(django_app, **headers)
    # The limit (6/min) is reached: 429 with Retry-After, early and from Django alike.
    early, late = get(app, X_Request_ID="client-chosen-id"), get(django_app, X_Request_ID="client-chosen-id")
    assert django_app.reached == 5
    assert early[0] == 429
    assert "Retry-After" in early[1]
    assert early[2] == late[2]
    assert early[1].keys() == late[1].keys()
    assert json.loads(early[2])["error"] == "throttled"


def test_a_lookup_the_early_answer_cannot_serve_is_counted_once(
    app: EarlyAnswers, django_app: Django, monkeypatch: Any
) -> None:
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "lookup", "3/min")
    statuses = [get(app, "/api/v1/names/nobody")[0] for _ in range(4)]  # never cached: Django answers each
    assert statuses == [404, 404, 404, 429]
    assert django_app.reached == 3  # the fourth was refused early


def answered(outcome: str) -> float:
    return REGISTRY.get_sample_value("mns_early_answers_total", {"route": "registry:name", "outcome": outcome}) or 0


def test_the_metrics_say_which_lookups_the_cache_answered(app: EarlyAnswers, alice: Owner) -> None:
    register(alice, "alice")
    early, missed = answered("early"), answered("missed")
    get(app)  # not cached yet: Django answers and keeps it
    get(app)
    get(app, If_None_Match=get(app)[1]["ETag"])
    get(app, "/api/v1/names/nobody")  # never cached
    assert (answered("early") - early, answered("missed") - missed) == (3, 2)
    counted = counted_at_all()
    get(app, "/api/v1/names/a/b")  # under the prefix, but no registered URL took it: Django's, and not counted
    get(app, method="HEAD")  # not tried
    assert counted_at_all() == counted


def counted_at_all() -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "mns_early_answers"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def test_what_the_early_answer_does_not_serve_goes_to_django_unchanged(
    app: EarlyAnswers, django_app: Django, alice: Owner
) -> None:
    register(alice, "alice")
    get(app)
    reached = django_app.reached
    assert get(app, method="HEAD")[0] == 200
    assert get(app, "/api/v1/names/ALICE")[0] == 200  # another spelling of a cached name: early
    assert get(app, Accept="application/json; indent=4")[0] == 200
    assert get(app, Accept="text/html")[0] == 406
    assert get(app, "/api/v1/names/a/b")[0] == 404
    assert get(app, "/api/v1/names/alice/history")[0] == 200
    assert django_app.reached == reached + 5


def test_no_early_lookup_answers_the_old_record_once_a_change_committed(
    app: EarlyAnswers, django_app: Django, alice: Owner, staff: Any
) -> None:
    register(alice, "alice")
    get(app)
    status, headers, _ = get(app)
    assert status == 200
    seen: list[int] = []
    with transaction.atomic():
        # After the COMMIT, before the change's own on_commit finish (callbacks run in order).
        transaction.on_commit(lambda: seen.append(get(app)[0]))
        services.name_suspend(name="alice", actor=staff, reason="spam")
    assert seen == [403]
    status, changed, _ = get(app, If_None_Match=headers["ETag"])
    assert status == 403
    assert changed.get("ETag") != headers["ETag"]
