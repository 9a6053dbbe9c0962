"""Fixtures: owners and senders with real RSA keys, the gateway's node as supervision saw it, fresh rate counters."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from mailboxes.tests.support import GATEWAY_ADDRESS, Opened, Owner, open_mailbox
from maxima.models import NodeState
from registry.tests.support import GATEWAY


@pytest.fixture(scope="session")
def alice() -> Owner:
    return Owner.fresh()


@pytest.fixture(scope="session")
def bob() -> Owner:
    return Owner.fresh()


@pytest.fixture(scope="session")
def sender() -> Owner:
    """Someone who writes to alice: only their Maxima key (and address, for receipts) matters."""
    return Owner.fresh()


@pytest.fixture
def gateway(db: None) -> NodeState:
    """This gateway's node as supervision last saw it: node A of the fixtures."""
    return NodeState.objects.create(
        pk=1, reachable=True, publickey=GATEWAY, localidentity=GATEWAY_ADDRESS, p2pidentity=GATEWAY_ADDRESS
    )


@pytest.fixture
def opened(gateway: NodeState, alice: Owner) -> Opened:
    """alice's mailbox, registered and confirmed, with the access token her node opened."""
    return open_mailbox(alice, "alice")


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def staff(db: None) -> User:
    return get_user_model().objects.create_superuser("moderator", password="a-long-enough-password")


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.clear()
