"""The webhook inbox: what a real node posts is stored once, fast; anything else is refused and stores nothing."""

import json
from collections.abc import Iterator

import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from maxima.models import InboundEvent
from maxima.routing import _applications
from testsupport import maxima_fixture

pytestmark = pytest.mark.django_db

REAL_HOOK = maxima_fixture("11-")  # what node B posted when node A's message arrived


@pytest.fixture(autouse=True)
def _fixture_clock(settings: object) -> None:
    """The fixtures were captured earlier today; widen the freshness window so they count as fresh."""
    settings.MAXIMA_MAX_AGE_SECONDS = 10**9


@pytest.fixture
def hook_path(settings: object) -> str:
    return f"/maxima/hook/{settings.MAXIMA_HOOK_SECRET}/"


@pytest.fixture
def recorded() -> Iterator[list]:
    seen: list = []
    _applications["mns-test"] = seen.append
    yield seen
    _applications.pop("mns-test", None)


def post_as_the_node(client: Client, path: str, body: str | bytes) -> object:
    """Exactly the request a real node makes: a JSON body labelled x-www-form-urlencoded."""
    return client.generic(
        "POST",
        path,
        body.encode() if isinstance(body, str) else body,
        content_type=REAL_HOOK["headers"]["Content-type"],
        HTTP_USER_AGENT=REAL_HOOK["headers"]["User-Agent"],
    )


def real_event(**changes: object) -> dict:
    event = json.loads(REAL_HOOK["raw_body"])
    event["data"].update(changes)
    return event


def test_a_real_node_webhook_is_stored_with_its_fields(client: Client, hook_path: str) -> None:
    response = post_as_the_node(client, hook_path, REAL_HOOK["raw_body"])
    assert response.status_code == 200
    stored = InboundEvent.objects.get()
    sent = json.loads(REAL_HOOK["raw_body"])["data"]
    assert json.loads(response.content) == {"stored": True, "id": stored.id, "status": "pending"}
    assert (stored.msgid, stored.sender, stored.recipient_key) == (sent["msgid"], sent["from"], sent["to"])
    assert (stored.application, stored.timemilli, stored.status) == ("mns", sent["timemilli"], "pending")
    assert bytes(stored.data) == bytes.fromhex(sent["data"][2:])
    assert stored.size == len(bytes.fromhex(sent["data"][2:]))


def test_the_same_webhook_posted_twice_is_stored_once(client: Client, hook_path: str) -> None:
    first = post_as_the_node(client, hook_path, REAL_HOOK["raw_body"])
    second = post_as_the_node(client, hook_path, REAL_HOOK["raw_body"])
    assert (first.status_code, second.status_code) == (200, 200)
    assert json.loads(second.content)["stored"] is False
    assert InboundEvent.objects.count() == 1


def test_a_wrong_secret_answers_404_and_stores_nothing(client: Client) -> None:
    response = post_as_the_node(client, "/maxima/hook/" + "x" * 40 + "/", REAL_HOOK["raw_body"])
    assert response.status_code == 404
    assert InboundEvent.objects.count() == 0


def test_only_post_is_allowed(client: Client, hook_path: str) -> None:
    assert client.get(hook_path).status_code == 405
    assert InboundEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"\xff\xfe", "The body is not UTF-8 JSON."),
        (b"event=MAXIMA", "The body is not UTF-8 JSON."),
        (b'["MAXIMA"]', 'The body is not an object with an "event".'),
        (b'{"event":"MAXIMA"}', 'A MAXIMA event needs a "data" object.'),
        (json.dumps(real_event(msgid="0x1234")), '"msgid" is missing or malformed.'),
        (json.dumps(real_event(**{"from": "0x3081"})), '"from" is not a Maxima public key.'),
        (json.dumps(real_event(data="hello")), '"data" is missing or malformed.'),
        (json.dumps(real_event(data="0xABC")), '"data" is missing or malformed.'),
        (json.dumps(real_event(data="0XABCD")), '"data" is missing or malformed.'),
        (json.dumps(real_event(data="0xAB CD")), '"data" is missing or malformed.'),
        (json.dumps(real_event(data=["0xABCD"])), '"data" is missing or malformed.'),
        (json.dumps(real_event(timemilli="1795661881137")), '"timemilli" must be a number of milliseconds.'),
        (json.dumps(real_event(timemilli=True)), '"timemilli" must be a number of milliseconds.'),
        (json.dumps(real_event(application="mns;maxima")), '"application" is missing or malformed.'),
    ],
)
def test_a_malformed_event_answers_400_and_stores_nothing(
    client: Client, hook_path: str, body: str | bytes, detail: str
) -> None:
    response = post_as_the_node(client, hook_path, body)
    assert response.status_code == 400
    assert json.loads(response.content) == {"error": "hook_malformed", "detail": detail}
    assert InboundEvent.objects.count() == 0


