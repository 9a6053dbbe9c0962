"""Strict parsers for settings taken from the environment.

Every knob of the gateway is an environment variable with a safe default. A value that is set but not understood
stops start-up with a message naming the variable: a typo in production must never silently become a default.
"""

import contextlib
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


class EnvError(ImproperlyConfigured):
    """A variable is set to a value the gateway does not understand."""

    def __init__(self, name: str, value: str, expected: str) -> None:
        super().__init__(f"{name}={value!r} is not valid: expected {expected}")
        self.name = name


def _raw(name: str, env: Mapping[str, str] | None) -> str | None:
    value = (os.environ if env is None else env).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str, *, env: Mapping[str, str] | None = None) -> str:
    value = _raw(name, env)
    return default if value is None else value


def env_bool(name: str, default: bool, *, env: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, env)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise EnvError(name, value, "one of true/false, yes/no, on/off, 1/0")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, env)
    if value is None:
        return default
    if not re.fullmatch(r"-?\d+", value):
        raise EnvError(name, value, "an integer")
    number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise EnvError(name, value, f"an integer from {minimum} to {maximum}")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...], *, env: Mapping[str, str] | None = None) -> str:
    value = _raw(name, env)
    if value is None:
        return default
    if value.lower() not in choices:
        raise EnvError(name, value, "one of " + ", ".join(choices))
    return value.lower()


def env_list(name: str, default: list[str], *, env: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, env)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise EnvError(name, value, "a comma-separated list without empty items")
    return items


def env_rate(name: str, default: str, *, env: Mapping[str, str] | None = None) -> str:
    """A DRF throttle rate such as ``120/min``."""
    value = _raw(name, env)
    if value is None:
        return default
    if not _RATE.fullmatch(value):
        raise EnvError(name, value, "a rate like 120/min (per s, min, hour or day)")
    return value


def env_url(
    name: str, default: str | None, *, schemes: tuple[str, ...], env: Mapping[str, str] | None = None
) -> str | None:
    value = _raw(name, env)
    if value is None:
        return default
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.hostname or parts.path):
        raise EnvError(name, _redact(value), "a URL with scheme " + " or ".join(schemes))
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise EnvError(name, _redact(value), "a URL with a valid port") from None
    return value


def env_url_list(name: str, *, schemes: tuple[str, ...], most: int, env: Mapping[str, str] | None = None) -> str | None:
    """A comma-separated list of URLs, each as ``env_url`` checks it: no empty item, no URL twice, at most
    ``most``. Returned as given (whitespace around the commas dropped), so one URL reads as before."""
    value = _raw(name, env)
    if value is None:
        return None
    urls = [part.strip() for part in value.split(",")]
    shown = ",".join(_redact(url) for url in urls)
    if "" in urls or len(urls) > most:
        raise EnvError(name, shown, f"one to {most} URLs separated by commas, none empty")
    if len(set(urls)) != len(urls):
        raise EnvError(name, shown, "a list that names each URL once")
    for url in urls:
        env_url(name, None, schemes=schemes, env={name: url})
    return ",".join(urls)


def _redact(url: str) -> str:
    """Never echo a password back in an error message."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(parts.password, "***")
    return url


def database_from_url(name: str, url: str) -> dict:
    """Turn ``postgres://user:pass@host:port/db?sslmode=require`` into a Django DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise EnvError(name, _redact(url), "postgres://user:password@host:port/database")
    options = dict(parse_qsl(parts.query, strict_parsing=False))
    options.setdefault("connect_timeout", "5")
    try:
        port = parts.port
    except ValueError:
        raise EnvError(name, _redact(url), "a URL with a valid port") from None
    return {
        "ENGINE": "core.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": options,
    }


def local_secret(path: Path) -> str:
    """A random secret kept in ``path`` (mode 0600), made on first use, for the embedded shape.

    Processes that start at once on a fresh ``var/`` (gunicorn's workers) all end with the one secret: each writes a
    whole candidate to a private file and links it into place; a link only succeeds where nothing is yet, so the first
    one wins, the others read it, and no one can read the file before it is whole. The candidate is on disk before it
    is linked, and the link before the secret is used: a machine that loses power after its first start must not come
    back with an empty secret file (Django refuses to start on an empty ``SECRET_KEY``) or with another secret than
    the one that signed what it handed out. A candidate that cannot be written (a full disk) raises, and leaves
    nothing in place. On a file system without hard links the file is made in place: there a process that starts in
    the same instant can read it before it is written, and a crash while it is written can leave it empty.
    """
    if not path.exists():
        secret = secrets.token_urlsafe(50)
        fd, candidate = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            _write_synced(fd, secret)
            try:
                os.link(candidate, path)
            except FileExistsError:
                pass  # another process made it first: its secret is the one
            except OSError:  # a file system without hard links (vfat, some network mounts)
                _made_in_place(path, secret)
        finally:
            os.unlink(candidate)
        _sync_directory(path.parent)
    return path.read_text().strip()


def _made_in_place(path: Path, secret: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first
    try:
        _write_synced(fd, secret)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)  # an empty secret file would stop every later start
        raise


def _write_synced(fd: int, text: str) -> None:
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_directory(directory: Path) -> None:
    """Make a new name in ``directory`` durable (where the platform lets a directory be opened and synced)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
