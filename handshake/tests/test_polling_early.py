"""A handshake's state answered before DRF (``core.fastpath.register_admitted``, ``handshake.views.challenge_early``):
the view's answer byte for byte in one statement, in every state, every refusal still the view's, each poll
counted once, and an answer seen by the very next poll."""

import functools
import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.fastpath import AdmittedAnswers
from core.throttling import PerIPThrottle
from handshake import services
from handshake.models import Challenge
from handshake.tests.support import Started, answer, receive, start
from registry.tests.support import Owner, register
from testsupport.wsgi import Django, request

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("gateway")]


@pytest.fixture
def app(django_app: Django) -> AdmittedAnswers:
    return AdmittedAnswers(django_app)


@pytest.fixture
def started(alice: Owner) -> Started:
    register(alice, "alice")
    return start()


def poll(app: Any, challenge_id: str, query: str = "", **headers: str) -> tuple[int, dict, bytes]:
    return request(app, f"/api/v1/handshakes/{challenge_id}", query=query, **headers)


def early_as_the_view(
    app: AdmittedAnswers, django_app: Django, challenge_id: str, assert_queries: Any
) -> tuple[str, str | None, bool]:
    """The early answer of a poll, checked against the view's own answer of the same poll; its status, reason and
    whether the session was issued."""
    headers = {"X_Request_ID": "client-chosen-id"}
    reached = django_app.reached
    with assert_queries(1):  # the challenge and its name: one statement
        early = poll(app, challenge_id, **headers)
    assert django_app.reached == reached  # answered early
    assert early == poll(django_app, challenge_id, **headers)
    assert early[0] == 200
    state = json.loads(early[2])
    return state["status"], state["reason"], state["session_issued"]


def test_every_state_of_a_handshake_is_answered_early_exactly_as_the_view_answers_it(
    app: AdmittedAnswers, django_app: Django, started: Started, alice: Owner, django_assert_num_queries: Any
) -> None:
    poll(app, started.id)  # PostgreSQL's backend may prepare the statement first (execute_prepared)
    states = functools.partial(early_as_the_view, app, django_app, assert_queries=django_assert_num_queries)
    assert states(started.id) == ("pending", None, False)
    assert receive(answer(alice, started.id, started.code)) == "verified"
    assert states(started.id) == ("verified", None, False)  # seen by the very next poll
    services.session_open(challenge_id=started.id, verifier=started.verifier)
    assert states(started.id) == ("verified", None, True)

    failed = start()
    for _ in range(Challenge.objects.get(id=failed.id).max_attempts):
        receive(answer(alice, failed.id, "wrong-code"))
    assert states(failed.id) == ("failed", "too_many_attempts", False)

    expired = start()
    Challenge.objects.filter(id=expired.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert states(expired.id) == ("expired", "challenge_expired", False)


def test_what_the_early_answer_does_not_serve_and_every_refusal_are_the_views(
    app: AdmittedAnswers, django_app: Django, started: Started
) -> None:
    asked = [
        ({}, started.id, "format=json"),  # DRF reads ?format=
        ({"Accept": "text/html"}, started.id, ""),  # 406
        ({}, "h" * 40, ""),  # no such challenge: 404 handshake_not_found
        ({}, "bad%00id", ""),  # not an id at all: 404
        ({}, f"{started.id}/session", ""),  # another view's URL: 405
    ]
    for headers, challenge_id, query in asked:
        reached = django_app.reached
        early = poll(app, challenge_id, query, X_Request_ID="client-chosen-id", **headers)
        assert django_app.reached == reached + 1, (challenge_id, query, headers)
        assert early == poll(django_app, challenge_id, query, X_Request_ID="client-chosen-id", **headers)
        assert early[0] in (404, 405, 406) or query


def test_a_poll_is_counted_once_whether_answered_early_or_by_the_view(
    app: AdmittedAnswers, django_app: Django, started: Started, monkeypatch: Any
) -> None:
    monkeypatch.setitem(PerIPThrottle.THROTTLE_RATES, "ip", "3/min")
    assert poll(app, started.id)[0] == 200  # early, 1
    assert poll(app, started.id, "format=json")[0] == 200  # the view, counted by the early try, 2
    assert poll(app, "h" * 40)[0] == 404  # missed after reading, 3
    status, headers, body = poll(app, started.id)
    assert (status, b"throttled" in body, "Retry-After" in headers) == (429, True, True)  # the view's 429
    assert django_app.reached == 3
