import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from federation import services
from federation.models import LogHead


class Command(BaseCommand):
    help = (
        "Run once after restoring this gateway's database from a backup, before starting it (docs/operations.md): "
        "its log starts a new incarnation, numbers no new operation until its peers said how far they hold it, "
        "and takes its lost operations back from them. --status shows where that stands."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reason", default="the operator restored a backup", help="Kept in the log's note.")
        parser.add_argument("--status", action="store_true", help="Only show the log's state (JSON).")

    def handle(self, *args: object, **options: object) -> None:
        if not options["status"]:
            if services.self_key() is None:
                raise CommandError("This gateway does not know its identity key: restore the whole database.")
            started = services.log_restored(reason=str(options["reason"])[:300])
            self.stdout.write("recovering: the log starts a new incarnation" if started else "already recovering")
        for head in LogHead.objects.all():
            state = {
                "seq": head.seq,
                "incarnation": head.incarnation,
                "recovering": head.recovering,
                "restored_at": head.restored_at.isoformat() if head.restored_at else None,
                "restored_from": head.restored_from,
                "recovered_ops": head.recovered_ops,
                "note": head.recovery_note,
            }
            self.stdout.write(json.dumps(state))
