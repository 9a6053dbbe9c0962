from typing import Any

from django.core.management.base import BaseCommand

from maxima.node import hook_url, node_client
from maxima.services import node_supervise


class Command(BaseCommand):
    help = "Check the Minima node now, as the supervision task does, and print what the gateway knows of it."

    def handle(self, *args: Any, **options: Any) -> None:
        state = node_supervise(client=node_client(timeout=10))
        rows = {
            "reachable": state.reachable,
            "error": state.error or "-",
            "version": state.version or "-",
            "block": state.block,
            "identity key": state.publickey or "-",
            "p2pidentity": state.p2pidentity or "-",
            "mls": state.mls or "-",
            "webhook": state.webhook or "-",
            "hook url": hook_url().rsplit("/", 2)[0] + "/<secret>/",
        }
        for key, value in rows.items():
            self.stdout.write(f"{key:>14}  {value}")
        if not state.reachable:
            raise SystemExit(1)