def test_an_oversized_body_answers_413_and_stores_nothing(client: Client, hook_path: str, settings: object) -> None:
    settings.MNS_REQUEST_LIMITS = {"/maxima/hook/": 2048}
    response = post_as_the_node(client, hook_path, json.dumps(real_event(data="0x" + "AB" * 4096)))
    assert response.status_code == 413
    assert InboundEvent.objects.count() == 0


def test_other_maxima_events_are_answered_but_not_stored(client: Client, hook_path: str) -> None:
    for prefix in ("74-", "78-"):  # MAXIMACONTACTS and MAXIMAHOSTS also match the MAXIMA filter
        response = post_as_the_node(client, hook_path, maxima_fixture(prefix)["raw_body"])
        assert response.status_code == 200
        assert json.loads(response.content)["stored"] is False
    assert InboundEvent.objects.count() == 0


def test_a_stale_message_is_kept_as_rejected_and_never_handled(
    client: Client, hook_path: str, settings: object, recorded: list, django_capture_on_commit_callbacks: object
) -> None:
    settings.MAXIMA_MAX_AGE_SECONDS = 900
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_as_the_node(client, hook_path, json.dumps(real_event(application="mns-test", timemilli=1)))
    assert json.loads(response.content)["status"] == "rejected"
    assert InboundEvent.objects.get().last_error.startswith("stale: sent")
    assert callbacks == []
    assert recorded == []


def test_a_stored_message_is_handed_to_its_application_once(
    client: Client, hook_path: str, recorded: list, django_capture_on_commit_callbacks: object
) -> None:
    body = json.dumps(real_event(application="mns-test"))
    with django_capture_on_commit_callbacks(execute=True):
        post_as_the_node(client, hook_path, body)
        post_as_the_node(client, hook_path, body)
    assert len(recorded) == 1
    assert recorded[0].application == "mns-test"
    assert recorded[0].data == b'{"type":"mns-lookup","name":"alice","nonce":1}'
    assert InboundEvent.objects.get().status == "done"


def test_posts_over_the_rate_answer_429_and_store_nothing(client: Client, hook_path: str, settings: object) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.MNS_HOOK_RATE_PER_MINUTE = 2
    statuses = [
        post_as_the_node(client, hook_path, json.dumps(real_event(msgid="0x" + f"{n:064X}"))).status_code
        for n in range(3)
    ]
    assert statuses[:2] == [200, 200]
    assert statuses[2] == 429
    assert InboundEvent.objects.count() == 2


def test_one_noisy_sender_is_limited_without_silencing_the_others(
    client: Client, hook_path: str, settings: object
) -> None:
    from django.core.cache import cache

    from mns_client.protocol.codecs import public_key_hex
    from mns_client.protocol.crypto import generate_maxima_keypair

    cache.clear()
    settings.MNS_HOOK_RATE_PER_SENDER_PER_MINUTE = 1
    other = public_key_hex(generate_maxima_keypair()[1])
    first = post_as_the_node(client, hook_path, json.dumps(real_event(msgid="0x" + "1" * 64)))
    again = post_as_the_node(client, hook_path, json.dumps(real_event(msgid="0x" + "2" * 64)))
    someone_else = post_as_the_node(client, hook_path, json.dumps(real_event(msgid="0x" + "3" * 64, **{"from": other})))
    assert (first.status_code, again.status_code, someone_else.status_code) == (200, 429, 200)
    assert InboundEvent.objects.count() == 2


