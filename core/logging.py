"""Log formatting: a request id on every line, JSON lines on request, and no secret ever written out."""

import contextvars
import json
import logging
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RedactSecretsFilter(logging.Filter):
    """Replaces the webhook secret wherever it appears (Django and gunicorn log request paths)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from django.conf import settings

        secret = getattr(settings, "MAXIMA_HOOK_SECRET", "")
        if secret:
            message = record.getMessage()
            if secret in message:
                record.msg, record.args = message.replace(secret, "<secret>"), ()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for key in ("method", "path", "status", "duration_ms", "bytes"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
