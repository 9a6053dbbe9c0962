"""The poll of a handshake answered before DRF (``core.fastpath.register_admitted``, ``handshake.views
.challenge_early``): the view's answer byte for byte in one statement, everything it does not serve still the
view's, each poll counted once, and an answer seen by the very next poll."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.fastpath import AdmittedAnswers
from core.throttling import PerIPThrottle
from handshake.models import Challenge
from handshake.tests.support import Started, answer, receive, start
from registry.tests.support import Owner, hold, register
from testsupport.wsgi import Django, django_handler, request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gateway")]


@pytest.fixture
def django_app() -> Iterator[Django]:
    with django_handler() as handler:
        yield handler


@pytest.fixture
def app(django_app: Django) -> AdmittedAnswers:
    return AdmittedAnswers(django_app)


@pytest.fixture
def started(alice: Owner) -> Started:
    register(alice, "alice")
    return start()


def poll(app: Any, challenge_id: str, query: str = "", **headers: str) -> tuple[int, dict, bytes]:
    return request(app, f"/api/v1/handshakes/{challenge_id}", query=query, **headers)


@pytest.mark.parametrize(
    "change",
    [
        {},  # pending
        {"expires_at": timezone.now() - timedelta(seconds=1)},  # expired
        {"status": "failed", "failure_reason": "too_many_attempts", "attempts": 5},
        {"status": "verified", "pickup_until": timezone.now() + timedelta(seconds=60)},
        {"status": "verified", "pickup_until": None},  # a register answered while the network's claim is open
        {"status": "verified", "session_issued_at": timezone.now()},
    ],
    ids=["pending", "expired", "failed", "verified", "claim-open", "picked-up"],
)
def test_a_poll_is_answered_early_exactly_as_the_view_answers_it(
    app: AdmittedAnswers, django_app: Django, started: Started, change: dict, django_assert_num_queries: Any
) -> None:
    Challenge.objects.filter(id=started.id).update(**change)
    headers = {"X_Request_ID": "client-chosen-id"}
    with django_assert_num_queries(1):  # the challenge with its name: one statement
        early = poll(app, started.id, **headers)
    assert django_app.reached == 0  # answered early
    assert early == poll(django_app, started.id, **headers)
    assert early[0] == 200
    assert early[1]["Cache-Control"] == "no-store"


def test_a_register_poll_waiting_for_the_network_is_answered_as_the_view_answers_it(
    app: AdmittedAnswers, django_app: Django, alice: Owner
) -> None:
    hold(alice, "alice")
    started = start(purpose="register")
    Challenge.objects.filter(id=started.id).update(status="verified", pickup_until=None)
    early = poll(app, started.id, X_Request_ID="client-chosen-id")
    assert django_app.reached == 0
    assert early == poll(django_app, started.id, X_Request_ID="client-chosen-id")
    assert b'"reason":"claim_open"' in early[2]


def test_what_the_early_answer_does_not_serve_is_the_views(
    app: AdmittedAnswers, django_app: Django, started: Started
) -> None:
    asked = [
        ("AAAAAAAAAAAAAAAAAAAAAA", "", {}),  # 404 handshake_not_found
        ("not%00an-id", "", {}),  # not an id at all: 404
        (started.id, "format=json", {}),  # DRF reads ?format=
        (started.id, "", {"Accept": "text/html"}),  # 406
        (f"{started.id}/session", "", {}),  # another view's URL (the pickup): 405
    ]
    for challenge_id, query, headers in asked:
        reached = django_app.reached
        early = poll(app, challenge_id, query, X_Request_ID="client-chosen-id", **headers)
        assert django_app.reached == reached + 1, (challenge_id, query, headers)
        assert early == poll(django_app, challenge_id, query, X_Request_ID="client-chosen-id", **headers)


def test_a_poll_is_counted_once_whether_answered_early_or_by_the_view(
    app: AdmittedAnswers, django_app: Django, started: Started, monkeypatch: Any
) -> None:
    monkeypatch.setitem(PerIPThrottle.THROTTLE_RATES, "ip", "3/min")
    assert poll(app, started.id)[0] == 200  # early, 1
    assert poll(app, started.id, "format=json")[0] == 200  # the view, counted by the early try, 2
    assert poll(app, "AAAAAAAAAAAAAAAAAAAAAA")[0] == 404  # missed after reading, 3
    status, headers, body = poll(app, started.id)
    assert (status, b"throttled" in body, "Retry-After" in headers) == (429, True, True)  # the view's 429
    assert django_app.reached == 3


def test_the_owners_answer_is_seen_by_the_next_poll(app: AdmittedAnswers, started: Started, alice: Owner) -> None:
    assert b'"status":"pending"' in poll(app, started.id)[2]
    assert receive(answer(alice, started.id, started.code)) == "verified"
    assert b'"status":"verified"' in poll(app, started.id)[2]
