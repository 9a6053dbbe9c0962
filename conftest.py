"""Suite-wide fixtures: which real services are reachable, and Celery in-process for unit tests.

Tests that need PostgreSQL or Redis ask for the ``postgres`` or ``redis_url`` fixture. When the service is not
reachable they are skipped with the reason, unless ``MNS_REQUIRE_SERVICES=1`` (CI), where a missing service fails.
"""

import os
from collections.abc import Iterator

import pytest
import redis as redis_lib
from django.db import connection

from mns_site.celery import app as celery_app
from testsupport.wsgi import Django, django_handler

REQUIRE_SERVICES = os.environ.get("MNS_REQUIRE_SERVICES", "") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"MNS_REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True, scope="session")
def _celery_in_process() -> None:
    """Unit tests run tasks in-process; tests of the real worker start one and talk to it over a broker."""
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("MNS_TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    try:
        redis_lib.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis_lib.RedisError as exc:
        _unavailable(f"Redis is not reachable at {url}: {exc}")
    return url


@pytest.fixture
def postgres(django_db_blocker: object) -> None:
    """The test database is PostgreSQL (DATABASE_URL was set), for behaviour that only PostgreSQL has."""
    if connection.vendor != "postgresql":
        _unavailable("the test database is not PostgreSQL (set DATABASE_URL=postgres://… to run this)")


@pytest.fixture
def django_app() -> Iterator[Django]:
    """Django's WSGI handler as gunicorn would call it, counting the requests that reach it (``testsupport.wsgi``):
    the early answers' tests ask it and the early answer in front of it the same request."""
    with django_handler() as handler:
        yield handler


@pytest.fixture(autouse=True)
def _fresh_health(settings: object) -> None:
    """Every health request in a test runs the checks (the endpoint caches them for a couple of seconds)."""
    settings.MNS_HEALTH_CACHE_SECONDS = 0


@pytest.fixture(autouse=True)
def _static_without_manifest(settings: object) -> None:
    """Templates render without running collectstatic first (the manifest is tested where gunicorn serves it)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
