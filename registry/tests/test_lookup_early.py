"""The lookup of a cached name answered before DRF (``core.fastpath``, ``registry.views.lookup_early``): the same
answer as the view's, counted once, and never the old record once a change has committed."""

import io
import json
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
import redis
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from rest_framework.throttling import ScopedRateThrottle

from core.fastpath import EarlyAnswers
from registry import services
from registry.tests.support import Owner, register

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def redis_cache(settings: Any, redis_url: str) -> Iterator[None]:
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "mns"}}
    cache.clear()
    yield
    redis.Redis.from_url(redis_url).flushdb()


class Django:
    """Django's own WSGI handler, counting the requests that reach it."""

    def __init__(self) -> None:
        self.handler, self.reached = WSGIHandler(), 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.reached += 1
        return self.handler(environ, start_response)


@pytest.fixture
def django_app() -> Iterator[Django]:
    # As Django's test client: a request does not close the test's database connection (its transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield Django()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def app(django_app: Django) -> EarlyAnswers:
    return EarlyAnswers(django_app)


def get(app: Any, path: str = "/api/v1/names/alice", method: str = "GET", **headers: str) -> tuple[int, dict, bytes]:
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(b"")}
    environ.update({"HTTP_" + key.upper(): value for key, value in headers.items()})
    setup_testing_defaults(environ)
    answered: list[Any] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answered.extend([status, headers])))
    return int(answered[0].split()[0]), dict(answered[1]), body


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
