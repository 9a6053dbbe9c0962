import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import DomainError
from federation import selectors, services
from federation.models import Peer


class Command(BaseCommand):
    help = "Manage the peers of this gateway: add (or update), list, remove. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Add a peer, or update the one of that name.")
        add.add_argument("name")
        add.add_argument("--key", required=True, help="The peer's Maxima identity key (0x…).")
        add.add_argument("--address", required=True, help="MAX#… or Mx…@host:port.")
        add.add_argument("--api-url", default="", help="The peer's REST API base URL.")
        add.add_argument("--permanent", action="store_true", help="The address is a permanent MAX# address.")
        add.add_argument("--disabled", action="store_true", help="Add it disabled.")
        listing = sub.add_parser("list", help="List the peers and their health.")
        listing.add_argument("--json", action="store_true")
        remove = sub.add_parser("remove", help="Remove a peer (removing an unknown one is not an error).")
        remove.add_argument("name")

    def handle(self, *args: object, **options: object) -> None:
        action = options["action"]
        try:
            if action == "add":
                peer, created = services.peer_upsert(
                    name=str(options["name"]),
                    identity_key=str(options["key"]),
                    address=str(options["address"]),
                    api_url=str(options["api_url"]),
                    permanent=bool(options["permanent"]),
                    enabled=not options["disabled"],
                )
                self.stdout.write(f"{'added' if created else 'updated'} peer {peer.name}")
            elif action == "remove":
                removed = services.peer_remove(name=str(options["name"]))
                self.stdout.write(f"{'removed' if removed else 'no'} peer {options['name']}")
            else:
                self._list(as_json=bool(options["json"]))
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from None

    def _list(self, *, as_json: bool) -> None:
        rows = []
        for peer in Peer.objects.order_by("name"):
            rows.append(
                {
                    "name": peer.name,
                    "identity_key": peer.identity_key,
                    "address": peer.address,
                    "permanent": peer.permanent,
                    "api_url": peer.api_url,
                    "enabled": peer.enabled,
                    "paused": peer.paused,
                    "paused_reason": peer.paused_reason,
                    "last_heard_at": peer.last_heard_at.isoformat() if peer.last_heard_at else None,
                    "lag_ops": peer.lag_ops,
                    "lag_seconds": round(selectors.lag_seconds(peer), 1),
                    "invalid_ops": peer.invalid_ops,
                }
            )
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for row in rows:
            state = "paused" if row["paused"] else ("enabled" if row["enabled"] else "disabled")
            self.stdout.write(
                f"{row['name']:<20} {state:<8} lag {row['lag_ops']} ops / {row['lag_seconds']} s  "
                f"invalid {row['invalid_ops']}  {row['address'][:40]}  {row['api_url']}"
            )
