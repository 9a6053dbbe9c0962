import logging

from celery import shared_task
from django.conf import settings

from core.errors import DomainError
from entrypoints import services
from maxima.node import node_client

logger = logging.getLogger(__name__)


@shared_task(name="entrypoints.publish", ignore_result=True)
def publish() -> int | None:
    """Beat, every MNS_ENTRYPOINTS_EVERY hours (publisher only): a new list, or the retry of an unfinished one.

    By hand: ``python manage.py entrypoints_publish --once``.
    """
    if not settings.MNS_PUBLISHER or not settings.MINIMA_RPC_URL:
        return None
    try:
        return services.publish_now(rpc=node_client()).seq
    except DomainError as exc:  # not set up yet: say so in the worker's log, every period, until it is
        logger.warning("entry points not published: %s", exc.detail)
        return None


@shared_task(name="entrypoints.check", ignore_result=True)
def check() -> dict[str, int] | None:
    """Beat, every MNS_ENTRYPOINTS_CHECK_EVERY seconds: confirm sent lists, retry failed ones that are due;
    on a reading gateway, record a newer list from the chain. Safe to run twice."""
    if not settings.MINIMA_RPC_URL:
        return None
    return services.publications_check(rpc=node_client())
