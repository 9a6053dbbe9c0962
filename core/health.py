"""The parts of a running gateway and whether each answers.

``critical`` parts make the gateway unable to accept or serve anything: if one fails, health answers 503.
The background parts (worker, sender, beat) only make it ``degraded``: the API still works, processing waits. The
sender is whatever takes the sends' queue: the worker itself unless a worker of threads does (``core.processes``).
"""

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str = ""
    ms: float = 0.0
    critical: bool = True

    def as_dict(self) -> dict:
        answer = {"ok": self.ok, "ms": self.ms}
        if self.detail:
            answer["detail"] = self.detail
        return answer


def _timed(check: Callable[[], str], *, critical: bool = True) -> CheckResult:
    started = time.perf_counter()
    try:
        detail, ok = check(), True
    except RuntimeError as exc:  # our own words (heartbeats, cache round trip)
        detail, ok = f"RuntimeError: {exc}"[:200], False
    except Exception as exc:  # a health check reports any failure, never raises, and never shows hosts or users
        detail, ok = type(exc).__name__, False
    return CheckResult(ok=ok, detail=detail, ms=round((time.perf_counter() - started) * 1000, 2), critical=critical)


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def check_cache() -> str:
    key, value = "health:" + secrets.token_hex(8), secrets.token_hex(8)
    cache.set(key, value, timeout=10)
    if cache.get(key) != value:
        raise RuntimeError("the cache did not return what was stored")
    cache.delete(key)
    return settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]


def check_broker() -> str:
    from celery import current_app as app

    url = app.conf.broker_url
    if url.startswith("filesystem://"):
        folder = app.conf.broker_transport_options["data_folder_in"]
        if not os.access(folder, os.W_OK):
            raise RuntimeError("the broker folder is not writable")
        return "filesystem"
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        return conn.transport_cls


def _heartbeat(name: str) -> str:
    from core.models import Heartbeat

    beat = Heartbeat.objects.filter(name=name).first()
    if beat is None:
        raise RuntimeError(f"no {name} has reported yet")
    age = timezone.now() - beat.at
    if age > timedelta(seconds=3 * settings.CELERY_HEARTBEAT_EVERY + 10):
        raise RuntimeError(f"last seen {int(age.total_seconds())} s ago")
    return f"last seen {age.total_seconds():.0f} s ago"


@dataclass(frozen=True)
class Part:
    """A part of the gateway that a higher app adds to the health report (the node, the peers)."""

    check: Callable[[], str]
    critical: bool
    applies: Callable[[], bool]
    report: Callable[[], object] | None


_parts: dict[str, Part] = {}


def register(
    name: str,
    check: Callable[[], str],
    *,
    critical: bool,
    applies: Callable[[], bool] = lambda: True,
    report: Callable[[], object] | None = None,
) -> None:
    """Add a part to every health report, from the app that owns it (called in its ``AppConfig.ready``).

    ``check`` returns a short detail or raises; ``critical`` parts turn the answer ``down``, the others
    ``degraded``; ``applies`` says whether this gateway has the part at all; ``report``, when given, adds a key of
    the part's name to the body with its details (the peers' lag, say)."""
    _parts[name] = Part(check=check, critical=critical, applies=applies, report=report)


def reports(results: dict[str, CheckResult]) -> dict[str, object]:
    """The details of the registered parts that were checked, keyed by part."""
    return {name: part.report() for name, part in _parts.items() if part.report is not None and name in results}


def status_of(results: dict[str, CheckResult]) -> str:
    """``down`` when a critical part failed, ``degraded`` when another did, else ``ok``."""
    failed = [result for result in results.values() if not result.ok]
    return "down" if any(result.critical for result in failed) else ("degraded" if failed else "ok")


_memo: dict[str, tuple[float, dict[str, CheckResult]]] = {}


def run_checks_cached() -> dict[str, CheckResult]:
    """The checks at most every MNS_HEALTH_CACHE_SECONDS per process: the endpoint is public and unthrottled
    (load balancers poll it), and must not turn a flood into database, broker and node traffic."""
    now = time.monotonic()
    cached = _memo.get("checks")
    if cached is None or now - cached[0] >= settings.MNS_HEALTH_CACHE_SECONDS:
        cached = _memo["checks"] = (now, run_checks())
    return cached[1]


def run_checks() -> dict[str, CheckResult]:
    results = {
        "database": _timed(check_database),
        "cache": _timed(check_cache),
        "broker": _timed(check_broker),
    }
    database_ok = results["database"].ok
    results.update(_run_parts(critical=True, database_ok=database_ok))
    if database_ok:
        results["worker"] = _timed(lambda: _heartbeat("worker"), critical=False)
        results["sender"] = _timed(lambda: _heartbeat("sender"), critical=False)
        results["beat"] = _timed(lambda: _heartbeat("beat"), critical=False)
    results.update(_run_parts(critical=False, database_ok=database_ok))
    return results


def _run_parts(*, critical: bool, database_ok: bool) -> dict[str, CheckResult]:
    parts = {name: part for name, part in _parts.items() if part.critical == critical}
    return {name: _timed(part.check, critical=critical) for name, part in parts.items() if _applies(part, database_ok)}


def _applies(part: Part, database_ok: bool) -> bool:
    if not database_ok and not part.critical:  # the background parts are read from the database
        return False
    try:
        return part.applies()
    except Exception:  # a health check never raises (the database check reports the failure)
        return False
