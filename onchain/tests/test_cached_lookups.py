"""With lookups served from Redis (``registry.published``), what a lookup says of a name on chain is never stale:
each change of it goes through the registry's guard, registered with ``onchain``."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import cache
from django.test import Client

from mailboxes.tests.support import Owner
from maxima.models import NodeState
from mns_client.protocol.chainnames import MNS_ADDRESS
from mns_client.protocol.rpc import MinimaRPC
from onchain import tasks
from onchain.models import ChainCoin
from onchain.tests.test_names_on_chain import carol_on_chain, mns_register, register_and_confirm

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def redis_cache(settings: Any, redis_url: str) -> Iterator[None]:
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "mns"}}
    cache.clear()
    yield
    redis.Redis.from_url(redis_url).flushdb()


def test_a_cached_lookup_shows_the_name_moving_on_chain_at_once(settings: Any, gateway: NodeState, bob: Owner) -> None:
    client = Client()
    with carol_on_chain() as net:
        settings.MINIMA_RPC_URL = net.nodes[0].rpc_url
        register_and_confirm(bob, "carol", net.nodes[1])
        for _ in range(2):  # the second lookup is served from Redis
            assert json.loads(client.get("/api/v1/names/carol").content)["on_chain"]["agrees"] is True
        assert cache.has_key("published:carol")
        for _ in range(3):
            net.make_block()
        new_holder = net.nodes[0].wallet_keys[0]
        mns_register(net.nodes[1], "carol", transfer=new_holder)
        net.make_block()
        coin = MinimaRPC(net.nodes[0].rpc_url).coins(
            address=MNS_ADDRESS, state="carol", order="desc", simplestate=True
        )[0]
        hook = f"/onchain/hook/{settings.MAXIMA_HOOK_SECRET}/"
        event = {"event": "NOTIFYCOIN", "data": {"address": MNS_ADDRESS, "coin": coin}}
        client.post(hook, json.dumps(event), content_type="application/json")
        tasks.coin_check(ChainCoin.objects.get(coinid=coin["coinid"]).id)
        on_chain = json.loads(client.get("/api/v1/names/carol").content)["on_chain"]
    assert (on_chain["holder"], on_chain["agrees"]) == (new_holder, False)
