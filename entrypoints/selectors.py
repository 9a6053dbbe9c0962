"""Reads of the entry points: the candidates for a list, the setup, and the newest confirmed list."""

import logging
from typing import Any

from django.conf import settings

from entrypoints.models import Publication, Setup
from federation.selectors import entry_candidates
from maxima import selectors as maxima

logger = logging.getLogger(__name__)


def self_candidate() -> dict[str, str] | None:
    """This gateway as an entry, when its configured address (MNS_MAXIMA_ADDRESS) is a permanent MAX# one."""
    address, key = settings.MNS_MAXIMA_ADDRESS, maxima.gateway_identity_key()
    if not address.startswith("MAX#") or not key:
        return None
    return {
        "maxima_address": address,
        "identity_key": key,
        "api_url": settings.MNS_PUBLIC_URL.rstrip("/") + "/api/v1/",
    }


def candidates() -> list[dict[str, Any]]:
    """Healthy, enabled, unpaused peers with permanent addresses (federation), and this gateway when it has one."""
    found = [
        {"maxima_address": c.maxima_address, "identity_key": c.identity_key, "api_url": c.api_url}
        for c in entry_candidates()
    ]
    me = self_candidate()
    if me is not None:
        found.append(me)
    return found


def setup_done() -> Setup | None:
    return Setup.objects.filter(pk=1, completed_at__isnull=False).exclude(script_address="").first()


def chain_config() -> dict[str, str] | None:
    """What a reader needs to find and trust the bulletin (published in /.well-known/mns.json)."""
    setup = setup_done()
    if setup is None or not setup.tokenid or not setup.owner_key:
        return None
    return {
        "script": setup.script,
        "address": setup.script_address,
        "tokenid": setup.tokenid,
        "owner": setup.owner_key,
    }


def current() -> Publication | None:
    """The newest confirmed list."""
    return Publication.objects.filter(status=Publication.Status.CONFIRMED).order_by("-seq").first()
