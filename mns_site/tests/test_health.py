import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from core.models import Heartbeat
from core.services import heartbeat_record
from mns_site.celery import app as celery_app

pytestmark = pytest.mark.django_db


def get_health(client: Client) -> tuple[int, dict]:
    response = client.get("/api/v1/health")
    return response.status_code, json.loads(response.content)


def test_health_is_ok_when_every_part_answers_and_worker_sender_and_beat_are_fresh(client: Client) -> None:
    heartbeat_record(name="worker")
    heartbeat_record(name="sender")
    heartbeat_record(name="beat")
    status, body = get_health(client)
    assert status == 200
    assert body["status"] == "ok"
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True,
        "cache": True,
        "broker": True,
        "worker": True,
        "sender": True,
        "beat": True,
    }


def test_health_is_degraded_but_200_while_no_worker_has_reported(client: Client) -> None:
    status, body = get_health(client)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["checks"]["worker"] == {
        "ok": False,
        "ms": body["checks"]["worker"]["ms"],
        "detail": "RuntimeError: no worker has reported yet",
    }


def test_a_gateway_whose_sends_nobody_takes_is_degraded_naming_the_sender(client: Client) -> None:
    # a worker started without the sends (-X sends) and no sender running: the sends' heartbeat never runs
    heartbeat_record(name="worker")
    heartbeat_record(name="beat")
    status, body = get_health(client)
    assert (status, body["status"]) == (200, "degraded")
    assert [name for name, check in body["checks"].items() if not check["ok"]] == ["sender"]
    assert body["checks"]["sender"]["detail"] == "RuntimeError: no sender has reported yet"


def test_a_stale_heartbeat_counts_as_not_running(client: Client, settings: object) -> None:
    Heartbeat.objects.create(name="worker", at=timezone.now() - timedelta(minutes=10))
    _, body = get_health(client)
    assert body["checks"]["worker"]["ok"] is False
    assert "last seen 600 s ago" in body["checks"]["worker"]["detail"]


@pytest.fixture
def dead_broker() -> Iterator[None]:
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        yield
    finally:
        celery_app.conf.broker_url = saved


def test_health_answers_503_naming_the_broker_when_it_is_down(client: Client, dead_broker: None) -> None:
    status, body = get_health(client)
    assert status == 503
    assert body["error"] == "unhealthy"
    assert body["detail"] == "Not working: broker."
    assert body["status"] == "down"
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


@pytest.fixture
def dead_database() -> Iterator[None]:
    """Point the real connection at a database that cannot be opened, then put it back."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent/dir/db.sqlite3"
    else:
        connection.settings_dict["PORT"] = "1"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
def test_health_answers_503_naming_the_database_when_it_is_down(client: Client, dead_database: None) -> None:
    status, body = get_health(client)
    assert status == 503
    assert body["detail"] == "Not working: database."
    assert body["checks"]["database"]["ok"] is False
    assert set(body["checks"]) == {"database", "cache", "broker"}


def test_health_with_redis_as_cache_and_broker(client: Client, settings: object, redis_url: str) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = redis_url
    try:
        status, body = get_health(client)
    finally:
        celery_app.conf.broker_url = saved
    assert (body["checks"]["cache"]["ok"], body["checks"]["broker"]["ok"]) == (True, True)
    assert body["checks"]["cache"]["detail"] == "RedisCache"
    assert body["checks"]["broker"]["detail"] == "redis"  # the stack's Redis, not the embedded folder
    assert status == 200


def test_health_answers_503_naming_the_cache_when_redis_is_down(client: Client, settings: object) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    status, body = get_health(client)
    assert status == 503
    assert body["detail"] == "Not working: cache."
