"""The PostgreSQL backend's health check (``core.postgresql``): a dead kept connection is replaced before a request
uses it, and a live one is kept without a query."""

import select
from collections.abc import Iterator

import pytest
from django.db import connection, connections

pytestmark = pytest.mark.django_db


@pytest.fixture
def kept(postgres: None) -> Iterator[object]:
    """A second connection to the test database, as a web process keeps one between requests."""
    other = connections.create_connection("default")
    other.health_check_enabled = True
    other.ensure_connection()
    yield other
    other.close()


def backend_pid(conn: object) -> int:
    return conn.connection.info.backend_pid


def last_query_of(pid: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0]


def between_requests(conn: object) -> None:
    """What Django does at the start of a request's first query: the health check, armed once per request."""
    conn.health_check_done = False
    conn.close_if_health_check_failed()


def test_the_backend_is_the_gateways_own_in_production(postgres: None) -> None:
    assert type(connections["default"]).__module__ == "core.postgresql.base"
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True


def test_a_live_connection_is_kept_and_the_check_sends_no_query(kept: object) -> None:
    with kept.cursor() as cursor:
        cursor.execute("SELECT 'the last query before the check'")
    pid = backend_pid(kept)
    between_requests(kept)
    assert kept.connection is not None
    assert backend_pid(kept) == pid
    assert last_query_of(pid) == "SELECT 'the last query before the check'"  # no SELECT 1 was sent


def test_a_connection_the_server_closed_is_replaced_before_the_request_uses_it(kept: object) -> None:
    pid = backend_pid(kept)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The backend exits on its own schedule: wait (bounded) until its goodbye reached the socket.
    select.select([kept.connection.fileno()], [], [], 10)
    between_requests(kept)
    assert kept.connection is None
    with kept.cursor() as cursor:  # the request's query: on a new connection, not an error
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert backend_pid(kept) != pid


def test_the_database_checks_warn_when_the_servers_autovacuum_is_off(postgres: None) -> None:
    # Django runs them at ``manage.py migrate`` and ``check --database``: run_checks with the database, as they do.
    from django.core import checks

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]

    found = [m for m in checks.run_checks(tags=[checks.Tags.database], databases=["default"]) if m.id == "core.W001"]

    if autovacuum == "off":  # as on CI's server
        assert len(found) == 1
        assert found[0].level == checks.WARNING
        assert "autovacuum is off" in found[0].msg
        assert "docs/operations.md" in found[0].hint
    else:
        assert found == []
