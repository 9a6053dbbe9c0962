"""Fixtures: owners with real keys (see ``support``), and fresh rate-limit counters for every test."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.cache import cache

import handshake.services
from core.errors import DomainError
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


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stands in for the Handshake app's ``session_authorise``: accepts the token "good", refuses the others."""
    calls: list[dict[str, Any]] = []

    def session_authorise(*, token: str, name: str, purposes: set[str]) -> None:
        calls.append({"token": token, "name": name, "purposes": purposes})
        if token != "good":
            raise DomainError("session_invalid", "Unknown or expired session.", status=401)

    monkeypatch.setattr(handshake.services, "session_authorise", session_authorise, raising=False)
    return calls
