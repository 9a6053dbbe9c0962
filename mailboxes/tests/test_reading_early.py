"""A session's read of its mailbox answered before DRF (``core.fastpath.register_admitted``,
``mailboxes.views.messages_early``/``message_early``): the view's answer byte for byte in one statement, every
refusal still the view's, each request counted once, and a session's end seen by the very next read."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.fastpath import AdmittedAnswers
from core.throttling import PerIPThrottle
from handshake.models import Session
from mailboxes import services as mailbox_services
from mailboxes.models import Message
from mailboxes.tests.support import Opened, Owner, deliver, session
from registry import services as registry_services
from testsupport.wsgi import Django, request

pytestmark = pytest.mark.django_db
LIST = "/api/v1/mailboxes/alice/messages"


@pytest.fixture
def app(django_app: Django) -> AdmittedAnswers:
    return AdmittedAnswers(django_app)


@pytest.fixture
def reader(opened: Opened, alice: Owner) -> str:
    """alice's ``read`` session: the Authorization header's value."""
    return session(alice, "alice", "read")["HTTP_AUTHORIZATION"]


def get(app: Any, path: str, query: str = "", **headers: str) -> tuple[int, dict, bytes]:
    return request(app, path, query=query, **headers)


def stored(sender: Owner, count: int) -> list[str]:
    for n in range(count):
        assert deliver(sender, ciphertext=bytes([n + 1]) * 10) == "stored"
    return list(Message.objects.order_by("-id").values_list("uid", flat=True))


@pytest.mark.parametrize("credential", ["session", "access token"])
def test_a_list_and_a_fetch_are_answered_early_exactly_as_the_view_answers_them(
    app: AdmittedAnswers,
    django_app: Django,
    opened: Opened,
    reader: str,
    sender: Owner,
    django_assert_num_queries: Any,
    credential: str,
) -> None:
    uids = stored(sender, 3)
    authorization = reader if credential == "session" else opened.auth["HTTP_AUTHORIZATION"]
    asked = [
        (LIST, ""),  # the default page: no next
        (LIST, "limit=2"),  # a next link, made as DRF makes it
        (LIST, "limit=3"),  # exactly a page
        (LIST, "limit=999"),  # capped at the paginator's maximum
        (f"{LIST}/{uids[1]}", ""),  # one message, its ciphertext, no-store
    ]
    for path, query in asked:
        headers = {"Authorization": authorization, "X_Request_ID": "client-chosen-id"}
        get(app, path, query, **headers)  # PostgreSQL's backend may prepare the statement first (execute_prepared)
        reached = django_app.reached
        with django_assert_num_queries(1):  # the credential, its mailbox and the messages: one statement
            early = get(app, path, query, **headers)
        assert django_app.reached == reached, (path, query)  # answered early
        assert early == get(django_app, path, query, **headers), (path, query)
        assert early[0] == 200
    assert b'"next":null' not in get(app, LIST, "limit=2", Authorization=authorization)[2]


def test_what_the_early_answer_does_not_serve_and_every_refusal_are_the_views(
    app: AdmittedAnswers, django_app: Django, opened: Opened, alice: Owner, reader: str, sender: Owner
) -> None:
    uid = stored(sender, 3)[0]
    first = get(django_app, LIST, "limit=1", Authorization=reader)
    cursor = first[2].split(b"cursor=")[1].split(b"&")[0].decode()
    token = {"Authorization": opened.auth["HTTP_AUTHORIZATION"]}
    forward = session(alice, "alice", "forward")["HTTP_AUTHORIZATION"]
    asked = [
        ({"Authorization": reader}, LIST, f"cursor={cursor}&limit=1"),  # a later page: the view
        ({"Authorization": reader}, LIST, "limit=0"),  # DRF's own reading of a bad limit
        ({"Authorization": reader}, LIST, "format=json"),
        ({"Authorization": reader}, f"{LIST}/{uid}", "format=xml"),  # DRF reads ?format= on one message too: 404
        ({"Authorization": reader, "Accept": "text/html"}, LIST, ""),  # 406
        ({"Authorization": reader}, f"{LIST}/nosuchmessage000", ""),  # 404 message_not_found
        ({"Authorization": reader}, f"{LIST}/bad%00uid", ""),
        ({"Authorization": reader}, "/api/v1/mailboxes/bob/messages", ""),  # 403 session_out_of_scope
        ({"Authorization": forward}, LIST, ""),  # another purpose: 403
        ({"Authorization": "MNS-Session not-a-session"}, LIST, ""),  # 401 session_invalid
        ({}, LIST, ""),  # 401 not_authenticated
        ({"Authorization": "MNS-Token not-a-token"}, LIST, ""),  # 401 token_invalid
        ({"Authorization": token["Authorization"] + "x"}, LIST, ""),  # the wrong secret: 401 token_invalid
        ({"Authorization": reader}, f"{LIST}/ack", ""),  # another view's URL: 405
    ]
    for headers, path, query in asked:
        reached = django_app.reached
        early = get(app, path, query, X_Request_ID="client-chosen-id", **headers)
        assert django_app.reached == reached + 1, (path, query, headers)
        assert early == get(django_app, path, query, X_Request_ID="client-chosen-id", **headers), (path, query)


def test_a_session_that_ended_is_refused_by_the_next_read(
    app: AdmittedAnswers, django_app: Django, opened: Opened, alice: Owner, reader: str, sender: Owner, staff: Any
) -> None:
    """Nothing of a credential is kept between reads: revocation, expiry and a suspension apply to the next one."""
    uid = stored(sender, 1)[0]
    paths = [(LIST, ""), (f"{LIST}/{uid}", "")]
    for path, query in paths:
        assert get(app, path, query, Authorization=reader)[0] == 200
    other = session(alice, "alice", "read")["HTTP_AUTHORIZATION"]
    # Revoked through the door the owner's client uses.
    assert get(django_app, "/api/v1/session", "", Authorization=reader)[0] == 200
    assert request(django_app, "/api/v1/session", method="DELETE", Authorization=reader)[0] == 204
    for path, query in paths:
        status, _, body = get(app, path, query, Authorization=reader)
        assert (status, b"session_revoked" in body) == (401, True)
    # Expired: the clock passes its end.
    Session.objects.filter(revoked_at=None).update(expires_at=timezone.now() - timedelta(seconds=1))
    for path, query in paths:
        status, _, body = get(app, path, query, Authorization=other)
        assert (status, b"session_expired" in body) == (401, True)
    # An access token revoked (what rotation and the owner's DELETE do) reads nothing more.
    token = opened.auth["HTTP_AUTHORIZATION"]
    assert get(app, LIST, "", Authorization=token)[0] == 200
    mailbox_services.access_token_revoke(mailbox=opened.mailbox, by="owner")
    for path, query in paths:
        status, _, body = get(app, path, query, Authorization=token)
        assert (status, b"token_revoked" in body) == (401, True)
    # Suspended by staff: a live session of a suspended name reads nothing.
    third = session(alice, "alice", "read")["HTTP_AUTHORIZATION"]
    assert get(app, LIST, "", Authorization=third)[0] == 200
    registry_services.name_suspend(name="alice", actor=staff, reason="test")
    for path, query in paths:
        status, _, body = get(app, path, query, Authorization=third)
        assert (status, b"name_suspended" in body) == (403, True)


def test_a_read_is_counted_once_whether_answered_early_or_by_the_view(
    app: AdmittedAnswers, django_app: Django, reader: str, sender: Owner, monkeypatch: Any
) -> None:
    monkeypatch.setitem(PerIPThrottle.THROTTLE_RATES, "ip", "3/min")
    stored(sender, 1)
    assert get(app, LIST, "", Authorization=reader)[0] == 200  # early, 1
    assert get(app, LIST, "limit=0", Authorization=reader)[0] == 200  # the view, counted by the early try, 2
    assert get(app, f"{LIST}/nosuchmessage000", "", Authorization=reader)[0] == 404  # missed after reading, 3
    status, headers, body = get(app, LIST, "", Authorization=reader)
    assert (status, b"throttled" in body, "Retry-After" in headers) == (429, True, True)  # the view's 429
    assert django_app.reached == 3
