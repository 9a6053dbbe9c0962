import logging

from celery import shared_task

from core.errors import DomainError
from maxima.node import node_client
from mns_client.protocol.errors import RPCError
from onchain import services

logger = logging.getLogger(__name__)


@shared_task(name="onchain.coin_check", ignore_result=True)
def coin_check(coin_id: int) -> None:
    """A coin the node's webhook announced: ask the node's ``verify`` about it once. Safe to run twice."""
    if not services.enabled():
        return
    try:
        services.coin_check(coin_id=coin_id, client=node_client())
    except DomainError as exc:  # the node is away: the next registration or lookup of the name asks again
        logger.info("coin %s not checked: %s", coin_id, exc.code)


@shared_task(name="onchain.watch", ignore_result=True)
def watch() -> bool:
    """Beat, every MNS_CHAIN_NAMES_WATCH_EVERY seconds: make sure the node tells this gateway of new MNS coins."""
    if not services.enabled():
        return False
    try:
        services.watch(client=node_client(timeout=10), hook=services.hook_url())
    except RPCError as exc:
        logger.warning("could not ask the node to watch the MNS address: %s", exc.code)
        return False
    return True
