from django.core.management.base import BaseCommand

from handshake import services


class Command(BaseCommand):
    help = "Delete challenges and sessions that expired more than MNS_HANDSHAKE_KEEP_SECONDS ago (as beat does)."

    def handle(self, *args: object, **options: object) -> None:
        challenges, sessions = services.handshakes_clean()
        self.stdout.write(f"deleted {challenges} challenges and {sessions} sessions")
