from django.core.management.base import BaseCommand

from registry import published


class Command(BaseCommand):
    help = "Keep every active name's lookup answer in Redis now, rather than at its first lookup (warms a gateway)."

    def handle(self, *args: object, **options: object) -> None:
        self.stdout.write(f"kept {published.publish_active()} names' lookup answers in Redis")
