"""Small helpers shared by the simnet modules: Java-style dates and trimming, hashing, time, state files."""

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def now_ms() -> int:
    return int(time.time() * 1000)


def java_date(millis: int | None = None) -> str:
    """``java.util.Date.toString()`` in UTC, e.g. ``Thu Nov 26 02:58:01 UTC 2026``."""
    t = time.gmtime((now_ms() if millis is None else millis) / 1000)
    return (
        f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} UTC {t.tm_year}"
    )


def java_trim(text: str) -> str:
    """``String.trim()``: strips every character up to and including U+0020 at both ends."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def sha3(*parts: bytes) -> bytes:
    """SHA3-256 over the concatenation of ``parts`` with 4-byte length prefixes (unambiguous framing)."""
    digest = hashlib.sha3_256()
    for part in parts:
        digest.update(len(part).to_bytes(4, "big"))
        digest.update(part)
    return digest.digest()


def random_bytes(n: int = 32) -> bytes:
    return os.urandom(n)


def hex0x(data: bytes) -> str:
    """``MiniData.to0xString()``: ``0x`` and upper-case hex."""
    return "0x" + data.hex().upper()


def write_file_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (mode 0600) so a reader sees the old file or the new one, never a mix.

    Each call writes its own temporary file in the same directory (two writers at once never share one, which
    lost RPC answers when they did: one writer's rename took the other's file away), syncs it, then renames it.
    Callers that must not let an older state overwrite a newer one serialise their calls themselves.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
