from django.core.management.base import BaseCommand, CommandError

from transparency import selectors, tasks


class Command(BaseCommand):
    help = (
        "Compute, sign and send this gateway's directory root at the newest cut-off, as the beat task does (once per "
        "cut-off: a second run prints the stored one), then say which gateways' roots disagree."
    )

    def handle(self, *args: object, **options: object) -> None:
        cutoff = tasks.compute()
        if cutoff is None:
            raise CommandError("no root: this gateway has no node configured, or its node has not reported its key")
        row = selectors.own_root(cutoff=cutoff)
        self.stdout.write(f"root at {row.cutoff}: {row.size} names, computed in {row.compute_ms} ms")
        for found in selectors.disagreements():
            self.stdout.write(f"  {found.sentence()}")
