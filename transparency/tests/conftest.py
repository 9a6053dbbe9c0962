"""Owners with real keys (``registry.tests.support``), this gateway with a key it can sign its roots with, and
two peers with theirs."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.core.cache import cache

from federation.tests.support import FakePeer
from maxima.models import NodeState
from mns_client.protocol.codecs import MaximaAddress, from_hex
from mns_client.protocol.crypto import maxsigner
from registry.tests.conftest import alice, bob, carol  # noqa: F401 (fixtures)
from registry.tests.support import Owner, fresh_owner

_ports = itertools.count(9700)


@dataclass
class SigningPeer:
    """A peer gateway that signs its roots with its own Maxima key."""

    peer: FakePeer
    keys: Owner

    def sign(self, data: bytes) -> bytes:
        return maxsigner(self.keys.private_key)(data)


@pytest.fixture(scope="session")
def me_keys() -> Owner:
    return fresh_owner()


@pytest.fixture
def me(db: None, me_keys: Owner) -> Owner:
    """This gateway: its node reported ``me_keys``'s public key, and signs with its private one."""
    NodeState.objects.create(pk=1, reachable=True, publickey=me_keys.key)
    return me_keys


def _signing_peer(name: str) -> SigningPeer:
    keys = fresh_owner()
    address = str(MaximaAddress(from_hex(keys.key), "127.0.0.1", next(_ports)))
    peer = FakePeer(name=name, key=keys.key, address=address)
    peer.add()
    return SigningPeer(peer=peer, keys=keys)


@pytest.fixture
def peers(me: Owner) -> list[SigningPeer]:
    return [_signing_peer("gw-b"), _signing_peer("gw-c")]


@pytest.fixture
def redis_cache(settings: Any, redis_url: str) -> Iterator[None]:
    """The cache of a production gateway: core.cache.RedisCache on a real Redis (this test's database)."""
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "mns"}}
    cache.clear()
    yield
    redis.Redis.from_url(redis_url).flushdb()
