import logging

from celery import shared_task
from django.conf import settings

from maxima.node import node_client
from maxima.selectors import gateway_identity_key
from registry.services import buckets_fill
from transparency import services

logger = logging.getLogger(__name__)


@shared_task(name="transparency.compute", ignore_result=True)
def compute() -> int | None:
    """Beat: this gateway's root at the newest cut-off (and at the chain's, if it missed it), once each (computed,
    signed by its node, sent to the peers), and the lookups told which root they prove against. Safe to run twice.
    By hand: ``manage.py transparency_root``."""
    key = gateway_identity_key()
    if not settings.MINIMA_RPC_URL or not key:
        return None
    buckets_fill()
    done = services.roots_compute_due(sign=node_client().maxsign, signer_key=key)
    services.epoch_refresh()
    services.roots_prune()
    return done[0] if done else None