def test_a_message_is_still_stored_when_the_rate_limit_cache_is_down(
    client: Client, hook_path: str, settings: object
) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "core.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"},
    }
    response = post_as_the_node(client, hook_path, REAL_HOOK["raw_body"])
    assert response.status_code == 200
    assert InboundEvent.objects.count() == 1


def test_json_nested_too_deeply_is_refused_as_malformed(client: Client, hook_path: str) -> None:
    response = post_as_the_node(client, hook_path, "[" * 50_000)
    assert response.status_code == 400
    assert json.loads(response.content)["error"] == "hook_malformed"
    assert InboundEvent.objects.count() == 0


# ---------------------------------------------------- on PostgreSQL, as served: no transaction around the request


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_message_is_stored_by_one_statement_and_its_repeat_finds_it(
    client: Client, hook_path: str, postgres: None, settings: object
) -> None:
    settings.MAXIMA_MAX_AGE_SECONDS = 900  # kept as rejected: no task runs in this process to add its queries
    body = json.dumps(real_event(timemilli=1))
    with CaptureQueriesContext(connection) as queries:
        first = json.loads(post_as_the_node(client, hook_path, body).content)
    # The bound on waiting and the INSERT … ON CONFLICT in one query, committed by PostgreSQL; the INSERT is kept
    # prepared on the connection, prepared (bounded too) by the first webhook a connection serves.
    sent = [query["sql"].split("; ") for query in queries]
    assert all(bound.startswith("SET LOCAL statement_timeout = ") for bound, _ in sent)
    assert [statement.split()[0] for _, statement in sent] in (["PREPARE", "EXECUTE"], ["EXECUTE"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE name = %s", [sent[-1][1].split()[1]])
        assert "ON CONFLICT" in cursor.fetchone()[0]
    again = json.loads(post_as_the_node(client, hook_path, body).content)
    stored = InboundEvent.objects.get()
    assert first == {"stored": True, "id": stored.id, "status": "rejected"}
    assert again == {"stored": False, "id": stored.id, "status": "rejected"}
    assert stored.received_at is not None
    assert stored.last_error.startswith("stale: sent")


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_stored_message_is_handed_to_its_application_once(
    client: Client, hook_path: str, postgres: None, recorded: list
) -> None:
    body = json.dumps(real_event(application="mns-test"))
    post_as_the_node(client, hook_path, body)
    post_as_the_node(client, hook_path, body)
    assert [message.data for message in recorded] == [b'{"type":"mns-lookup","name":"alice","nonce":1}']
    assert InboundEvent.objects.get().status == "done"


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_hook_that_would_wait_too_long_answers_503_and_stores_nothing(
    client: Client, hook_path: str, postgres: None, settings: object
) -> None:
    settings.MNS_HOOK_DB_TIMEOUT_MS = 200
    connection.close()  # a connection of its own: its first webhook prepares the insert, which waits for locks too
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '5s'")  # if the bound did not hold: a failure, not a test that hangs
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            other.set_autocommit(False)
            cursor.execute(f"LOCK TABLE {InboundEvent._meta.db_table} IN ACCESS EXCLUSIVE MODE")
            with CaptureQueriesContext(connection) as queries:
                response = post_as_the_node(client, hook_path, REAL_HOOK["raw_body"])
            other.rollback()
    finally:
        other.close()
        connection.close()  # its lock_timeout goes with it: the next test has a connection as any other
    assert (response.status_code, response["Retry-After"]) == (503, "5")
    assert not InboundEvent.objects.exists()
    [sent] = [query["sql"] for query in queries]  # the PREPARE, under the bound; not tried again
    assert sent.startswith("SET LOCAL statement_timeout = 200; PREPARE ")
