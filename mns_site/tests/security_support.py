"""Shared by the attack suites (``test_security_*``): Maxima messages posted to the webhook as the node posts them,
every log record captured the way the project formats it, and a count of every model's rows."""

import base64
import io
import json
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.apps import apps
from django.conf import settings
from django.test import Client

from core.logging import JsonFormatter, RedactSecretsFilter, RequestIdFilter
from mns_client.protocol.codecs import to_hex
from registry.tests.support import GATEWAY


def hook_event(sender_key: str, body: dict | bytes, *, application: str = "mns") -> dict[str, Any]:
    """A ``MAXIMA`` webhook event as a node posts it: ``sender_key`` is the key Maxima verified."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {
        "event": "MAXIMA",
        "data": {
            "from": sender_key,
            "to": GATEWAY,
            "time": "now",
            "timemilli": int(time.time() * 1000),
            "random": "0x" + secrets.token_hex(32).upper(),
            "application": application,
            "data": "0x" + to_hex(data).removeprefix("0x").upper(),
            "msgid": "0x" + secrets.token_hex(32).upper(),
        },
    }


def hook_post(client: Client, event: dict | bytes | str) -> Any:
    """Post to the webhook exactly as the node does (a JSON body labelled x-www-form-urlencoded)."""
    raw = event if isinstance(event, bytes) else (event if isinstance(event, str) else json.dumps(event)).encode()
    return client.generic(
        "POST",
        f"/maxima/hook/{settings.MAXIMA_HOOK_SECRET}/",
        raw,
        content_type="application/x-www-form-urlencoded",
    )


def row_counts() -> dict[str, int]:
    """How many rows every model of the project has (to show a refusal wrote nothing anywhere)."""
    return {model._meta.label: model.objects.count() for model in apps.get_models()}


@contextmanager
def all_logs() -> Iterator[io.StringIO]:
    """Every record of every logger at DEBUG, formatted by both of the project's formatters (text and JSON),
    through the project's filters, into one buffer."""
    buffer = io.StringIO()
    handlers = []
    for formatter in (logging.Formatter(settings.LOGGING["formatters"]["text"]["format"]), JsonFormatter()):
        handler = logging.StreamHandler(buffer)
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        handler.addFilter(RedactSecretsFilter())
        handlers.append(handler)
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if logger is logging.getLogger() or not logger.propagate:
            for handler in handlers:
                logger.addHandler(handler)
    try:
        yield buffer
    finally:
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled
            for handler in handlers:
                logger.removeHandler(handler)


def spellings(secret: str | bytes) -> set[str]:
    """A secret as it could leak into a log: raw, hex (either case), base64 (standard and URL-safe, padded or not)."""
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = {raw.hex(), raw.hex().upper()}
    for encoded in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        forms |= {encoded, encoded.rstrip("=")}
    if isinstance(secret, str):
        forms.add(secret)
    return {form for form in forms if len(form) >= 16}
