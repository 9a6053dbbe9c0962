import os
import time
from pathlib import Path

from django.apps import AppConfig
from django.db import connection

from maxima.routing import InboundMessage, register_application


class TestSupportConfig(AppConfig):
    """Maxima handlers that let tests watch the real worker (installed only with MNS_TEST_APPS=true)."""

    name = "testsupport"
    label = "testsupport"

    def ready(self) -> None:
        register_application("test-slow", slow_handler)


def slow_handler(message: InboundMessage) -> None:
    """Writes a line when it starts and when it ends, sleeping in between, so a test can kill the worker inside."""
    log = Path(os.environ["MNS_TEST_HANDLER_LOG"])
    with log.open("a") as out:
        out.write(f"start {message.msgid} pid {os.getpid()}\n")
    time.sleep(float(os.environ.get("MNS_TEST_HANDLER_SLEEP", "3")))
    connection.ensure_connection()
    with log.open("a") as out:
        out.write(f"end {message.msgid}\n")
