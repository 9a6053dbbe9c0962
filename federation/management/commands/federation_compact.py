import json
from dataclasses import asdict

from django.core.management.base import BaseCommand

from federation import services


class Command(BaseCommand):
    help = (
        "Compact the federation logs now, as the federation.compact beat does: this gateway's own log up to the floor "
        "its peers' positions allow, and its copies of the peers' logs; tombstones (delete ops) are kept. Prints what "
        "it did as JSON; running it again removes nothing more."
    )

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write(json.dumps(asdict(services.compact())))
