import os
import socket

from django.utils import timezone

from core.models import Heartbeat


def heartbeat_record(*, name: str) -> None:
    Heartbeat.objects.update_or_create(
        name=name, defaults={"at": timezone.now(), "host": socket.gethostname(), "pid": os.getpid()}
    )
