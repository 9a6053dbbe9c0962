import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandParser

from federation import selectors, services


class Command(BaseCommand):
    help = (
        "Reconcile with the active peers (or one, by name) now, as the anti-entropy beat does: fetch what they hold "
        "that this gateway lacks, and move each one's cursor to its snapshot's head. With a peer that has no API "
        "URL the round goes over Maxima: it sends its first question and says it waits; the worker carries it on "
        "as the answers arrive."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--peer", default="", help="Only this peer (its name).")
        parser.add_argument("--seconds", type=float, default=3600, help="Stop a round after this long.")

    def handle(self, *args: object, **options: object) -> None:
        peers = selectors.peers_active()
        if options["peer"]:
            peers = peers.filter(name=options["peer"])
        for peer in peers:
            while True:
                report = services.reconcile_with_peer(peer_id=peer.id, seconds=float(options["seconds"]))
                if report is None or not report.unfinished:
                    break
            self.stdout.write(json.dumps({"peer": peer.name, **(asdict(report) if report else {"busy": True})}))
