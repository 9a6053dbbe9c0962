"""Fixtures: owners with real RSA keys, the gateway's known Maxima address, and fresh rate-limit counters."""

import pytest
from django.core.cache import cache

from handshake.tests.support import Client
from maxima.models import NodeState
from registry.tests.support import GATEWAY, Owner, fresh_owner
from testsupport import maxima_fixture

GATEWAY_INFO = maxima_fixture("01-")["parsed"]["response"]


@pytest.fixture(scope="session")
def alice() -> Owner:
    return fresh_owner()


@pytest.fixture(scope="session")
def mallory() -> Owner:
    return fresh_owner()


@pytest.fixture
def gateway(db: None) -> NodeState:
    """This gateway's node as supervision last saw it: node A of the fixtures."""
    return NodeState.objects.create(
        pk=1,
        reachable=True,
        publickey=GATEWAY,
        mls=GATEWAY_INFO["mls"],
        localidentity=GATEWAY_INFO["localidentity"],
        p2pidentity=GATEWAY_INFO["p2pidentity"],
    )


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.clear()
