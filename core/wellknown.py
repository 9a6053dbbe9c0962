"""Fields that higher apps add to ``/.well-known/mns.json`` (the gateway's Maxima identity, where the entry points
are on chain), each registered by the app that owns it in its ``AppConfig.ready``."""

from collections.abc import Callable

_fields: dict[str, Callable[[], object]] = {}


def register(key: str, value: Callable[[], object]) -> None:
    _fields[key] = value


def fields() -> dict[str, object]:
    return {key: value() for key, value in _fields.items()}
