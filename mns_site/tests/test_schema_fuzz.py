"""Schemathesis against the gateway's own OpenAPI schema: no input makes it answer 5xx or break the schema.

Every operation is fuzzed in-process over WSGI, against the test database, with every default check
(not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
response_headers_conformance, and the rest schemathesis enables by default). The run is deterministic
(``derandomize``); ``MNS_FUZZ_EXAMPLES`` sets the budget per operation and phase.

positive_data_acceptance is left out: it expects every schema-valid request to be accepted, and most of the API's
rules (name syntax, hex keys and signatures, statements signed by the owner) are not expressed in the schema, so a
schema-valid request answered 400 is the gateway being stricter than its documentation, not a failure.
"""

import os
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.throttling import SimpleRateThrottle
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from mailboxes.tests.support import GATEWAY_ADDRESS, Opened, Owner, open_mailbox
from maxima.models import NodeState
from registry.tests.support import GATEWAY

EXAMPLES = int(os.environ.get("MNS_FUZZ_EXAMPLES", "1000"))
UNLIMITED = "100000000/min"


# A body larger than its path allows is refused with 413 before anything reads it (core.middleware): invalid data
# rejected, which schemathesis's negative_data_rejection does not count among its rejections by default. Its
# generator reaches such a body only now and then (a list of a few thousand items), so without 413 the run failed
# on some machines and not on others.
REJECTED = [*SchemathesisConfig().projects.default.checks.negative_data_rejection.expected_statuses, "413"]
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTED}}})

# Django's own WSGI handler, without the admission queue that mns_site.wsgi puts in front of it: the queue runs each
# request on a thread of its own, with a database connection of its own, which would not see the test's rows.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=CONFIG)


@pytest.fixture
def unthrottled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fuzzing sends thousands of requests a minute from one address: lift every rate limit, not just most."""
    for scope in list(SimpleRateThrottle.THROTTLE_RATES):
        monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, scope, UNLIMITED)
    cache.clear()


@pytest.fixture
def connection_kept() -> Iterator[None]:
    """Requests reach the app straight over WSGI, not through Django's test client, so do what the client does:
    keep the test's connection (and its transaction) open across requests."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def opened(db: None) -> Opened:
    """A confirmed mailbox "alice" with a live access token, so names and mailboxes exist beyond 404s."""
    NodeState.objects.create(
        pk=1, reachable=True, publickey=GATEWAY, localidentity=GATEWAY_ADDRESS, p2pidentity=GATEWAY_ADDRESS
    )
    return open_mailbox(Owner.fresh(), "alice")


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_no_input_makes_an_operation_fail_or_break_its_schema(
    case: schemathesis.Case, connection_kept: None, unthrottled: None, opened: Opened
) -> None:
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
