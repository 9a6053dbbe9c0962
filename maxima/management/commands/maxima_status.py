from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from maxima.node import hook_url, node_client
from maxima.services import node_supervise


def age(since: datetime | None) -> str:
    """``3 min ago``: how old a value learnt at ``since`` is, to the unit a person reads."""
    if since is None:
        return "never reached"
    seconds = max(0, int((timezone.now() - since).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


class Command(BaseCommand):
    help = "Check the Minima node now, as the supervision task does, and print what the gateway knows of it."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.MINIMA_RPC_URL:
            raise CommandError(
                "this gateway has no Minima node configured: set MINIMA_RPC_URL (and MINIMA_RPC_PASSWORD) to the "
                "node's RPC, e.g. http://127.0.0.1:9005 (make run starts simnet and sets it itself)"
            )
        state = node_supervise(client=node_client(timeout=10))
        # When the node does not answer, everything but reachable/error is what it said the last time it did.
        stale = "" if state.reachable else f"  (last known, {age(state.last_ok_at)})"
        rows = {
            "reachable": state.reachable,
            "error": state.error or "-",
            "version": (state.version or "-") + stale,
            "block": f"{state.block}{stale}",
            "identity key": (state.publickey or "-") + stale,
            "p2pidentity": (state.p2pidentity or "-") + stale,
            "mls": (state.mls or "-") + stale,
            "webhook": (state.webhook or "-") + stale,
            "hook url": hook_url().rsplit("/", 2)[0] + "/<secret>/",
        }
        for key, value in rows.items():
            self.stdout.write(f"{key:>14}  {value}")
        if not state.reachable:
            raise CommandError(
                f"the Minima node at {settings.MINIMA_RPC_URL} is not reachable ({state.error}); start it, or fix "
                "MINIMA_RPC_URL/MINIMA_RPC_PASSWORD"
            )
