"""Fixtures: owners with real keys (see ``support``), and fresh rate-limit counters for every test."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.cache import cache

from mns_client.protocol.codecs import from_hex
from registry.tests.support import Owner, fresh_owner
from testsupport import maxima_fixture


@pytest.fixture(scope="session")
def alice() -> Owner:
    keypair = maxima_fixture("30-")["parsed"]["response"]
    return Owner(key=keypair["publickey"], private_key=from_hex(keypair["privatekey"]))


@pytest.fixture(scope="session")
def bob() -> Owner:
    return fresh_owner()


@pytest.fixture(scope="session")
def carol() -> Owner:
    return fresh_owner()


@pytest.fixture
def staff(db: None) -> User:
    return get_user_model().objects.create_user("moderator", is_staff=True)


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    cache.clear()
