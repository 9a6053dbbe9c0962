from django.core.management.base import BaseCommand, CommandError

from entrypoints import services
from maxima.node import node_client
from mns_client.protocol.errors import MNSError


class Command(BaseCommand):
    help = (
        "Set up the entry-point list on chain (idempotent): on the publisher (MNS_PUBLISHER=true) create the token, "
        "wait for its final id, register the owner-locked script and make the first bulletin coin; on a reading "
        "gateway, track the script of the configured token and owner."
    )

    def add_arguments(self, parser: object) -> None:
        parser.add_argument("--wait", type=float, default=None, help="Seconds to wait for each mining step.")

    def handle(self, *args: object, **options: object) -> None:
        try:
            setup, done = services.setup_run(
                rpc=node_client(), wait_seconds=options["wait"], say=lambda line: self.stdout.write(f"  {line}")
            )
        except MNSError as exc:
            raise CommandError(f"entry-point setup stopped: {exc} (run it again to resume)") from None
        if not done:
            self.stdout.write("nothing to do: the entry-point list is already set up")
        self.stdout.write(
            f"token {setup.tokenid}\nscript address {setup.script_address}\nowner {setup.owner_key}\n"
            f"first coin {setup.first_coinid or '-'}"
        )
