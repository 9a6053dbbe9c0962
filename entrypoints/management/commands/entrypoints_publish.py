import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from entrypoints import services
from entrypoints.models import Publication
from maxima.node import node_client
from mns_client.protocol.errors import MNSError


class Command(BaseCommand):
    help = (
        "Publish the entry-point list now, as the beat task does (MNS_PUBLISHER=true): a new list, or the retry of "
        "an unfinished one. --wait also waits for the bulletin coin to be deep enough to spend (MNS_CONFIRMATIONS) "
        "and for the new list's confirmation on chain. Refused, and recorded as refused, when the list would be empty "
        "or this gateway has no permanent (MAX#) address."
    )

    def add_arguments(self, parser: object) -> None:
        parser.add_argument(
            "--once",
            action="store_true",
            help="Publish once and stop (without it: every MNS_ENTRYPOINTS_EVERY hours, forever).",
        )
        parser.add_argument("--wait", type=float, default=0, help="Seconds to wait for the confirmation.")

    def handle(self, *args: object, **options: object) -> None:
        while True:
            self._once(float(options["wait"]))
            if options["once"]:
                return
            time.sleep(settings.MNS_ENTRYPOINTS_EVERY * 3600)

    def _once(self, wait: float) -> None:
        try:
            rpc = node_client()
            publication = services.publish_now(rpc=rpc)
            deadline = time.monotonic() + wait
            waiting = (Publication.Status.PENDING, Publication.Status.SENT)  # for the coin's depth, for the block
            while publication.status in waiting and time.monotonic() < deadline:
                time.sleep(0.5)
                services.publications_check(rpc=rpc)
                publication.refresh_from_db()
        except MNSError as exc:
            raise CommandError(f"not published: {exc}") from None
        line = {"seq": publication.seq, "status": publication.status, "entries": publication.entries}
        if publication.error:
            line["error"] = publication.error
        self.stdout.write(json.dumps(line))
